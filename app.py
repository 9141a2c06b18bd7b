"""Gradio app (and Hugging Face Space) for deblurgan-hf: drop a blurred photo, drag the slider.

Run locally with `python app.py [--host HOST] [--port PORT]` (default 127.0.0.1:7860, or the
GRADIO_SERVER_NAME / GRADIO_SERVER_PORT environment variables). The same file runs on a Space
(`scripts/make_space.py` assembles the Space folder). Settings come from environment variables:

    DEBLURGAN_APP_MODELS          model folders to offer, separated by os.pathsep (default: every
                                  bundled model, deblurgan_hf/pretrained/*/config.json)
    DEBLURGAN_APP_MAX_MEGAPIXELS  largest image accepted, in megapixels (default 12)
    DEBLURGAN_APP_MAX_FILE_SIZE   largest upload, e.g. "20mb" (default 20mb)
    DEBLURGAN_APP_CONCURRENCY     requests processed at once (default 2)
    DEBLURGAN_APP_QUEUE_SIZE      requests allowed to wait in the queue (default 16)

The API endpoint `/deblur` takes (image, model, hub_id, tile, precision, downscale) and returns
((blurred, deblurred) PNG pair, full-resolution PNG file, a Markdown summary).
"""

from __future__ import annotations

import argparse
import atexit
import base64
import binascii
import ctypes
import ctypes.util
import functools
import io
import math
import os
import re
import shutil
import sys
import tempfile
import time
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
    from gradio.data_classes import ImageData

from deblurgan_hf import DEFAULT_MODEL, PRETRAINED_DIR, DeblurGAN
from deblurgan_hf.inference import open_image, resolve_precision

ROOT = Path(__file__).resolve().parent
EXAMPLES_DIR = ROOT / "examples"
TILE_CHOICES = ["auto", "off", "256", "384", "512", "768", "1024"]
PRECISIONS = ["auto", "fp32", "bf16"]
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
    concurrency: int = 2
    queue_size: int = 16
    keep_outputs_s: int = 3600  # downloads older than this are deleted

    @classmethod
    def from_env(cls) -> AppConfig:
        env = os.environ.get
        return cls(
            max_megapixels=float(env("DEBLURGAN_APP_MAX_MEGAPIXELS", cls.max_megapixels)),
            max_file_size=env("DEBLURGAN_APP_MAX_FILE_SIZE", cls.max_file_size),
            concurrency=int(env("DEBLURGAN_APP_CONCURRENCY", cls.concurrency)),
            queue_size=int(env("DEBLURGAN_APP_QUEUE_SIZE", cls.queue_size)),
        )


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


@functools.lru_cache(maxsize=4)
def load_model(source: str) -> DeblurGAN:
    """Load a model folder or Hub id onto DEVICE once; later requests reuse it (failures are not cached)."""
    return DeblurGAN.from_pretrained(source).to(DEVICE)


def _refuse_if_too_large(source: str | bytes, max_megapixels: float) -> None:
    """Refuse an over-size image from its header alone, before decoding it (a panorama can be 100s of MB)."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            w, h = img.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):  # open_image reports these
        return
    _check_megapixels(w, h, max_megapixels)


def _check_megapixels(w: int, h: int, max_megapixels: float) -> None:
    if w * h / 1e6 > max_megapixels:
        raise gr.Error(
            f"The image is {w}x{h} = {w * h / 1e6:.1f} megapixels; this app takes at most {max_megapixels:g} "
            "megapixels. Tick 'Downscale large images' (Advanced options) or resize it first.",
            title="Image too large",
        )


def _read_upload(
    upload: dict | None, max_megapixels: float | None = None, downscale: bool = False
) -> tuple[Image.Image, str]:
    """Decode an upload (gradio's undecoded ImageData dict) to PIL; returns (image, name stem).

    The app decodes uploads itself (the event runs with preprocess=False): gr.Image would decode
    them with an unreadable message on bad files, while `open_image` names the problem (empty,
    truncated, not an image, decompression bomb). Raises gr.Error with a readable message.
    """
    if not upload:
        raise gr.Error("No image: upload, paste or take a photo first.", title="No image")
    payload = ImageData.model_validate(upload)
    name = Path(payload.orig_name or payload.path or "image").name
    source: str | bytes
    if payload.url and payload.url.startswith("data:"):
        try:
            source = base64.b64decode(payload.url.split(",", 1)[1], validate=True)
        except (IndexError, binascii.Error):
            raise gr.Error(f"{name}: the pasted image is not valid base64 data.", title="Unreadable image")
    elif payload.path:
        source = payload.path
    else:
        raise gr.Error("No image: upload, paste or take a photo first.", title="No image")
    if max_megapixels is not None and not downscale:
        _refuse_if_too_large(source, max_megapixels)
    try:
        image = open_image(source)
    except (ValueError, FileNotFoundError) as err:
        # open_image names the server's temp path, which means nothing to the visitor
        msg = str(err).replace(f"{payload.path}: ", "").replace("<bytes>: ", "").replace(str(payload.path), name)
        raise gr.Error(f"Cannot read '{name}': {msg}", title="Unreadable image")
    stem = re.sub(r"[^\w.-]+", "_", Path(name).stem)[:60] or "image"
    return image, stem


def _fit_megapixels(image: Image.Image, max_megapixels: float, downscale: bool) -> tuple[Image.Image, str]:
    """Enforce the size limit: downscale (keeping the aspect ratio) if asked, else raise gr.Error."""
    w, h = image.size
    mp = w * h / 1e6
    if mp <= max_megapixels:
        return image, ""
    if not downscale:
        _check_megapixels(w, h, max_megapixels)
    scale = math.sqrt(max_megapixels / mp)
    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0), f" (downscaled from {w}x{h})"


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
        path, tmp = folder / name, folder / f".{name}.tmp"
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
        paths.append(str(path))
    return paths


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
        hub_id = str(hub_id or "").strip()
        if precision not in PRECISIONS:
            raise gr.Error(f"precision: {precision!r} is not one of {PRECISIONS}", title="Bad option")
        tile_px = _parse_tile(tile)
        if hub_id:
            # Only Hub repos here: a path would let visitors load arbitrary folders on the server.
            if not HUB_ID.match(hub_id) or os.path.exists(hub_id):
                raise gr.Error(f"Hub id {hub_id!r}: expected 'user/model' on huggingface.co.", title="Bad model id")
            source, label = hub_id, hub_id
        elif isinstance(model, str) and model in models:
            source, label = models[model], model
        elif not models:
            raise gr.Error("No bundled model here: enter a Hub model id.", title="No model")
        else:
            raise gr.Error(f"model: {model!r} is not one of {list(models)}", title="Bad model")

        if not isinstance(downscale, bool):
            raise gr.Error(f"downscale: {downscale!r} is not true or false", title="Bad option")
        blurred, stem = _read_upload(image, config.max_megapixels, downscale)
        blurred, note = _fit_megapixels(blurred, config.max_megapixels, downscale)
        progress(0, desc=f"Loading {label}")
        try:
            net = load_model(source)
        except Exception as err:  # any loading failure (offline, no such repo, bad weights) is shown as-is
            raise gr.Error(f"Could not load model {label!r}: {err}", title="Model not loaded")

        def on_tile(done: int, total: int) -> None:
            progress((done, total), desc="Deblurring", unit="tiles")

        progress(0, desc="Deblurring")
        start = time.perf_counter()
        try:
            sharp = net.deblur(blurred, tile=tile_px, precision=precision, progress=on_tile)
        except (MemoryError, RuntimeError) as err:
            if isinstance(err, RuntimeError) and "allocate" not in str(err):  # torch: "can't allocate memory"
                raise
            raise gr.Error("Out of memory: choose a smaller tile size or a smaller image.", title="Out of memory")
        seconds = time.perf_counter() - start
        before, after = _save_pngs(
            {f"{stem}.png": blurred, f"{stem}_deblurred.png": sharp}, out_dir, config.keep_outputs_s
        )
        _release_freed_memory()
        w, h = sharp.size
        summary = (
            f"**{w} x {h}** px ({w * h / 1e6:.2f} MP){note} deblurred in **{seconds:.2f} s** "
            f"with `{label}` (precision {resolve_precision(precision, net)}, tile {tile})"
        )
        return (before, after), after, summary

    with gr.Blocks(title="DeblurGAN-HF: motion deblurring", delete_cache=(config.keep_outputs_s,) * 2) as demo:
        gr.Markdown(
            "# Motion deblurring\nDrop a photo blurred by camera shake or motion, press **Deblur**, "
            "then drag the slider to compare (left: input, right: result)."
        )
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
        run.click(
            on_gpu(deblur),
            inputs=[image, model, hub_id, tile, precision, downscale],
            outputs=[slider, download, info],
            api_name="deblur",
            concurrency_limit=config.concurrency,
            preprocess=False,  # the handler decodes the upload itself (see _read_upload)
        )
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
    )


if __name__ == "__main__":
    main()
