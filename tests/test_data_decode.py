"""Images that pass PIL's verify() but do not decode are found when the dataset is built (issue 11, item 6).

A truncated JPEG and a PNG whose compressed data is corrupt under valid checksums used to pass the
up-front check and stop training at the step (or the validation) that first read them, without
naming the file. Each image is now decoded once; images that decoded are remembered on disk.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import yaml
from PIL import Image

from conftest import gopro_frame
from deblurgan_hf.data import build_train_dataset, build_val_dataset

REPO = Path(__file__).resolve().parents[1]
CROP = 32


def _crop(index: int) -> Image.Image:
    return gopro_frame(index).crop((500, 300, 596, 372))


def truncated_jpeg(path: Path) -> Path:
    buffer = io.BytesIO()
    _crop(0).save(buffer, format="JPEG", quality=95)
    data = buffer.getvalue()
    path.write_bytes(data[: len(data) * 2 // 3])  # the header and most of the scan: verify() passes
    return path


def corrupt_png(path: Path) -> Path:
    """A PNG whose IDAT bytes are scrambled, with the chunk CRC recomputed: verify() passes."""
    buffer = io.BytesIO()
    _crop(1).save(buffer, format="PNG")
    png = bytearray(buffer.getvalue())
    at = png.index(b"IDAT")
    length = struct.unpack(">I", png[at - 4:at])[0]
    data = bytearray(png[at + 4:at + 4 + length])
    for k in range(length // 3, length // 3 + 40):
        data[k] ^= 0x5A
    png[at + 4:at + 4 + length] = data
    png[at + 4 + length:at + 8 + length] = struct.pack(">I", zlib.crc32(b"IDAT" + bytes(data)))
    path.write_bytes(bytes(png))
    return path


def _verify_passes(path: Path) -> bool:
    with Image.open(path) as img:
        img.verify()
    return True


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """A private decoded-image cache, so this test neither reads nor fills the user's."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("DEBLURGAN_DATA_CACHE", str(folder))
    from deblurgan_hf.data import sources as data

    monkeypatch.setattr(data, "_DECODED", data._DecodeChecks())
    return folder


@pytest.mark.parametrize("make_broken", [truncated_jpeg, corrupt_png])
def test_broken_training_image_is_named_when_the_dataset_is_built(tmp_path, cache_dir, make_broken):
    folder = tmp_path / "sharp"
    folder.mkdir()
    for i in range(3):
        _crop(i).save(folder / f"good{i}.png")
    broken = make_broken(folder / ("broken.jpg" if make_broken is truncated_jpeg else "broken.png"))
    assert _verify_passes(broken)
    with pytest.raises(ValueError, match=rf"cannot read image {broken}: OSError: "):
        build_train_dataset([f"sharp:{folder}"], crop_size=CROP, blur={"mode": "kernel", "size": 9})


@pytest.mark.parametrize("make_broken", [truncated_jpeg, corrupt_png])
def test_broken_validation_image_is_named_when_the_dataset_is_built(tmp_path, cache_dir, make_broken):
    root = tmp_path / "paired"
    for kind in ("blur", "sharp"):
        (root / kind).mkdir(parents=True)
        for i in range(2):
            _crop(i).save(root / kind / f"{i}.png")
    broken = root / "sharp" / "1.png"
    make_broken(broken)  # a JPEG or a PNG under a .png name: PIL reads the content either way
    with pytest.raises(ValueError, match=rf"cannot read image {broken}: OSError: "):
        build_val_dataset([f"paired:{root}"], blur=None)


def test_decoded_images_are_remembered_until_the_file_changes(tmp_path):
    folder = tmp_path / "sharp"
    folder.mkdir()
    for i in range(3):
        _crop(i).save(folder / f"{i}.png")
    env = {**os.environ, "DEBLURGAN_DATA_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    code = f"from deblurgan_hf.data import load_pairs; load_pairs('sharp:{folder}'); print('OK')"

    def load() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)

    assert load().stdout.strip() == "OK"
    cache = json.loads((tmp_path / "cache" / "decoded-images.json").read_text())
    assert {k.rsplit("|", 2)[0] for k in cache} == {str(p.resolve()) for p in folder.iterdir()}
    assert all(v == [96, 72] for v in cache.values())
    # Same size and mtime: taken as the file that decoded, so it is not decoded again ...
    target = folder / "1.png"
    stat = target.stat()
    corrupt_png(tmp_path / "scrambled.png")
    scrambled = (tmp_path / "scrambled.png").read_bytes()
    good = target.read_bytes()
    assert len(scrambled) == len(good)
    target.write_bytes(scrambled)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert load().stdout.strip() == "OK"
    # ... while a changed file (new mtime) is decoded again, and found broken.
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    again = load()
    assert again.returncode == 1 and f"cannot read image {target}" in again.stderr


def test_training_stops_before_step_one_naming_the_file(tmp_path):
    root = tmp_path / "data"
    for kind in ("blur", "sharp"):
        (root / "val" / kind).mkdir(parents=True)
        for i in range(2):
            _crop(i).save(root / "val" / kind / f"{i}.png")
    (root / "sharp").mkdir()
    for i in range(3):
        _crop(i).save(root / "sharp" / f"{i}.png")
    broken = truncated_jpeg(root / "sharp" / "late.jpg")
    config = {"train_sources": [f"sharp:{root / 'sharp'}"], "val_sources": [f"paired:{root / 'val'}"],
              "blur": {"mode": "kernel", "size": 9}, "crop_size": CROP, "train_batch_size": 2, "max_train_steps": 3,
              "generator": "nafnet", "generator_kwargs": {"width": 8, "enc_blocks": [1], "dec_blocks": [1], "middle_blocks": 1},
              "num_threads": 1, "output_dir": str(tmp_path / "run")}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1", "DEBLURGAN_DATA_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, str(REPO / "train_accelerate.py"), "--config", str(tmp_path / "recipe.yaml")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    print(proc.stderr[-1500:])
    assert proc.returncode != 0 and f"cannot read image {broken}" in proc.stderr
    assert not (tmp_path / "run" / "metrics.jsonl").exists() or not (tmp_path / "run" / "metrics.jsonl").read_text()
