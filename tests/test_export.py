"""`deblurgan export MODEL --format onnx`: the graph runs in onnxruntime and agrees with torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import gopro_frame
from deblurgan_hf import DEFAULT_MODEL, DeblurGAN

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

DEBLURGAN = str(Path(sys.executable).with_name("deblurgan"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """The bundled model exported by the console script, as a user would."""
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    proc = subprocess.run([DEBLURGAN, "export", DEFAULT_MODEL, "--format", "onnx", "-o", str(out)],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "multiples of 32" in proc.stdout and out.is_file()
    assert not list(out.parent.glob(".*tmp"))  # written to a temporary name, then renamed
    return out


def run_onnx(session, image: np.ndarray) -> np.ndarray:
    """The documented recipe: pad to the model's multiple outside the graph, run, crop back."""
    m = int(session.get_modelmeta().custom_metadata_map["size_multiple"])
    x = image.astype(np.float32).transpose(2, 0, 1)[None] / 255
    h, w = x.shape[-2:]
    x = np.pad(x, ((0, 0), (0, 0), (0, -h % m), (0, -w % m)), mode="reflect")
    return session.run(None, {"blurred": x})[0][0, :, :h, :w]


@pytest.mark.parametrize("box", [(500, 300, 820, 524), (431, 200, 562, 297)])  # 320x224 (multiples of 32); 131x97
def test_onnx_matches_torch_on_a_real_crop(exported, box):
    crop = np.array(gopro_frame(3).crop(box))
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    model = DeblurGAN.from_pretrained(DEFAULT_MODEL)
    with torch.inference_mode():
        ref = model(torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255)[0].numpy()
    out = run_onnx(session, crop)
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= 1e-4
    assert np.abs(out - crop.transpose(2, 0, 1) / 255).mean() > 1e-3  # the model really changed the image


def test_onnx_graph_has_dynamic_height_width_and_batch(exported):
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    (blurred,) = session.get_inputs()
    assert blurred.shape[1] == 3 and all(isinstance(d, str) for d in (blurred.shape[0], *blurred.shape[2:]))
    two = np.random.default_rng(0).random((2, 3, 64, 96), dtype=np.float32)
    assert session.run(None, {"blurred": two})[0].shape == two.shape


def test_export_errors_are_one_line(tmp_path):
    proc = subprocess.run([DEBLURGAN, "export", str(tmp_path / "nope"), "-o", str(tmp_path / "m.onnx")],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2 and "nope: no such model folder" in proc.stderr and "Traceback" not in proc.stderr
    bad_format = subprocess.run([DEBLURGAN, "export", DEFAULT_MODEL, "--format", "tflite", "-o", str(tmp_path / "m")],
                                capture_output=True, text=True)
    assert bad_format.returncode == 2 and "invalid choice: 'tflite'" in bad_format.stderr
