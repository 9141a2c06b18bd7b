"""`push_to_hub` and `from_pretrained` end to end: the real huggingface_hub client, real HTTP requests.

The Hub is `tests/hub_server.py` on 127.0.0.1. huggingface_hub reads `HF_ENDPOINT` at import, so the
client side runs in subprocesses (this file run as a script) with `HubServer.client_env`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from hub_server import HubServer

ROOT = Path(__file__).resolve().parents[1]
REPO_ID = "user/tiny-deblur"
MISSING_ID = "user/no-such-model"
SMALL_NAFNET = {"width": 8, "enc_blocks": [1, 1], "dec_blocks": [1, 1], "middle_blocks": 1}


# -- client side (runs in a subprocess whose huggingface_hub talks to the local Hub) ----------------


def _crop() -> torch.Tensor:
    """A 97x131 crop of a real blurred GoPro frame, (1, 3, H, W) float in [0, 1]."""
    import numpy as np

    from conftest import gopro_frame

    crop = np.asarray(gopro_frame(0))[300:397, 500:631]
    return (torch.from_numpy(crop.copy()).permute(2, 0, 1)[None].float() / 255).contiguous()


@torch.inference_mode()
def client_push(out: Path) -> None:
    """Build a small seeded model, save it locally, push it, and record its output on the crop."""
    from conftest import scrambled_
    from deblurgan_hf import DeblurGAN

    torch.manual_seed(0)
    model = scrambled_(DeblurGAN("nafnet", SMALL_NAFNET)).eval()
    model.save_pretrained(out / "local")
    crop = _crop()
    save_file({"input": crop, "output": model(crop)}, out / "original.safetensors")
    commit = model.push_to_hub(REPO_ID, token=os.environ["HF_TOKEN"])
    (out / "push.json").write_text(json.dumps({"commit_url": str(commit), "oid": commit.oid}))


@torch.inference_mode()
def client_pull(out: Path) -> None:
    """From a fresh cache: load the pushed repo, run it on the crop; then the error cases."""
    from huggingface_hub.errors import HfHubHTTPError

    from deblurgan_hf import DeblurGAN

    model = DeblurGAN.from_pretrained(REPO_ID)
    save_file({"output": model(_crop())}, out / "pulled.safetensors")
    errors = {}
    try:
        DeblurGAN.from_pretrained(MISSING_ID)
    except Exception as err:  # noqa: BLE001 - the test checks type and message
        errors["missing"] = [type(err).__name__, str(err)]
    try:  # the server accepts only its own token: shows the push above really authenticated
        model.push_to_hub("user/other", token="hf_wrong_token")
    except HfHubHTTPError as err:
        errors["bad_token"] = err.response.status_code
    (out / "pull.json").write_text(json.dumps(errors))


# -- test side ------------------------------------------------------------------------------------


def _run_client(step: str, out: Path, env: dict[str, str]) -> None:
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, __file__, step, str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"client {step} failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def hub_roundtrip(tmp_path_factory):
    """Push from one process, pull from another with an empty cache; yields (hub, out dir, n push requests)."""
    tmp = tmp_path_factory.mktemp("hub")
    out = tmp / "out"
    out.mkdir()
    with HubServer(tmp / "server") as hub:
        _run_client("push", out, hub.client_env(tmp / "hf_home_push"))
        n_push = len(hub.requests)
        _run_client("pull", out, hub.client_env(tmp / "hf_home_pull"))
        yield hub, out, n_push, tmp / "hf_home_pull"


def test_push_sends_create_preupload_commit(hub_roundtrip):
    hub, out, n_push, _ = hub_roundtrip
    assert not hub.unhandled, f"the client called endpoints the local Hub lacks: {hub.unhandled}"
    push = hub.endpoints()[:n_push]
    for step in ("create_repo", "preupload", "lfs_batch", "lfs_upload", "commit"):
        assert step in push, f"no {step} request during push_to_hub; got {push}"
    order = [push.index(s) for s in ("create_repo", "preupload", "lfs_batch", "lfs_upload", "commit")]
    assert order == sorted(order), push
    assert all(r.status < 400 for r in hub.requests[:n_push]), hub.requests[:n_push]
    writes = [r for r in hub.requests[:n_push] if r.endpoint in ("create_repo", "preupload", "lfs_batch", "commit")]
    assert all(r.authorized for r in writes), writes  # push_to_hub(token=...) reached the server
    commit = json.loads((out / "push.json").read_text())
    assert commit["commit_url"] == f"{hub.url}/{REPO_ID}/commit/{commit['oid']}"
    assert hub.repos[("model", REPO_ID)].branches["main"] == commit["oid"]


def test_pushed_files_identical_to_save_pretrained(hub_roundtrip):
    hub, out, _, _ = hub_roundtrip
    stored = hub.files(REPO_ID)
    assert set(stored) == {".gitattributes", "config.json", "model.safetensors", "README.md"}
    for name in ("config.json", "model.safetensors", "README.md"):
        assert stored[name] == (out / "local" / name).read_bytes(), f"{name} on the Hub differs from save_pretrained"
    tree = hub.repos[("model", REPO_ID)].resolve("main").tree
    assert tree["model.safetensors"].lfs and not tree["config.json"].lfs  # weights went through LFS, like on the Hub
    assert json.loads(stored["config.json"])["generator"] == "nafnet"


def test_from_pretrained_downloads_pushed_model_bit_identical(hub_roundtrip):
    hub, out, n_push, hf_home = hub_roundtrip
    pulled = [(r.endpoint, r.path) for r in hub.requests[n_push:]]
    assert ("resolve", f"/{REPO_ID}/resolve/main/config.json") in pulled
    assert ("resolve", f"/{REPO_ID}/resolve/main/model.safetensors") in pulled
    assert any(endpoint == "lfs_download" for endpoint, _ in pulled), pulled
    cached = list((hf_home / "hub" / "models--user--tiny-deblur" / "snapshots").glob("*/model.safetensors"))
    assert len(cached) == 1 and cached[0].read_bytes() == (out / "local" / "model.safetensors").read_bytes()

    saved = load_file(out / "original.safetensors")
    original, restored = saved["output"], load_file(out / "pulled.safetensors")["output"]
    assert original.shape == saved["input"].shape == (1, 3, 97, 131)
    assert (original - saved["input"]).abs().mean() > 1e-3  # the weights matter: not an identity-like net
    assert torch.equal(original, restored)


def test_pull_errors(hub_roundtrip):
    hub, out, _, _ = hub_roundtrip
    errors = json.loads((out / "pull.json").read_text())
    kind, message = errors["missing"]
    assert kind == "FileNotFoundError" and MISSING_ID in message, errors["missing"]
    assert errors.get("bad_token") == 401, errors
    assert ("model", "user/other") not in hub.repos


if __name__ == "__main__":
    {"push": client_push, "pull": client_pull}[sys.argv[1]](Path(sys.argv[2]))
