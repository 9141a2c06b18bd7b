"""DeblurGAN Hub wrapper: save/load round trips, inference-only repos, and clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from deblurgan_hf import DeblurGAN


def test_save_then_load_is_bit_identical(small_model, small_model_dir, real_crop):
    assert sorted(p.name for p in small_model_dir.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = DeblurGAN.from_pretrained(small_model_dir)
    x = torch.from_numpy(real_crop).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        assert torch.equal(loaded(x), small_model(x))
    config = json.loads((small_model_dir / "config.json").read_text())
    assert config["generator"] == "nafnet" and config["generator_kwargs"]["width"] == 8
    assert config["critic_kwargs"] is None
    card = (small_model_dir / "README.md").read_text()
    assert card.startswith("---\n") and "pipeline_tag: image-to-image" in card and "nafnet" in card


def test_load_offline_in_a_fresh_process(small_model, small_model_dir, real_crop, tmp_path):
    np.save(tmp_path / "crop.npy", real_crop)
    code = (
        "import sys, numpy as np; from deblurgan_hf import DeblurGAN;"
        f"m = DeblurGAN.from_pretrained({str(small_model_dir)!r});"
        f"np.save({str(tmp_path / 'out.npy')!r}, m.deblur(np.load({str(tmp_path / 'crop.npy')!r})))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    assert np.array_equal(np.load(tmp_path / "out.npy"), small_model.deblur(real_crop))


def test_critic_is_saved_and_stripped_for_inference(tmp_path, real_crop):
    gan = DeblurGAN("nafnet", {"width": 8, "enc_blocks": [1], "dec_blocks": [1]}, critic_kwargs={"width": 8, "n_layers": 2})
    gan.save_pretrained(tmp_path / "full")
    full = DeblurGAN.from_pretrained(tmp_path / "full")
    assert full.critic is not None
    loaded, original = full.critic.state_dict(), gan.critic.state_dict()
    assert loaded.keys() == original.keys() and all(torch.equal(loaded[k], original[k]) for k in original)
    gan.for_inference().save_pretrained(tmp_path / "slim")
    slim = DeblurGAN.from_pretrained(tmp_path / "slim")
    assert slim.critic is None
    assert (tmp_path / "slim" / "model.safetensors").stat().st_size < (tmp_path / "full" / "model.safetensors").stat().st_size
    assert np.array_equal(slim.deblur(real_crop), gan.eval().deblur(real_crop))


def _folder(tmp_path, config: dict, state: dict | None = None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.json").write_text(json.dumps(config))
    if state is not None:
        save_file(state, str(tmp_path / "model.safetensors"))
    return tmp_path


def test_unknown_generator_in_config(tmp_path):
    path = _folder(tmp_path, {"generator": "transformer", "generator_kwargs": {}, "critic_kwargs": None})
    with pytest.raises(ValueError, match="transformer.*allowed.*nafnet"):
        DeblurGAN.from_pretrained(path)


def test_unknown_config_key(tmp_path):
    path = _folder(tmp_path, {"generator": "nafnet", "generator_kwargs": {}, "critic_kwargs": None, "lr": 1})
    with pytest.raises(ValueError, match=r"config.json: unknown keys \['lr'\]"):
        DeblurGAN.from_pretrained(path)


def test_wrong_generator_kwarg(tmp_path):
    path = _folder(tmp_path, {"generator": "nafnet", "generator_kwargs": {"widht": 8}, "critic_kwargs": None})
    with pytest.raises(ValueError, match="widht"):
        DeblurGAN.from_pretrained(path)


def test_weights_that_do_not_fit_the_config(tmp_path):
    other = DeblurGAN("nafnet", {"width": 16}).generator.state_dict()
    state = {f"generator.{k}": v.contiguous() for k, v in other.items()}
    path = _folder(tmp_path, {"generator": "nafnet", "generator_kwargs": {"width": 8}, "critic_kwargs": None}, state)
    with pytest.raises(ValueError, match="model.safetensors: weights do not fit the config: .*wrong shape"):
        DeblurGAN.from_pretrained(path)
    del state[next(iter(state))]
    small = {f"generator.{k}": v.contiguous() for k, v in DeblurGAN("nafnet", {"width": 8}).generator.state_dict().items()}
    small.pop("generator.intro.weight")
    save_file(small, str(path / "model.safetensors"))
    with pytest.raises(ValueError, match=r"missing \['generator.intro.weight'\]"):
        DeblurGAN.from_pretrained(path)


def test_pickle_checkpoints_are_refused_unread(tmp_path):
    # A pickle that would run code if unpickled: the error must come before any load.
    payload = b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR."
    path = _folder(tmp_path / "repo", {"generator": "nafnet", "generator_kwargs": {}, "critic_kwargs": None})
    (path / "pytorch_model.bin").write_bytes(payload)
    with pytest.raises(FileNotFoundError, match=r"pytorch_model.bin.*never loaded"):
        DeblurGAN.from_pretrained(path)
    for name in ("model.pth", "weights.ckpt", "model.bin"):
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(ValueError, match="pickle checkpoints are never loaded"):
            DeblurGAN.from_pretrained(tmp_path / name)
    assert not (tmp_path / "pwned").exists()


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model folder"):
        DeblurGAN.from_pretrained(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        DeblurGAN.from_pretrained(tmp_path)


def test_corrupt_safetensors(tmp_path):
    path = _folder(tmp_path, {"generator": "nafnet", "generator_kwargs": {"width": 8}, "critic_kwargs": None})
    (path / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="model.safetensors: not a readable safetensors file"):
        DeblurGAN.from_pretrained(path)
