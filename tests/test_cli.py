"""`deblurgan deblur` over a folder holding a corrupt file, run as the installed console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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
