"""Shared fixtures: real images from ../shared/data and small real models saved with save_pretrained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def gopro_frame(index: int = 0) -> Image.Image:
    """A real blurred 1280x720 GoPro frame."""
    files = sorted((DATA / "gopro_blur_only").glob("*.png"))
    assert files, f"no demo frames in {DATA / 'gopro_blur_only'}"
    return Image.open(files[index]).convert("RGB")


def scrambled_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter random values so the net is far from its identity-like init."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.05 if p.ndim > 1 else 0.0125))
    return model


@pytest.fixture(scope="module")
def one_thread():
    """Many small tensor ops: one intra-op thread is much faster on the shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def real_crop() -> np.ndarray:
    """A 97x131 uint8 RGB crop of a real blurred frame (odd size on purpose)."""
    return np.asarray(gopro_frame(0))[300:397, 500:631].copy()


@pytest.fixture(scope="session")
def small_model():
    """A seeded, scrambled small NAFNet (fast; output differs clearly from input)."""
    from deblurgan_hf import DeblurGAN

    torch.manual_seed(0)
    model = DeblurGAN("nafnet", {"width": 8, "enc_blocks": [1, 1], "dec_blocks": [1, 1], "middle_blocks": 1})
    return scrambled_(model).eval()


@pytest.fixture(scope="session")
def small_model_dir(small_model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "small"
    small_model.save_pretrained(path)
    return path
