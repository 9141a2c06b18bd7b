"""Loading hostile or broken model folders and Hub repos (issue 11, items 2 and 4).

A config.json is checked and its networks measured before anything is allocated; weights with NaN
are refused; an unreachable Hub fails after one request. Memory is asserted by the RSS of a real
subprocess, watched with psutil and killed at a ceiling, so a regression cannot take the machine down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from safetensors.torch import save_file

from deblurgan_hf import DeblurGAN
from deblurgan_hf.modeling import MAX_PARAMETERS, check_model_size
from hub_server import BlackHole, HubServer

ROOT = Path(__file__).resolve().parents[1]
DEBLURGAN = str(Path(sys.executable).with_name("deblurgan"))
SMALL = {"width": 8, "enc_blocks": [1, 1], "dec_blocks": [1, 1], "middle_blocks": 1}
RSS_CEILING = 3 * 2**30  # the watched process is killed above this
RSS_BOUND = 1.5 * 2**30  # python + torch is about 0.7 GiB here; a refused config adds next to nothing


def _folder(path: Path, config: dict | str, weights: bytes | None = b"\x00" * 68) -> Path:
    """A model folder with `config` (a dict, or raw text) and, by default, a 68-byte model.safetensors."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    if weights is not None:
        (path / "model.safetensors").write_bytes(weights)
    return path


def run_watched(cmd: list[str], tmp_path: Path, env: dict | None = None, timeout: float = 180, *,
                full_env: dict[str, str] | None = None) -> tuple[int, str, str, int]:
    """Run `cmd`, sampling its RSS every 50 ms; kill it above RSS_CEILING or after `timeout` s.

    The environment is this one, offline, plus `env`; or exactly `full_env` when given.
    Returns (returncode, stdout, stderr, peak RSS in bytes)."""
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen(cmd, stdout=o, stderr=e, text=True, cwd=ROOT,
                                env=full_env if full_env is not None else {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
    watched, peak, deadline = psutil.Process(proc.pid), 0, time.monotonic() + timeout
    while proc.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        if peak > RSS_CEILING or time.monotonic() > deadline:
            proc.kill()
            break
        time.sleep(0.05)
    proc.wait()
    return proc.returncode, out.read_text(), err.read_text(), peak


HUGE = {
    "width 1024": {"generator": "nafnet", "generator_kwargs": {"width": 1024}, "critic_kwargs": None},
    "10 M middle blocks": {"generator": "nafnet", "generator_kwargs": {"middle_blocks": 10_000_000}},
    "10 M thin blocks": {"generator": "nafnet", "generator_kwargs": {"width": 1, "middle_blocks": 10_000_000}},
    "huge critic": {"generator": "nafnet", "generator_kwargs": SMALL, "critic_kwargs": {"width": 100_000}},
}


@pytest.mark.parametrize("case", list(HUGE))
def test_huge_config_is_refused_before_allocating(tmp_path, case):
    folder = _folder(tmp_path / "model", HUGE[case])
    code = f"from deblurgan_hf import DeblurGAN; DeblurGAN.from_pretrained({str(folder)!r})"
    rc, _, err, peak = run_watched([sys.executable, "-c", code], tmp_path)
    print(f"{case}: exit {rc}, peak RSS {peak / 2**20:.0f} MiB, {(err.strip().splitlines() or ['(killed, no output)'])[-1]}")
    assert peak < RSS_BOUND, f"peak RSS {peak / 2**20:.0f} MiB"
    assert rc == 1 and "ValueError" in err and f"{folder / 'config.json'}: the config asks for more than" in err
    assert f"the limit here is {MAX_PARAMETERS:,}" in err or "4,000 layers" in err


def test_huge_config_in_the_cli_is_a_usage_error(tmp_path, small_model_dir):
    folder = _folder(tmp_path / "model", HUGE["width 1024"])
    image = tmp_path / "x.png"
    from conftest import gopro_frame

    gopro_frame(0).crop((0, 0, 32, 32)).save(image)
    rc, _, err, peak = run_watched([DEBLURGAN, "deblur", str(image), "-o", str(tmp_path / "out"), "--model", str(folder)],
                                   tmp_path)
    print(err)
    assert peak < RSS_BOUND and rc == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "config.json" in err and "parameters" in err and f"{MAX_PARAMETERS:,}" in err


def test_limits_can_be_changed(tmp_path, small_model_dir):
    with pytest.raises(ValueError, match=r"config.json: the config asks for more than [\d,]+ parameters; the limit here is 1,000$"):
        DeblurGAN.from_pretrained(small_model_dir, max_parameters=1000)
    with pytest.raises(ValueError, match=r"config.json: the generator needs [\d,.]+ GFLOPs per megapixel; the limit here is 0.1$"):
        DeblurGAN.from_pretrained(small_model_dir, max_gflops_per_megapixel=0.1)
    config = json.loads((small_model_dir / "config.json").read_text())
    size = check_model_size(config, label="x", max_gflops_per_megapixel=1e6)
    loaded = DeblurGAN.from_pretrained(small_model_dir, max_parameters=size.parameters)
    assert loaded.num_parameters() == size.parameters
    # the estimate is a real count: most of a convnet's compute grows with the square of its width
    wide = check_model_size({**config, "generator_kwargs": {**SMALL, "width": 16}}, label="x", max_gflops_per_megapixel=1e6)
    assert 3 < wide.gflops_per_megapixel / size.gflops_per_megapixel < 4


BAD_CONFIGS = {  # config.json text -> what the message must say after "<path>/config.json: "
    '{"generator": "nafnet", "generator_kwargs": {"width": 8.5}}': "generator_kwargs.width = 8.5: expected an integer >= 1",
    '{"generator_kwargs": {"width": "8"}}': 'generator_kwargs.width = "8": expected an integer >= 1',
    '{"generator_kwargs": {"width": true}}': "generator_kwargs.width = true: expected an integer >= 1",
    '{"generator_kwargs": {"width": 0}}': "generator_kwargs.width = 0: expected an integer >= 1",
    '{"generator_kwargs": {"middle_blocks": -1}}': "generator_kwargs.middle_blocks = -1: expected an integer >= 0",
    '{"generator_kwargs": {"enc_blocks": [1, "2"], "dec_blocks": [1, 1]}}':
        "generator_kwargs.enc_blocks = [1, \"2\"]: expected a list of integers",
    '{"generator_kwargs": {"enc_blocks": 3}}': "generator_kwargs.enc_blocks = 3: expected a list of integers",
    '{"generator_kwargs": {"width": NaN}}': "generator_kwargs.width = NaN: expected an integer",
    '{"generator_kwargs": {"width": 1e400}}': "generator_kwargs.width = Infinity: expected an integer",
    '{"generator": "resnet", "generator_kwargs": {"dropout": -Infinity}}': "generator_kwargs.dropout = -Infinity: expected a finite number",
    '{"generator": "nafnet", "generator_kwargs": "width=8"}': 'generator_kwargs = "width=8": expected a JSON object',
    '{"generator_kwargs": [8]}': "generator_kwargs = [8]: expected a JSON object",
    '{"critic_kwargs": {"n_layers": 2.0}}': "critic_kwargs.n_layers = 2.0: expected an integer >= 1",
    '{"generator": 5}': "generator = 5: unknown generator; allowed: ['multiscale', 'nafnet', 'resnet', 'unet']",
    '[1, 2]': "expected a JSON object",
    '{"generator_kwargs": {': "not valid JSON",
    '{"generator_kwargs": {"width": 100000000000000000000000}}': "the config does not build a network",
}


@pytest.mark.parametrize("text", list(BAD_CONFIGS))
def test_config_type_errors_name_the_file_and_the_field(tmp_path, text):
    folder = _folder(tmp_path / "model", text)
    with pytest.raises(ValueError) as info:
        DeblurGAN.from_pretrained(folder)
    message = str(info.value)
    print(message)
    assert message.startswith(f"{folder / 'config.json'}: ") and BAD_CONFIGS[text] in message
    assert "\n" not in message


def test_config_type_error_in_the_cli_is_one_line_exit_2(tmp_path):
    folder = _folder(tmp_path / "model", '{"generator_kwargs": {"width": NaN}}')
    (tmp_path / "x.png").write_bytes(b"")
    proc = subprocess.run([DEBLURGAN, "deblur", str(tmp_path / "x.png"), "-o", str(tmp_path / "out"), "--model", str(folder)],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    print(proc.stderr)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "config.json: generator_kwargs.width = NaN" in proc.stderr


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_weights_with_nan_or_inf_are_refused(tmp_path, small_model, bad):
    state = {k: v.clone().contiguous() for k, v in small_model.state_dict().items()}
    state["generator.intro.weight"].view(-1)[3] = bad
    folder = tmp_path / "model"
    small_model.save_pretrained(folder)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match=r"model.safetensors: NaN or infinite values in \['generator.intro.weight'\]"):
        DeblurGAN.from_pretrained(folder)
    from conftest import gopro_frame

    gopro_frame(0).crop((0, 0, 32, 32)).save(tmp_path / "x.png")
    proc = subprocess.run([DEBLURGAN, "deblur", str(tmp_path / "x.png"), "-o", str(tmp_path / "out"), "--model", str(folder)],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert proc.returncode == 2 and "NaN or infinite values" in proc.stderr and not (tmp_path / "out" / "x.png").exists()


def test_weights_file_far_bigger_than_the_config_is_refused_unread(tmp_path, small_model):
    folder = tmp_path / "model"
    small_model.save_pretrained(folder)
    with (folder / "model.safetensors").open("r+b") as f:  # sparse: 1 GiB on paper, nothing on disk
        f.truncate(2**30)
    code = f"from deblurgan_hf import DeblurGAN; DeblurGAN.from_pretrained({str(folder)!r})"
    rc, _, err, peak = run_watched([sys.executable, "-c", code], tmp_path)
    assert peak < RSS_BOUND and rc == 1
    assert "model.safetensors: 1,073,741,824 bytes, over the limit of" in err and "tensor values can take" in err


# -- the Hub ---------------------------------------------------------------------------------------


def _client_env(endpoint: str, hf_home: Path, offline: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE_"))}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(hf_home), HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1",
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env


def _load_in_subprocess(repo_id: str, env: dict[str, str], tmp_path: Path, timeout: float = 90, **kwargs) -> tuple[int, str, int]:
    code = (f"import torch; from deblurgan_hf import DeblurGAN; m = DeblurGAN.from_pretrained({repo_id!r}, **{kwargs!r}); "
            "print('LOADED', m.num_parameters())")
    code_, out, err, peak = run_watched([sys.executable, "-c", code], tmp_path, timeout=timeout, full_env=env)
    return code_, out + err, peak


def _upload(hub: HubServer, folder: Path, repo_id: str, tmp_path: Path) -> None:
    code = ("import sys; from huggingface_hub import HfApi; api = HfApi(); api.create_repo(sys.argv[1], exist_ok=True); "
            "api.upload_folder(repo_id=sys.argv[1], folder_path=sys.argv[2])")
    subprocess.run([sys.executable, "-c", code, repo_id, str(folder)], env=hub.client_env(tmp_path / "hf_push"),
                   check=True, capture_output=True, timeout=120)


def test_hub_repo_with_a_huge_config_is_refused_before_the_weights_are_fetched(tmp_path):
    with HubServer(tmp_path / "hub") as hub:
        _upload(hub, _folder(tmp_path / "huge", HUGE["width 1024"]), "user/huge", tmp_path)
        n_before = len(hub.requests)
        rc, out, peak = _load_in_subprocess("user/huge", _client_env(hub.url, tmp_path / "hf_pull"), tmp_path)
        paths = [r.path for r in hub.requests[n_before:]]
    print(out.strip().splitlines()[-1], paths)
    assert rc == 1 and "ValueError: user/huge/config.json: the config asks for more than" in out
    assert peak < RSS_BOUND
    assert any(p.endswith("/config.json") for p in paths) and not any("model.safetensors" in p for p in paths)


def test_unreachable_hub_fails_after_one_request_and_suggests_offline_mode(tmp_path):
    hole = BlackHole()
    try:
        rc, out, _ = _load_in_subprocess("user/model", _client_env(hole.url, tmp_path / "hf"), tmp_path, hub_timeout=2)
        connections = len(hole.connections)
    finally:
        hole.close()
    print(out.strip().splitlines()[-1])
    assert rc == 1 and "ConnectionError: user/model: the Hub" in out and "could not be reached within 2 s" in out
    assert "HF_HUB_OFFLINE=1" in out
    assert connections == 1  # huggingface_hub alone retries 5 more times, 60 s each


def test_offline_mode_asks_no_one_and_says_so(tmp_path):
    hole = BlackHole()
    try:
        rc, out, _ = _load_in_subprocess("user/model", _client_env(hole.url, tmp_path / "hf", offline=True), tmp_path)
        connections = len(hole.connections)
    finally:
        hole.close()
    print(out.strip().splitlines()[-1])
    assert rc == 1 and "FileNotFoundError: user/model/config.json: not in the local Hugging Face cache" in out
    assert "HF_HUB_OFFLINE is set" in out and connections == 0


def test_cached_model_loads_when_the_hub_is_unreachable(tmp_path, small_model):
    small_model.save_pretrained(tmp_path / "small")
    hf_home = tmp_path / "hf"
    with HubServer(tmp_path / "hub") as hub:
        _upload(hub, tmp_path / "small", "user/small", tmp_path)
        rc, out, _ = _load_in_subprocess("user/small", _client_env(hub.url, hf_home), tmp_path)
        assert rc == 0 and f"LOADED {small_model.num_parameters()}" in out, out
    hole = BlackHole()
    try:
        rc, out, _ = _load_in_subprocess("user/small", _client_env(hole.url, hf_home), tmp_path, hub_timeout=2)
    finally:
        hole.close()
    assert rc == 0 and f"LOADED {small_model.num_parameters()}" in out, out
