"""The shared atomic-write helper and float -> uint8 conversion, on real files."""

import os

import numpy as np
import pytest
import torch

from deblurgan_hf.files import atomic_write, atomic_write_bytes, atomic_write_text
from deblurgan_hf.imaging import to_uint8


def test_atomic_write_replaces_the_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "out.txt"  # the folder is created
    atomic_write_text(target, "first")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_a_failure_mid_write_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".") and str(os.getpid()) in tmp.name
            tmp.write_text("half of the new")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_a_block_that_writes_nothing_is_an_error_and_the_old_file_stays(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with atomic_write(target):
            pass
    assert target.read_text() == "old"


def test_atomic_write_replaces_a_whole_folder(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale.bin").write_bytes(b"x")
    with atomic_write(target) as tmp:
        tmp.mkdir()
        (tmp / "weights.safetensors").write_bytes(b"new")
    assert sorted(p.name for p in target.iterdir()) == ["weights.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # neither temp nor old copy left
    with pytest.raises(ValueError):
        with atomic_write(target) as tmp:
            tmp.mkdir()
            (tmp / "half").write_bytes(b"")
            raise ValueError("killed")
    assert sorted(p.name for p in target.iterdir()) == ["weights.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_to_uint8_rounds_and_clips_tensors_and_arrays():
    values = [-0.5, 0.0, 0.5 / 255, 1.5 / 255, 0.2, 1.0, 3.0]
    expected = [0, 0, 0, 2, 51, 255, 255]  # half-levels round to even, like torch.round / np.round
    t = to_uint8(torch.tensor(values, requires_grad=True))
    assert t.dtype == torch.uint8 and t.tolist() == expected
    a = to_uint8(np.array(values, dtype=np.float64))
    assert a.dtype == np.uint8 and a.tolist() == expected
    with pytest.raises(TypeError, match="uint8 tensor"):
        to_uint8(torch.zeros(2, dtype=torch.uint8))
