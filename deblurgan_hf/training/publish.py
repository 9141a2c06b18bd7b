"""The end of a run: Hub-ready model folders (`best/`, `final/`), the upload, the weights checksum."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..files import atomic_write

__all__ = ["export_model", "push_folder_to_hub", "weights_checksum"]


def export_model(model: Any, out_dir: str | os.PathLike, *, card_kwargs: dict[str, Any],
                 extra_files: Sequence[str | os.PathLike] = ()) -> Path:
    """Write `model.for_inference()` as a Hub-ready folder (config, safetensors, model card) atomically.

    Args:
        model: the `DeblurGAN` being trained (its critic is dropped).
        card_kwargs: model card fields (metrics, recipe, command, ...).
        extra_files: copied into the folder (training curves, validation grid).
    """
    out_dir = Path(out_dir)
    with atomic_write(out_dir) as tmp:
        model.for_inference().save_pretrained(tmp, model_card_kwargs=card_kwargs)
        for f in extra_files:
            if f and Path(f).is_file():
                shutil.copy2(f, tmp / Path(f).name)
    return out_dir


def push_folder_to_hub(folder: str | os.PathLike, repo_id: str, *, private: bool = False, commit_message: str = "") -> str:
    """Create the model repo if needed and upload the exported folder; returns the commit URL."""
    from huggingface_hub import create_repo, upload_folder

    create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    info = upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                         commit_message=commit_message or "Upload deblurgan-hf model")
    return str(getattr(info, "commit_url", info))


def weights_checksum(module: torch.nn.Module) -> int:
    """A 60-bit hash of every parameter and buffer's bytes (equal iff bitwise equal, practically)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return int(h.hexdigest()[:15], 16)
