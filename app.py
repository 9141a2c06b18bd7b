"""Gradio app (and Hugging Face Space) for deblurgan-hf: drop a blurred photo, drag the slider.

Run locally with `python app.py [--host HOST] [--port PORT]` (default 127.0.0.1:7860, or the
GRADIO_SERVER_NAME / GRADIO_SERVER_PORT environment variables). The same file runs on a Space
(`scripts/make_space.py` assembles the Space folder). Settings come from environment variables:

    DEBLURGAN_APP_MODELS          model folders to offer, separated by os.pathsep (default: every
                                  bundled model, deblurgan_hf/pretrained/*/config.json)
    DEBLURGAN_APP_MAX_MEGAPIXELS  largest image accepted, in megapixels (default 12)
    DEBLURGAN_APP_MAX_FILE_SIZE   largest upload, e.g. "20mb" (default 20mb)
    DEBLURGAN_APP_MAX_DOWNSCALE_MEGAPIXELS
                                  largest image 'Downscale' decodes, in megapixels (default 150)
    DEBLURGAN_APP_CONCURRENCY     requests deblurred at once (default 2)
    DEBLURGAN_APP_QUEUE_SIZE      requests allowed to wait in the queue (default 16)
    DEBLURGAN_APP_HUB_LOADS       Hub models loaded at once, outside the deblurring slots (default 2)
    DEBLURGAN_APP_HUB_TIMEOUT     seconds to wait for the Hub before giving up (default 10)
    DEBLURGAN_APP_MAX_PARAMETERS  largest Hub model accepted, in parameters (default 20000000)
    DEBLURGAN_APP_MAX_GFLOPS      largest compute per megapixel of a Hub model, in GFLOPs (default 2000)
    DEBLURGAN_APP_MAX_VIDEO_SECONDS    longest clip the Video tab takes, in seconds (default 10)
    DEBLURGAN_APP_MAX_VIDEO_FRAMES     most frames per clip (default 300)
    DEBLURGAN_APP_MAX_VIDEO_MEGAPIXELS largest frame, in megapixels (default 1, which 1280x720 fits)

Every image is checked against the byte and megapixel limits before it is decoded, however it
arrives (upload, example, or a `data:` URL in the API's JSON), and request bodies over what the
largest image needs are refused before they are read. Only files gradio stored itself (uploads,
examples) are opened: a path in the API's JSON is never trusted.

The API endpoint `/deblur` takes (image, model, hub_id, tile, precision, downscale) and returns
((blurred, deblurred) PNG pair, full-resolution PNG file, a Markdown summary). `/deblur_video` takes
(video, model, hub_id, precision) and returns (the deblurred MP4, the same file, a summary); clips
share the images' queue and deblurring slots, and their length is checked before anything decodes
past the first frame (and again while decoding, as a header can lie).
"""

from __future__ import annotations

import argparse
import atexit
import base64
import binascii
import ctypes
import ctypes.util
import io
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

try:  # Hugging Face ZeroGPU Spaces: a GPU is attached only while a spaces.GPU function runs
    import spaces  # imported before torch, as ZeroGPU asks
except ImportError:
    spaces = None
import torch
from PIL import Image

from deblurgan_hf._extras import needs

with needs("app"):
    import gradio as gr
    from gradio.data_classes import FileData, ImageData
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse

from deblurgan_hf import DEFAULT_MODEL, PRETRAINED_DIR, DeblurGAN
from deblurgan_hf.files import atomic_write
from deblurgan_hf.inference import open_image, png_ready, resolve_precision

with needs("app"):
    from deblurgan_hf.video import VideoInfo, deblur_video, probe

ROOT = Path(__file__).resolve().parent
EXAMPLES_DIR = ROOT / "examples"
TILE_CHOICES = ["auto", "off", "256", "384", "512", "768", "1024"]
PRECISIONS = ["auto", "fp32", "bf16"]
# Frames per model call. Peak memory grows with it and one frame at a time is slower on the CPU
# (docs/results/video_memory.md, benchmarks/video_memory.py): 2 is the middle.
VIDEO_BATCH = 2
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
ATTRIBUTION = (
    "Example images: real blurred frames from GOPRO_Large (S. Nah, T. H. Kim, K. M. Lee, "
    '"Deep Multi-scale Convolutional Neural Network for Dynamic Scene Deblurring", CVPR 2017), '
    "CC BY 4.0; downscaled or cropped (see examples/ATTRIBUTION.md)."
)


@dataclass(frozen=True)
class AppConfig:
    """Limits of one app instance (see the module docstring for the environment variables)."""

    max_megapixels: float = 12.0
    max_file_size: str = "20mb"
    # Below PIL's own decompression-bomb error (179 MP), so the app's limit is the one a visitor sees.
    max_downscale_megapixels: float = 150.0
    concurrency: int = 2
    queue_size: int = 16
    hub_loads: int = 2
    hub_timeout_s: float = 10.0
    # Strict for visitors' Hub ids (from_pretrained's own default is 200 M): 10x the bundled model's
    # parameters, and about DeblurGAN's ResNet (11 M, 1,500 GFLOPs per megapixel) in compute.
    max_parameters: int = 20_000_000
    max_gflops_per_megapixel: float = 2000.0
    keep_outputs_s: int = 3600  # downloads older than this are deleted
    max_video_seconds: float = 10.0
    max_video_frames: int = 300
    max_video_megapixels: float = 1.0

    @classmethod
    def from_env(cls) -> AppConfig:
        env = os.environ.get
        return cls(
            max_megapixels=float(env("DEBLURGAN_APP_MAX_MEGAPIXELS", cls.max_megapixels)),
            max_file_size=env("DEBLURGAN_APP_MAX_FILE_SIZE", cls.max_file_size),
            max_downscale_megapixels=float(env("DEBLURGAN_APP_MAX_DOWNSCALE_MEGAPIXELS", cls.max_downscale_megapixels)),
            concurrency=int(env("DEBLURGAN_APP_CONCURRENCY", cls.concurrency)),
            queue_size=int(env("DEBLURGAN_APP_QUEUE_SIZE", cls.queue_size)),
            hub_loads=int(env("DEBLURGAN_APP_HUB_LOADS", cls.hub_loads)),
            hub_timeout_s=float(env("DEBLURGAN_APP_HUB_TIMEOUT", cls.hub_timeout_s)),
            max_parameters=int(env("DEBLURGAN_APP_MAX_PARAMETERS", cls.max_parameters)),
            max_gflops_per_megapixel=float(env("DEBLURGAN_APP_MAX_GFLOPS", cls.max_gflops_per_megapixel)),
            max_video_seconds=float(env("DEBLURGAN_APP_MAX_VIDEO_SECONDS", cls.max_video_seconds)),
            max_video_frames=int(env("DEBLURGAN_APP_MAX_VIDEO_FRAMES", cls.max_video_frames)),
            max_video_megapixels=float(env("DEBLURGAN_APP_MAX_VIDEO_MEGAPIXELS", cls.max_video_megapixels)),
        )

    @property
    def max_file_bytes(self) -> int:
        return parse_size(self.max_file_size)

    @property
    def max_body_bytes(self) -> int:
        """The largest request body: the largest image as base64 (a `data:` URL), plus the other fields."""
        return math.ceil(self.max_file_bytes / 3) * 4 + 2**20


def parse_size(text: str) -> int:
    """ "20mb" -> bytes, in gradio's units (1 kb = 1024 b), so the app and gradio agree on the limit."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*", str(text).lower())
    if match is None:
        raise ValueError(f"file size {text!r}: expected a number with b, kb, mb or gb, like '20mb'")
    return int(float(match[1]) * 1024 ** ("b", "kb", "mb", "gb").index(match[2] or "b"))


def find_models(env_value: str | None = None) -> dict[str, str]:
    """Models to offer, name -> folder: DEBLURGAN_APP_MODELS if set, else the bundled models.

    The default model (`DEFAULT_MODEL`) comes first when it is there.
    """
    env_value = os.environ.get("DEBLURGAN_APP_MODELS", "") if env_value is None else env_value
    if env_value.strip():
        folders = [Path(p).resolve() for p in env_value.split(os.pathsep) if p.strip()]
        bad = [str(p) for p in folders if not (p / "config.json").is_file()]
        if bad:
            raise FileNotFoundError(f"DEBLURGAN_APP_MODELS: {bad} hold no config.json (want save_pretrained folders)")
    else:
        folders = sorted(p.parent for p in PRETRAINED_DIR.glob("*/config.json"))
        folders.sort(key=lambda p: p != Path(DEFAULT_MODEL))
    models: dict[str, str] = {}
    for folder in folders:
        models.setdefault(folder.name, str(folder))
    return models


# CUDA when there is one (on ZeroGPU Spaces torch reports it from the start and attaches it per call).
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def on_gpu(fn):
    """`spaces.GPU(fn)` where the `spaces` package is importable (a no-op off ZeroGPU), else `fn`."""
    return fn if spaces is None else spaces.GPU(fn)


def load_model(source: str, config: AppConfig | None = None) -> DeblurGAN:
    """Load a model folder or Hub id onto DEVICE, refusing models over the app's limits before
    they are built (a visitor's Hub id could otherwise ask for any size)."""
    config = config or AppConfig.from_env()
    return DeblurGAN.from_pretrained(
        source, max_parameters=config.max_parameters, max_gflops_per_megapixel=config.max_gflops_per_megapixel,
        hub_timeout=config.hub_timeout_s,
    ).to(DEVICE)


class ModelCache:
    """Loaded models by source, the `size` most recently used; failures are not kept.

    Hub models load outside the deblurring slots, at most `config.hub_loads` at once and the rest
    refused at once, so a slow or unreachable Hub delays only the visitors who typed a Hub id.
    """

    def __init__(self, config: AppConfig, size: int = 4) -> None:
        self.config, self.size = config, size
        self._models: OrderedDict[str, DeblurGAN] = OrderedDict()
        self._lock = threading.Lock()
        self._hub_slots = threading.BoundedSemaphore(config.hub_loads)

    def get(self, source: str, from_hub: bool) -> DeblurGAN:
        with self._lock:
            if source in self._models:
                self._models.move_to_end(source)
                return self._models[source]
        if from_hub and not self._hub_slots.acquire(blocking=False):
            raise gr.Error(f"{self.config.hub_loads} Hub models are being loaded for other visitors; "
                           "try again in a minute.", title="Busy")
        try:
            model = load_model(source, self.config)
        finally:
            if from_hub:
                self._hub_slots.release()
        with self._lock:
            self._models[source] = model
            while len(self._models) > self.size:
                self._models.popitem(last=False)
        return model


class BodyLimit:
    """ASGI middleware: answer 413 to request bodies over `max_bytes` before they are read.

    gradio limits multipart uploads (max_file_size) itself but parses JSON bodies whole, and an
    image can come inside the JSON as a `data:` URL; the upload route is left to gradio.
    Hand-written: neither starlette nor gradio has a size limit for JSON bodies.
    """

    def __init__(self, app, max_bytes: int, exempt: tuple[str, ...] = ("/gradio_api/upload",)) -> None:
        self.app, self.max_bytes, self.exempt = app, max_bytes, exempt

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/").endswith(self.exempt):
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.max_bytes:
            return await self._refuse(scope, receive, send)
        received, refused = 0, False

        async def counted():
            # A chunked body without (or beyond) its Content-Length: answer 413 as soon as it is over,
            # then tell the app the client left (an exception here would become FastAPI's 400).
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                refused = True
                await self._refuse(scope, receive, send)
                return {"type": "http.disconnect"}
            return message

        async def send_unless_refused(message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted, send_unless_refused)

    async def _refuse(self, scope, receive, send) -> None:
        text = f"Request body too large: this app takes at most {self.max_bytes:,} bytes per request."
        await PlainTextResponse(text, status_code=413)(scope, receive, send)


def _stored_files(demo: gr.Blocks) -> Callable[[str], bool]:
    """`is_stored(path)`: True only for files gradio itself stored (uploads, cached examples) and
    the app's own examples. With preprocess=False gradio does not check the path in the JSON."""
    examples = {os.path.abspath(p) for p in EXAMPLES_DIR.glob("*.png")}

    def is_stored(path: str) -> bool:
        path = os.path.abspath(path)
        return path in examples or any(os.path.abspath(f) == path for files in list(demo.temp_file_sets)
                                       for f in list(files))

    return is_stored


@dataclass(frozen=True)
class _Header:
    pixels: int
    size: tuple[int, int] | None  # None when only the pixel count is known (PIL's bomb error)
    deep_colour: bool  # 16 bits per colour channel, which PIL reads as 8

    def describe(self) -> str:
        mp = self.pixels / 1e6
        return f"The image is {self.size[0]}x{self.size[1]} = {mp:.1f} megapixels" if self.size else \
            f"The image has {mp:.1f} megapixels"


def _read_header(source: str | bytes) -> _Header | None:
    """Size (and colour depth) from the header alone; None if PIL cannot read it (open_image says why)."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            deep = img.mode in ("RGB", "RGBA") and any(str(t.args).endswith(";16B") for t in img.tile)
            return _Header(img.width * img.height, img.size, deep)
    except Image.DecompressionBombError as err:  # over PIL's own limit: its message has the pixel count
        found = re.search(r"\((\d+) pixels\)", str(err))
        return _Header(int(found[1]), None, False) if found else _Header(2 * Image.MAX_IMAGE_PIXELS + 1, None, False)
    except (OSError, ValueError, SyntaxError):
        return None


def _check_megapixels(header: _Header, config: AppConfig, downscale: bool) -> None:
    if not downscale and header.pixels / 1e6 > config.max_megapixels:
        raise gr.Error(
            f"{header.describe()}; this app takes at most {config.max_megapixels:g} megapixels, so it has too "
            "many pixels. Tick 'Downscale large images' (Advanced options) or resize it first.",
            title="Image too large",
        )
    if downscale and header.pixels / 1e6 > config.max_downscale_megapixels:
        raise gr.Error(
            f"{header.describe()}; this app downscales images of at most {config.max_downscale_megapixels:g} "
            "megapixels, so it has too many pixels. Resize it first.",
            title="Image too large",
        )


def _check_bytes(n_bytes: int, config: AppConfig, what: str) -> None:
    if n_bytes > config.max_file_bytes:
        raise gr.Error(f"{what} is {n_bytes / 2**20:.1f} MB; this app takes at most "
                       f"{config.max_file_size.upper()} per image.", title="Image too large")


def _image_source(payload: ImageData, is_stored: Callable[[str], bool], config: AppConfig, name: str) -> str | bytes:
    """The upload's bytes (a `data:` URL) or stored path, checked against the byte limit before decoding."""
    if payload.url and payload.url.startswith("data:"):
        data = payload.url.partition(",")[2]
        _check_bytes(len(data) * 3 // 4 - data[-2:].count("="), config, f"'{name}'")  # decoded size, not decoded
        try:
            return base64.b64decode(data, validate=True)
        except binascii.Error:
            raise gr.Error(f"{name}: the pasted image is not valid base64 data.", title="Unreadable image") from None
    if payload.path:
        # One answer for every path that is not an upload: nothing about the server's files leaks.
        if not (is_stored(payload.path) and os.path.isfile(payload.path)):
            raise gr.Error("This image was not uploaded to this app (or has expired): upload it again.",
                           title="Unknown file")
        _check_bytes(os.path.getsize(payload.path), config, f"'{name}'")
        return payload.path
    raise gr.Error("No image: upload, paste or take a photo first.", title="No image")


def _read_upload(
    upload: dict | None, is_stored: Callable[[str], bool], config: AppConfig, downscale: bool = False
) -> tuple[Image.Image, str, _Header | None]:
    """Decode an upload (gradio's undecoded ImageData dict) to PIL; returns (image, name stem, header).

    The app decodes uploads itself (the event runs with preprocess=False): gr.Image would decode
    them with an unreadable message on bad files, while `open_image` names the problem (empty,
    truncated, not an image). Bytes and megapixels are checked before decoding; with `downscale`
    the image is decoded reduced to what the megapixel limit needs. Raises gr.Error.
    """
    if not upload:
        raise gr.Error("No image: upload, paste or take a photo first.", title="No image")
    try:
        payload = ImageData.model_validate(upload)
    except ValueError:
        raise gr.Error("image: expected an uploaded file (gradio FileData), got something else.",
                       title="Bad input") from None
    name = Path(payload.orig_name or payload.path or "image").name
    source = _image_source(payload, is_stored, config, name)
    header = _read_header(source)
    if header is not None:
        _check_megapixels(header, config, downscale)
    try:
        image = open_image(source, downscale_to=int(config.max_megapixels * 1e6) if downscale else None)
    except (ValueError, FileNotFoundError) as err:
        # open_image names the server's temp path, which means nothing to the visitor
        msg = str(err).replace(f"{payload.path}: ", "").replace("<bytes>: ", "").replace(str(payload.path), name)
        raise gr.Error(f"Cannot read '{name}': {msg}", title="Unreadable image") from None
    stem = re.sub(r"[^\w.-]+", "_", Path(name).stem)[:60] or "image"
    return image, stem, header


def _fit_megapixels(image: Image.Image, max_megapixels: float, original: tuple[int, int] | None = None
                    ) -> tuple[Image.Image, str]:
    """Downscale (keeping the aspect ratio) to the megapixel limit; the note names the `original` size."""
    w, h = image.size
    mp = w * h / 1e6
    ow, oh = original or image.size
    if mp <= max_megapixels:
        return image, "" if (ow, oh) == (w, h) else f" (downscaled from {ow}x{oh})"
    scale = math.sqrt(max_megapixels / mp)
    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0), f" (downscaled from {ow}x{oh})"


def _save_pngs(images: dict[str, Image.Image], out_dir: Path, keep_s: int) -> list[str]:
    """Write PNGs (file name -> image) into a fresh folder, each to a temp name then renamed; prune old folders.

    The app hands gradio files, not PIL images: gradio writes PIL outputs to a path named by the
    content hash without a temp name, so two identical requests at once could serve a half-written file.
    """
    now = time.time()
    for old in out_dir.iterdir():
        if now - old.stat().st_mtime > keep_s:
            shutil.rmtree(old, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(dir=out_dir))
    paths = []
    for name, image in images.items():
        path = folder / name
        with atomic_write(path) as tmp:
            png_ready(image).save(tmp, format="PNG")  # CMYK, LAB and float inputs have no PNG mode of their own
        paths.append(str(path))
    return paths


def _video_upload(upload: dict | None, is_stored: Callable[[str], bool], config: AppConfig) -> tuple[str, str]:
    """(server path, visitor's file name) of an uploaded clip, checked like an image upload: only
    files gradio stored itself, and no larger than the upload limit."""
    if not upload:
        raise gr.Error("No video: upload a clip first.", title="No video")
    try:
        payload = FileData.model_validate(upload)
    except ValueError:
        raise gr.Error("video: expected an uploaded file (gradio FileData), got something else.", title="Bad input") from None
    if not (payload.path and is_stored(payload.path) and os.path.isfile(payload.path)):
        raise gr.Error("This video was not uploaded to this app (or has expired): upload it again.", title="Unknown file")
    name = Path(payload.orig_name or payload.path).name
    size = os.path.getsize(payload.path)
    if size > config.max_file_bytes:
        raise gr.Error(f"'{name}' is {size / 2**20:.1f} MB; this app takes at most {config.max_file_size.upper()} "
                       "per upload.", title="Video too large")
    return payload.path, name


def _check_video_limits(info: VideoInfo, config: AppConfig) -> None:
    problems = []
    if info.seconds > config.max_video_seconds:
        problems.append(f"{info.seconds:.1f} s long (at most {config.max_video_seconds:g} s)")
    if info.frames > config.max_video_frames:
        problems.append(f"{info.frames} frames (at most {config.max_video_frames})")
    if info.width * info.height / 1e6 > config.max_video_megapixels:
        problems.append(f"{info.width}x{info.height} = {info.width * info.height / 1e6:.2f} megapixels per frame "
                        f"(at most {config.max_video_megapixels:g})")
    if problems:
        raise gr.Error(f"The clip is {'; '.join(problems)}: cut or scale it first "
                       "(`deblurgan deblur` on the command line has no limits).", title="Video too long")


def _new_output_folder(out_dir: Path, keep_s: int) -> Path:
    """A fresh folder for one request's outputs; folders older than `keep_s` are deleted first."""
    now = time.time()
    for old in out_dir.iterdir():
        if now - old.stat().st_mtime > keep_s:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=out_dir))


_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if sys.platform.startswith("linux") else None


def _release_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them per thread arena, and gradio runs each
    request on a pool thread, so without this the server's RSS grows towards arenas x peak)."""
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)


def _parse_tile(tile: str) -> int | None:
    """Tile option -> `deblur(tile=...)`: "auto" is None (tiles only big images), "off" is 0."""
    tile = str(tile)
    if tile not in TILE_CHOICES:
        raise gr.Error(f"tile: {tile!r} is not one of {TILE_CHOICES}", title="Bad option")
    return None if tile == "auto" else 0 if tile == "off" else int(tile)


def build_demo(models: dict[str, str] | None = None, config: AppConfig | None = None) -> gr.Blocks:
    """Build the Blocks app with its queue; launch it with `max_file_size=config.max_file_size`.

    Args:
        models: name -> model folder offered in the dropdown; default `find_models()`.
        config: limits; default `AppConfig.from_env()`.
    """
    models = find_models() if models is None else dict(models)
    config = config or AppConfig.from_env()
    out_dir = Path(tempfile.mkdtemp(prefix="deblurgan-app-"))
    atexit.register(shutil.rmtree, out_dir, ignore_errors=True)
    loaded = ModelCache(config)
    # Deblurring slots: gradio runs `concurrency + hub_loads` requests at once, so requests loading a
    # Hub model (ModelCache) never hold the slots the others deblur in.
    deblur_slots = threading.BoundedSemaphore(config.concurrency)

    def deblur(
        image: dict | None,
        model: str,
        hub_id: str,
        tile: str,
        precision: str,
        downscale: bool,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[tuple[str, str], str, str]:
        """Deblur one photo. Returns ((blurred, deblurred) PNGs, the deblurred PNG again, a summary).

        Inputs arrive unprocessed (preprocess=False, see `_read_upload`), so each is checked here.
        """
        try:
            return _deblur(image, model, hub_id, tile, precision, downscale, progress)
        finally:
            _release_freed_memory()  # refused requests too: a decoded data: URL is megabytes

    def _pick_model(model: str, hub_id: str) -> tuple[str, str, bool]:
        """(source, label, from the Hub) for the dropdown's choice or a typed Hub id; gr.Error if neither is valid."""
        hub_id = str(hub_id or "").strip()
        if hub_id:
            # Only Hub repos here: a path would let visitors load arbitrary folders on the server.
            if not HUB_ID.match(hub_id) or os.path.exists(hub_id):
                raise gr.Error(f"Hub id {hub_id!r}: expected 'user/model' on huggingface.co.", title="Bad model id")
            return hub_id, hub_id, True
        if isinstance(model, str) and model in models:
            return models[model], model, False
        if not models:
            raise gr.Error("No bundled model here: enter a Hub model id.", title="No model")
        raise gr.Error(f"model: {model!r} is not one of {list(models)}", title="Bad model")

    def _load(source: str, label: str, from_hub: bool) -> DeblurGAN:
        try:
            return loaded.get(source, from_hub=from_hub)
        except gr.Error:
            raise
        except Exception as err:  # any loading failure (offline, no such repo, too big, bad weights) is shown as-is
            raise gr.Error(f"Could not load model {label!r}: {err}", title="Model not loaded") from err

    def _deblur(image, model, hub_id, tile, precision, downscale, progress):
        if precision not in PRECISIONS:
            raise gr.Error(f"precision: {precision!r} is not one of {PRECISIONS}", title="Bad option")
        tile_px = _parse_tile(tile)
        source, label, from_hub = _pick_model(model, hub_id)
        if not isinstance(downscale, bool):
            raise gr.Error(f"downscale: {downscale!r} is not true or false", title="Bad option")
        if not image:
            raise gr.Error("No image: upload, paste or take a photo first.", title="No image")
        progress(0, desc=f"Loading {label}")
        net = _load(source, label, from_hub)

        def on_tile(done: int, total: int) -> None:
            progress((done, total), desc="Deblurring", unit="tiles")

        progress(0, desc="Waiting for a free slot")
        with deblur_slots:  # decoding too: a downscaled upload can take hundreds of MB while it decodes
            blurred, stem, header = _read_upload(image, is_stored, config, downscale)
            blurred, note = _fit_megapixels(blurred, config.max_megapixels, header and header.size)
            _release_freed_memory()  # the full-size decode's pages, before the deblur's peak adds to them
            if header is not None and header.deep_colour:
                note += "; its 16 bits per colour channel were read as 8 (PIL reads colour PNGs at 8 bits per channel)"
                gr.Warning("This PNG has 16 bits per colour channel: it is deblurred and returned at 8 bits per channel.")
            progress(0, desc="Deblurring")
            start = time.perf_counter()
            try:
                sharp = net.deblur(blurred, tile=tile_px, precision=precision, progress=on_tile)
            except (MemoryError, RuntimeError) as err:
                if isinstance(err, RuntimeError) and "allocate" not in str(err):  # torch: "can't allocate memory"
                    raise
                raise gr.Error("Out of memory: choose a smaller tile size or a smaller image.",
                               title="Out of memory") from err
            seconds = time.perf_counter() - start
            before, after = _save_pngs(
                {f"{stem}.png": blurred, f"{stem}_deblurred.png": sharp}, out_dir, config.keep_outputs_s
            )
        w, h = sharp.size
        summary = (
            f"**{w} x {h}** px ({w * h / 1e6:.2f} MP){note} deblurred in **{seconds:.2f} s** "
            f"with `{label}` (precision {resolve_precision(precision, net)}, tile {tile})"
        )
        return (before, after), after, summary

    def deblur_clip(video: dict | None, model: str, hub_id: str, precision: str,
                    progress: gr.Progress = gr.Progress()) -> tuple[str, str, str]:
        """Deblur one video clip. Returns (the deblurred clip for the player, the same for download, a summary)."""
        try:
            return _deblur_clip(video, model, hub_id, precision, progress)
        finally:
            _release_freed_memory()

    def _deblur_clip(video, model, hub_id, precision, progress):
        if precision not in PRECISIONS:
            raise gr.Error(f"precision: {precision!r} is not one of {PRECISIONS}", title="Bad option")
        source, label, from_hub = _pick_model(model, hub_id)
        path, name = _video_upload(video, is_stored, config)
        try:
            info = probe(path, max_pixels=int(config.max_video_megapixels * 1e6))
        except (ValueError, FileNotFoundError) as err:  # the message names the server's temp path: not shown
            raise gr.Error(f"'{name}': {str(err).replace(path + ': ', '')}", title="Cannot deblur this video") from None
        _check_video_limits(info, config)
        progress(0, desc=f"Loading {label}")
        net = _load(source, label, from_hub)
        progress(0, desc="Waiting for a free slot")
        stem = re.sub(r"[^\w.-]+", "_", Path(name).stem)[:60] or "video"
        result = _new_output_folder(out_dir, config.keep_outputs_s) / f"{stem}_deblurred.mp4"
        with deblur_slots:
            start = time.perf_counter()
            try:
                frames = deblur_video(
                    lambda batch: net.deblur(batch, precision=precision, deconvolve=False), path, result,  # as the CLI
                    batch_size=VIDEO_BATCH, max_frames=config.max_video_frames,
                    progress=lambda done, total: progress((done, total), desc="Deblurring", unit="frames"),
                )
            except ValueError as err:  # longer or more damaged than its header said, or sound MP4 cannot hold
                message = str(err).replace(path + ": ", "").replace(path, name).replace(str(result), result.name)
                raise gr.Error(f"'{name}': {message}", title="Cannot deblur this video") from None
            except (MemoryError, RuntimeError) as err:
                if isinstance(err, RuntimeError) and "allocate" not in str(err):
                    raise
                raise gr.Error("Out of memory: try a shorter or smaller clip.", title="Out of memory") from None
            seconds = time.perf_counter() - start
        audio = f"; its {info.audio} sound copied unchanged" if info.audio else ""
        summary = (f"**{frames} frames**, {info.width} x {info.height} at {float(info.rate):.3g} fps{audio}; "
                   f"deblurred in **{seconds:.1f} s** with `{label}` (precision {resolve_precision(precision, net)})")
        return str(result), str(result), summary

    with gr.Blocks(title="DeblurGAN-HF: motion deblurring", delete_cache=(config.keep_outputs_s,) * 2) as demo:
        gr.Markdown(
            "# Motion deblurring\nDrop a photo blurred by camera shake or motion, press **Deblur**, "
            "then drag the slider to compare (left: input, right: result). The **Video** tab takes a short clip."
        )
        with gr.Tab("Photo", elem_id="photo-tab"):
            with gr.Row():
                with gr.Column():
                    image = gr.Image(
                        label="Blurred photo",
                        sources=["upload", "clipboard", "webcam"],
                        type="filepath",
                        elem_id="input-image",
                    )
                    with gr.Row():
                        model = gr.Dropdown(
                            choices=list(models), value=next(iter(models), None), label="Model", elem_id="model"
                        )
                        hub_id = gr.Textbox("", label="or a Hub model id", placeholder="user/model", elem_id="hub-id")
                    with gr.Accordion("Advanced options", open=False):
                        tile = gr.Dropdown(
                            TILE_CHOICES, value="auto", label="Tile size (px)",
                            info="auto: tiles only big images; off: whole image at once (more memory)",
                        )
                        precision = gr.Radio(PRECISIONS, value="auto", label="Precision")
                        downscale = gr.Checkbox(
                            value=False,
                            label=f"Downscale large images to {config.max_megapixels:g} megapixels instead of refusing them",
                        )
                    run = gr.Button("Deblur", variant="primary", elem_id="deblur-button")
                with gr.Column():
                    slider = gr.ImageSlider(
                        label="Before / after", format="png", elem_id="result-slider", interactive=False
                    )
                    info = gr.Markdown(label="summary", elem_id="result-info")
                    download = gr.DownloadButton("Download full-resolution PNG", elem_id="download")
            examples = sorted(EXAMPLES_DIR.glob("*.png"))
            if examples:
                default = next(iter(models), None)

                @on_gpu
                def deblur_example(example: dict) -> tuple[tuple[str, str], str, str]:
                    """An example with the default settings, so clicking it shows a result at once."""
                    return deblur(example, default, "", "auto", "auto", False, progress=lambda *a, **k: None)

                # Lazy: each example runs once, on its first click, not all at start-up. The cache goes to
                # a temp folder of this process rather than gradio's default .gradio/ in the working
                # directory, where it would outlive a change of the default model and show its old results.
                if "GRADIO_EXAMPLES_CACHE" not in os.environ:
                    cache = tempfile.mkdtemp(prefix="deblurgan-examples-")
                    atexit.register(shutil.rmtree, cache, ignore_errors=True)
                    os.environ["GRADIO_EXAMPLES_CACHE"] = cache
                gr.Examples(
                    [[str(p)] for p in examples],
                    inputs=[image],
                    outputs=[slider, download, info] if default else None,
                    fn=deblur_example if default else None,
                    cache_examples=bool(default),
                    cache_mode="lazy",
                    preprocess=False,  # as the Deblur button: the handler decodes the upload itself
                    label="Examples (real blurred GoPro frames)",
                )
                gr.Markdown(ATTRIBUTION)
            gr.Markdown(
                f"Limits: {config.max_file_size.upper()} per upload, {config.max_megapixels:g} megapixels per image."
            )
        with gr.Tab("Video", elem_id="video-tab"):
            with gr.Row():
                with gr.Column():
                    video = gr.Video(label="Blurred clip", sources=["upload"], elem_id="input-video")
                    with gr.Row():
                        video_model = gr.Dropdown(
                            choices=list(models), value=next(iter(models), None), label="Model", elem_id="video-model"
                        )
                        video_hub_id = gr.Textbox("", label="or a Hub model id", placeholder="user/model")
                    video_precision = gr.Radio(PRECISIONS, value="auto", label="Precision")
                    run_video = gr.Button("Deblur video", variant="primary", elem_id="deblur-video-button")
                with gr.Column():
                    video_result = gr.Video(label="Deblurred", interactive=False, elem_id="result-video")
                    video_info = gr.Markdown(elem_id="video-info")
                    video_download = gr.DownloadButton("Download the deblurred clip (MP4)", elem_id="download-video")
            gr.Markdown(
                f"Limits: {config.max_file_size.upper()} per upload, {config.max_video_seconds:g} s, "
                f"{config.max_video_frames} frames, {config.max_video_megapixels:g} megapixels per frame. Each frame "
                "is deblurred on its own; frame rate, size, rotation and sound are kept."
            )
        run.click(
            on_gpu(deblur),
            inputs=[image, model, hub_id, tile, precision, downscale],
            outputs=[slider, download, info],
            api_name="deblur",
            concurrency_limit=config.concurrency + config.hub_loads,  # see deblur_slots
            concurrency_id="deblur",  # photos and clips share the limit (and deblur_slots)
            preprocess=False,  # the handler decodes the upload itself (see _read_upload)
        )
        run_video.click(
            on_gpu(deblur_clip),
            inputs=[video, video_model, video_hub_id, video_precision],
            outputs=[video_result, video_download, video_info],
            api_name="deblur_video",
            concurrency_limit=config.concurrency + config.hub_loads,
            concurrency_id="deblur",
            preprocess=False,  # the handler checks the upload itself (see _video_upload)
        )
    is_stored = _stored_files(demo)
    return demo.queue(max_size=config.queue_size)


CONFIG = AppConfig.from_env()
demo = build_demo(config=CONFIG)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default=None, help="default: GRADIO_SERVER_NAME or 127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: GRADIO_SERVER_PORT or 7860")
    args = parser.parse_args(argv)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        max_file_size=CONFIG.max_file_size,
        ssr_mode=False,
        app_kwargs={"middleware": [Middleware(BodyLimit, max_bytes=CONFIG.max_body_bytes)]},
    )


if __name__ == "__main__":
    main()
