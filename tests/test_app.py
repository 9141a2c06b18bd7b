"""The Gradio app as a real server, called through `gradio_client` (issue 5)."""

from __future__ import annotations

import importlib.util
import struct
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from gradio_client import Client, handle_file
from PIL import Image

from app_server import (
    GOPRO_BLUR,
    ROOT,
    app_models_env,
    bundled_model_exists,
    gopro_crop,
    gradient_energy,
    serve_app,
)

pytestmark = pytest.mark.skipif(not GOPRO_BLUR.is_dir(), reason=f"{GOPRO_BLUR} missing (../shared/data)")

MAX_MEGAPIXELS = 1.0  # small limits so the tests need only small files
MAX_FILE_SIZE_MB = 2


@pytest.fixture(scope="module")
def models_env(tmp_path_factory) -> dict[str, str]:
    return app_models_env(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def server(models_env, tmp_path_factory):
    env = {
        **models_env,
        "DEBLURGAN_APP_MAX_MEGAPIXELS": str(MAX_MEGAPIXELS),
        "DEBLURGAN_APP_MAX_FILE_SIZE": f"{MAX_FILE_SIZE_MB}mb",
        "DEBLURGAN_APP_CONCURRENCY": "2",
        "DEBLURGAN_APP_QUEUE_SIZE": "16",
    }
    log = tmp_path_factory.mktemp("server") / "app.log"
    with serve_app(env, log) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server) -> Client:
    return Client(server.url, verbose=False)


@pytest.fixture(scope="module")
def app_model(models_env):
    """The model the server uses, loaded here to compute reference results."""
    from deblurgan_hf import DEFAULT_MODEL, DeblurGAN

    return DeblurGAN.from_pretrained(models_env.get("DEBLURGAN_APP_MODELS", DEFAULT_MODEL))


def _save(image: Image.Image, path: Path) -> Path:
    image.save(path)
    return path


def _deblur(client: Client, path: Path, **options):
    return client.predict(handle_file(str(path)), **options, api_name="/deblur")


def _import_file(name: str, path: Path, monkeypatch):
    """Import a script that is not in a package (app.py, scripts/make_space.py) for this test only."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def _png_bomb(path: Path, width: int = 20_000, height: int = 20_000) -> Path:
    """A valid PNG header claiming 400 megapixels, with a few bytes of data: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    )
    return path


def _panorama(path: Path, width: int = 5000, height: int = 400) -> Path:
    """A smooth wide image: 2 megapixels (over the test limit) in a small file."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    rgb = np.concatenate([np.broadcast_to(x, (height, width, 1)), np.broadcast_to(y, (height, width, 1)),
                          np.broadcast_to((x + y) / 2, (height, width, 1))], axis=2)
    Image.fromarray(rgb.astype(np.uint8)).save(path)
    return path


def test_deblur_returns_before_after_pair_and_png(client, tmp_path):
    crop = gopro_crop()
    (before, after), download, summary = _deblur(client, _save(crop, tmp_path / "blurred.png"))
    with Image.open(before) as b, Image.open(after) as a, Image.open(download) as d:
        assert b.format == a.format == d.format == "PNG"
        assert a.size == d.size == crop.size
        # the slider shows the input losslessly, and the download is the slider's result
        assert np.array_equal(np.asarray(b.convert("RGB")), np.asarray(crop))
        assert np.array_equal(np.asarray(a.convert("RGB")), np.asarray(d.convert("RGB")))
    assert Path(download).name == "blurred_deblurred.png"
    assert f"{crop.width} x {crop.height}" in summary and " s** with " in summary


@pytest.mark.skipif(not bundled_model_exists(), reason="no bundled default model yet: only a trained model sharpens")
def test_result_sharper_than_input(client, tmp_path):
    crop = gopro_crop("000014.png", (400, 200, 784, 456))
    (_, after), _, _ = _deblur(client, _save(crop, tmp_path / "blurred.png"))
    with Image.open(after) as a:
        gain = gradient_energy(a) / gradient_energy(crop)
    print(f"gradient energy result / input: {gain:.2f}")
    assert gain > 1.1


def test_bad_uploads_get_readable_errors_and_server_keeps_serving(client, tmp_path):
    png = tmp_path / "real.png"
    gopro_crop().save(png)
    cases = {
        "not an image": (tmp_path / "notes.png", b"these are my holiday notes, not a picture\n" * 20, "not an image"),
        "zero bytes": (tmp_path / "empty.png", b"", "empty (0 bytes)"),
        "truncated": (tmp_path / "truncated.png", png.read_bytes()[: png.stat().st_size // 2], "truncated"),
        "decompression bomb": (_png_bomb(tmp_path / "bomb.png"), None, "too many pixels"),
        "huge panorama": (_panorama(tmp_path / "panorama.png"), None, "5000x400 = 2.0 megapixels; this app takes at most 1"),
    }
    good = _save(gopro_crop(box=(600, 400, 728, 496)), tmp_path / "good.png")
    for case, (path, content, expected) in cases.items():
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(Exception) as info:
            _deblur(client, path)
        message = str(info.value)
        print(f"{case}: {message}")
        assert expected in message, case
        assert str(tmp_path) not in message and "/tmp/gradio" not in message, "error leaks server paths"
        (_, after), _, _ = _deblur(client, good)  # the next request is served normally
        with Image.open(after) as a:
            assert a.size == (128, 96), case


def test_upload_over_max_file_size_is_refused(client, server, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(np.random.default_rng(0).bytes((MAX_FILE_SIZE_MB + 1) * 1024 * 1024))
    with pytest.raises(ValueError, match="exceeds the maximum file size"):  # gradio_client checks first
        _deblur(client, big)
    # and the server refuses it too, for clients that do not check
    with big.open("rb") as f:
        response = httpx.post(f"{server.url}gradio_api/upload", files={"files": ("big.png", f, "image/png")}, timeout=60)
    print(f"raw upload over max_file_size: HTTP {response.status_code} {response.text!r}")
    assert response.status_code == 413 and "maximum allowed size" in response.text


def test_downscale_option_fits_the_megapixel_limit(client, tmp_path):
    (before, after), _, summary = _deblur(client, _panorama(tmp_path / "panorama.png"), downscale=True)
    with Image.open(after) as a:
        w, h = a.size
    assert w * h <= MAX_MEGAPIXELS * 1e6 and abs(w / h - 5000 / 400) < 0.05
    assert "downscaled from 5000x400" in summary


def test_tiled_inference_reports_progress_per_tile(client, app_model, tmp_path):
    from deblurgan_hf.inference import tile_starts

    crop = gopro_crop("000005.png", (200, 100, 968, 612))  # 768x512 -> 4 x 3 tiles of 256
    job = client.submit(handle_file(str(_save(crop, tmp_path / "big.png"))), tile="256", api_name="/deblur")
    seen: set[tuple[int, int]] = set()
    while not job.done():  # the queue forwards each gr.Progress update; poll often enough to see them
        for unit in job.status().progress_data or []:
            if unit.unit == "tiles":
                seen.add((unit.index, unit.length))
        time.sleep(0.005)
    (_, after), _, summary = job.result()
    tiles = len(tile_starts(512, 256, 32)) * len(tile_starts(768, 256, 32))
    print(f"progress updates seen (done, total): {sorted(seen)}")
    assert tiles == 12 and seen and all(total == tiles for _, total in seen)
    assert "tile 256" in summary
    with Image.open(after) as a:
        assert a.size == crop.size


def test_model_choice_errors_are_readable(client, tmp_path):
    good = _save(gopro_crop(box=(0, 0, 64, 64)), tmp_path / "small.png")
    with pytest.raises(Exception, match="Could not load model 'nobody/no-such-model'") as info:
        _deblur(client, good, hub_id="nobody/no-such-model")  # the server runs with HF_HUB_OFFLINE=1
    print(info.value)
    with pytest.raises(Exception, match="expected 'user/model'"):
        _deblur(client, good, hub_id="../pretrained")  # server folders are not reachable through the Hub field
    with pytest.raises(Exception, match="tile: '999' is not one of"):
        _deblur(client, good, tile="999")
    with pytest.raises(Exception, match="model: 'no-such-model' is not one of"):
        _deblur(client, good, model="no-such-model")
    (_, after), _, _ = _deblur(client, good)
    with Image.open(after) as a:
        assert a.size == (64, 64)


def test_eight_concurrent_requests_are_correct_and_memory_bounded(client, server, app_model, tmp_path):
    frames = sorted(GOPRO_BLUR.glob("*.png"))[:4]
    # 4 different crops, each sent twice: identical requests at once must not share half-written files
    crops = [gopro_crop(f.name, (64 * i, 200, 64 * i + 192, 328)) for i, f in enumerate(frames)] * 2
    paths = [_save(c, tmp_path / f"crop{i}.png") for i, c in enumerate(crops)]
    _deblur(client, paths[0])  # warm up (model loaded) before measuring
    rss_before = server.rss_bytes()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda p: _deblur(client, p), paths))
    rss_after = server.rss_bytes()
    print(f"server RSS before {rss_before / 2**20:.0f} MiB, after 8 concurrent requests {rss_after / 2**20:.0f} MiB")
    for crop, ((before, after), _, _) in zip(crops, results):
        expected = np.asarray(app_model.deblur(crop, precision="fp32"), dtype=np.int16)
        with Image.open(before) as b, Image.open(after) as a:
            assert np.array_equal(np.asarray(b.convert("RGB")), np.asarray(crop))  # its own input, not another's
            assert np.abs(np.asarray(a.convert("RGB"), dtype=np.int16) - expected).max() <= 2
    assert rss_after < 4 * 2**30


def test_find_models_reads_env_and_refuses_non_model_folders(models_env, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    app = _import_file("app_under_test", ROOT / "app.py", monkeypatch)
    from deblurgan_hf import DEFAULT_MODEL

    bundled = app.find_models("")
    assert all((Path(p) / "config.json").is_file() for p in bundled.values())
    if bundled_model_exists():
        assert next(iter(bundled)) == Path(DEFAULT_MODEL).name
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(FileNotFoundError, match="not-a-model"):
        app.find_models(str(tmp_path / "not-a-model"))
    if "DEBLURGAN_APP_MODELS" in models_env:
        folder = models_env["DEBLURGAN_APP_MODELS"]
        assert app.find_models(folder) == {Path(folder).name: str(Path(folder).resolve())}


def test_space_folder_has_front_matter_and_runs_unchanged(models_env, tmp_path, monkeypatch):
    make_space = _import_file("make_space", ROOT / "scripts" / "make_space.py", monkeypatch)
    out = make_space.make_space(tmp_path / "space", ["someone/nafnet-motion-s"], space_id="someone/deblur")
    text = (out / "README.md").read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    import gradio

    # the Hub model is downloaded at build time; the API example names this Space, no placeholder
    assert meta["preload_from_hub"] == ["someone/nafnet-motion-s"] and meta["suggested_hardware"] == "cpu-basic"
    assert 'Client("someone/deblur")' in text and "USER" not in text
    # CPU hardware: the CPU torch build (the default Linux wheel brings several GB of CUDA libraries)
    requirements = (out / "requirements.txt").read_text().splitlines()
    assert requirements[0] == "--extra-index-url https://download.pytorch.org/whl/cpu"
    assert {r.split("==")[0]: r.split("==")[1] for r in requirements[1:]}["torch"].endswith("+cpu")
    assert (out / "deblurgan_hf" / "pretrained").is_dir()  # the bundled models come with the package
    gpu = make_space.make_space(tmp_path / "gpu-space", ["someone/nafnet-motion-s"], space_id="someone/deblur",
                                hardware="t4-small")
    assert "+cpu" not in (gpu / "requirements.txt").read_text()

    assert meta["sdk"] == "gradio" and meta["sdk_version"] == gradio.__version__
    assert meta["app_file"] == "app.py" and (out / meta["app_file"]).read_bytes() == (ROOT / "app.py").read_bytes()
    assert meta["python_version"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert meta["models"] == ["someone/nafnet-motion-s"] and meta["license"] == "apache-2.0"
    assert "gradio" not in (out / "requirements.txt").read_text()  # the Space's sdk_version provides it
    assert {r.split("==")[0] for r in requirements[1:]} >= {"av", "scipy"}  # the Video tab, the deconvolution
    assert "CC BY 4.0" in text and (out / "examples" / "ATTRIBUTION.md").is_file()
    with pytest.raises(FileExistsError):
        make_space.make_space(out, ["someone/nafnet-motion-s"], space_id="someone/deblur")

    crop = _save(gopro_crop(box=(0, 0, 96, 64)), tmp_path / "small.png")
    with serve_app(models_env, tmp_path / "space.log", app_dir=out) as srv:
        (before, after), _, _ = _deblur(Client(srv.url, verbose=False), crop)
    with Image.open(after) as a:
        assert a.size == (96, 64)


def test_inference_is_wrapped_in_spaces_gpu_when_spaces_is_importable(models_env, tmp_path, monkeypatch):
    """On a ZeroGPU Space a GPU is attached only inside spaces.GPU functions: both handlers that run
    the model go through it; the model sits on CUDA when torch sees one, else on the CPU."""
    import types

    import torch

    wrapped: list[str] = []
    fake = types.ModuleType("spaces")

    def gpu(fn):
        wrapped.append(fn.__name__)
        return fn

    fake.GPU = gpu
    monkeypatch.setitem(sys.modules, "spaces", fake)
    for key, value in models_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(ROOT))
    app = _import_file("app_with_spaces", ROOT / "app.py", monkeypatch)
    assert "deblur" in wrapped and ("deblur_example" in wrapped) == bool(app.find_models())
    assert app.DEVICE == ("cuda" if torch.cuda.is_available() else "cpu")
    model = app.load_model(next(iter(app.find_models().values())))
    assert {p.device.type for p in model.parameters()} == {app.DEVICE}
