"""`deblurgan deblur` over a folder holding a corrupt file, run as the installed console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import gopro_frame

DEBLURGAN = str(Path(sys.executable).with_name("deblurgan"))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DEBLURGAN, *args], capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_folder_with_a_corrupt_file(small_model, small_model_dir, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    gopro_frame(0).crop((0, 0, 160, 120)).save(src / "a.png")
    gopro_frame(1).crop((0, 0, 100, 90)).save(src / "b.jpg", quality=95)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (src / "notes.txt").write_text("not an image, not picked up")

    first = run("deblur", str(src), "-o", str(out), "--model", str(small_model_dir))
    assert first.returncode == 1
    assert "broken.jpg" in first.stderr and "2 deblurred" in first.stdout and "1 failed" in first.stdout
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]  # no temp files left behind
    a = Image.open(out / "a.png")
    assert a.size == (160, 120)
    assert np.array_equal(np.asarray(a), np.asarray(small_model.deblur(Image.open(src / "a.png"))))

    stamp = (out / "a.png").stat().st_mtime_ns
    again = run("deblur", str(src / "a.png"), "-o", str(out), "--model", str(small_model_dir))
    assert again.returncode == 0 and "1 kept" in again.stdout and (out / "a.png").stat().st_mtime_ns == stamp
    redo = run("deblur", str(src / "a.png"), "-o", str(out), "--model", str(small_model_dir), "--overwrite")
    assert redo.returncode == 0 and "1 deblurred" in redo.stdout and (out / "a.png").stat().st_mtime_ns != stamp


def test_user_mistakes_get_one_line_errors(small_model_dir, tmp_path):
    missing = run("deblur", str(tmp_path / "nope"), "-o", str(tmp_path / "out"), "--model", str(small_model_dir))
    assert missing.returncode == 2 and "nope: no such file or folder" in missing.stderr
    assert "Traceback" not in missing.stderr
    (tmp_path / "x.png").write_bytes(b"")
    bad_model = run("deblur", str(tmp_path / "x.png"), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "nomodel"))
    assert bad_model.returncode == 2 and "nomodel: no such model folder" in bad_model.stderr
    gopro_frame(0).crop((0, 0, 20, 20)).save(tmp_path / "x.jpg")
    clash = run("deblur", str(tmp_path / "x.png"), str(tmp_path / "x.jpg"), "-o", str(tmp_path / "out"))
    assert clash.returncode == 2 and "would all be written to x.png" in clash.stderr


def test_folder_pipeline_decodes_ahead_and_reports_each_file(tmp_path, monkeypatch):
    """deblur_files: decoding runs ahead in threads, results are written behind, per-file errors."""
    import threading

    from deblurgan_hf import inference
    from deblurgan_hf.cli import deblur_files

    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        gopro_frame(i).crop((0, 0, 64, 48)).save(src / f"{i}.png")
    (src / "2.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    (out / "4.png").mkdir(parents=True)  # the output path is a folder: the write fails
    decoded: list[str] = []
    real_open = inference.open_image

    def open_image(path):
        decoded.append(threading.current_thread().name)
        return real_open(path)

    monkeypatch.setattr(inference, "open_image", open_image)
    started_when_deblurring: list[int] = []

    def deblur(image):
        started_when_deblurring.append(len(decoded))
        return image.transpose(0)  # a flip stands in for the model

    done: dict[str, str | None] = {}
    todo = [(src / f"{i}.png", out / f"{i}.png") for i in range(5)]
    deblur_files(todo, deblur, on_done=lambda p, err: done.__setitem__(p.name, err), read_ahead=2, writers=2)
    assert all(name.startswith("decode") for name in decoded) and len(decoded) == 5
    assert started_when_deblurring[0] >= 2  # the next image was already being decoded
    assert sorted(done) == [f"{i}.png" for i in range(5)]
    assert "2.png" in done["2.png"] and "not an image" in done["2.png"]
    assert done["4.png"] is not None and done["0.png"] is None and done["3.png"] is None
    flipped = np.asarray(Image.open(out / "3.png"))
    assert np.array_equal(flipped, np.asarray(Image.open(src / "3.png"))[:, ::-1])
    assert sorted(p.name for p in out.iterdir()) == ["0.png", "1.png", "3.png", "4.png"]  # no temp files


def test_device_and_io_thread_options(small_model_dir, tmp_path):
    gopro_frame(0).crop((0, 0, 40, 30)).save(tmp_path / "x.png")
    ok = run("deblur", str(tmp_path / "x.png"), "-o", str(tmp_path / "out"), "--model", str(small_model_dir),
             "--device", "cpu", "--io-threads", "1")
    assert ok.returncode == 0 and "1 deblurred" in ok.stdout
    bad = run("deblur", str(tmp_path / "x.png"), "-o", str(tmp_path / "out"), "--device", "tpu")
    assert bad.returncode == 2 and "invalid choice: 'tpu'" in bad.stderr
    none = run("deblur", str(tmp_path / "x.png"), "-o", str(tmp_path / "o2"), "--io-threads", "0")
    assert none.returncode == 2 and "--io-threads" in none.stderr and "Traceback" not in none.stderr


def test_pick_device():
    import torch

    from deblurgan_hf.cli import pick_device

    assert pick_device("cpu") == "cpu"
    assert pick_device("auto") == ("cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--device cuda: no CUDA device here"):
            pick_device("cuda")
