"""The one inference path: image conversion, tiling, precision.

Every caller (app, CLI, evaluation, benchmarks) goes through `deblur_image`, so an image of any
kind and size is handled the same way everywhere, on whatever device the model is on.
"""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn

from .imaging import PRECISIONS

# Whole-image inference up to this many pixels; above it, tiles (memory grows with the image).
AUTO_TILE_THRESHOLD = 2_100_000  # a 1920x1080 frame still runs whole
AUTO_TILE_SIZE = 1024
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# torch.compile's Inductor caches (FX graphs, AOTAutograd) go here unless TORCHINDUCTOR_CACHE_DIR
# is set: torch's default is under /tmp, which a reboot clears, and a cold compile takes minutes.
COMPILE_CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "deblurgan-hf" / "torch-compile"


def open_image(source: str | os.PathLike | bytes, *, downscale_to: int | None = None) -> Image.Image:
    """Open an image file (or its bytes) fully, upright (EXIF orientation applied).

    Args:
        downscale_to: for callers that will shrink the image to about this many pixels anyway:
            decode it reduced to at least that many (JPEG: at 1/2 to 1/8 scale, straight from the
            DCT; other formats: an integer box reduce right after decoding, before any copy).

    Raises FileNotFoundError for a missing path and ValueError, naming the file, for anything that
    is not a complete image: empty, truncated, not an image, or a decompression bomb.
    """
    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    if not isinstance(source, (bytes, bytearray)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{name}: no such file")
        if path.stat().st_size == 0:
            raise ValueError(f"{name}: the file is empty (0 bytes)")
    elif len(source) == 0:
        raise ValueError(f"{name}: empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source) as img:
            if downscale_to is not None and img.width * img.height > downscale_to:
                img.draft(None, _scaled(img.size, downscale_to))
            img.load()
            return ImageOps.exif_transpose(_box_reduce(img, downscale_to))
    except Image.DecompressionBombError as err:
        limit = 2 * Image.MAX_IMAGE_PIXELS
        raise ValueError(f"{name}: too many pixels; images over {limit:,} pixels are refused as possible "
                         "decompression bombs (PIL.Image.MAX_IMAGE_PIXELS)") from err
    except UnidentifiedImageError as err:
        raise ValueError(f"{name}: not an image file PIL can read (PNG, JPEG, WebP, TIFF, BMP, ...)") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"{name}: unreadable or truncated image ({err})") from err


def _scaled(size: tuple[int, int], pixels: int) -> tuple[int, int]:
    scale = min(1.0, (pixels / (size[0] * size[1])) ** 0.5)
    return max(1, math.ceil(size[0] * scale)), max(1, math.ceil(size[1] * scale))


_REDUCIBLE_AS = {"1": "L", "P": "RGB", "PA": "RGBA", "I;16": "I", "I;16B": "I", "I;16L": "I"}


def _box_reduce(img: Image.Image, pixels: int | None) -> Image.Image:
    """Shrink by the largest integer factor that keeps at least `pixels` pixels (the caller resamples the rest)."""
    factor = 1 if pixels is None else math.isqrt(img.width * img.height // max(1, pixels))
    if factor < 2:
        return img
    if img.mode in _REDUCIBLE_AS:  # modes Image.reduce does not take
        img = img.convert("RGBA" if img.mode == "P" and img.has_transparency_data else _REDUCIBLE_AS[img.mode])
    return img.reduce(factor)


def png_ready(image: Image.Image) -> Image.Image:
    """`image` in a mode PNG stores: float ("F", read as [0, 1] like the model does) as 16-bit grey,
    CMYK, LAB, YCbCr, HSV as RGB (RGBA with transparency); PNG modes unchanged."""
    if image.mode in ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"):
        return image
    if image.mode == "F":
        return Image.fromarray((np.clip(np.asarray(image), 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16))
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


@dataclass
class _Restore:
    """How to turn the RGB float output back into the caller's kind of image."""

    kind: str  # "pil", "numpy", "torch"
    mode: str = "RGB"  # PIL mode, or numpy layout "gray"/"rgb"/"rgba"
    dtype: Any = None
    scale: float = 255.0
    alpha: Any = None  # untouched alpha channel (PIL image or numpy array)
    batched: bool = False
    device: Any = None


def to_tensor(image: Any) -> tuple[torch.Tensor, _Restore]:
    """Convert a supported image to a float (N, 3, H, W) tensor in [0, 1] and a recipe to restore it."""
    if isinstance(image, (str, os.PathLike)):
        image = open_image(image)
    if isinstance(image, Image.Image):
        return _pil_to_tensor(ImageOps.exif_transpose(image))
    if isinstance(image, np.ndarray):
        return _numpy_to_tensor(image)
    if isinstance(image, torch.Tensor):
        if image.ndim not in (3, 4) or image.shape[-3] != 3 or not image.is_floating_point():
            raise ValueError(
                f"tensor of shape {tuple(image.shape)} and dtype {image.dtype}: expected float (3,H,W) or (N,3,H,W) in [0, 1]"
            )
        x = image.detach().float()  # left on its device: deblur_image moves it to the model's
        return (x if image.ndim == 4 else x[None]), _Restore("torch", dtype=image.dtype, batched=image.ndim == 4, device=image.device)
    raise ValueError(f"unsupported input type {type(image).__name__}: expected a PIL image, numpy array, torch tensor or path")


def _pil_to_tensor(img: Image.Image) -> tuple[torch.Tensor, _Restore]:
    mode = img.mode
    if mode.startswith("I"):  # 16-bit grayscale ("I;16*", or "I" from older PNG decoders)
        return _gray_array(np.asarray(img).astype(np.float32) / 65535), _Restore("pil", mode="I;16", scale=65535.0)
    if mode == "F":
        return _gray_array(np.asarray(img).astype(np.float32).clip(0, 1)), _Restore("pil", mode="F", scale=1.0)
    if mode in ("1", "L"):
        return _gray_array(np.asarray(img.convert("L")).astype(np.float32) / 255), _Restore("pil", mode="L")
    alpha = None
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        alpha = rgba.getchannel("A")
        rgb = rgba.convert("RGB")
        out_mode = "LA" if mode == "LA" else "RGBA"
    else:
        rgb = img.convert("RGB")  # P, CMYK, YCbCr, HSV, LAB ...
        out_mode = "RGB"
    # uint8 -> float once, in place: a 12-megapixel image costs one float copy, not three.
    x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].contiguous().float().div_(255)
    return x, _Restore("pil", mode=out_mode, alpha=alpha)


def _gray_array(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))[None, None].expand(1, 3, *arr.shape).contiguous()


def _numpy_to_tensor(arr: np.ndarray) -> tuple[torch.Tensor, _Restore]:
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise ValueError(f"numpy array of shape {arr.shape}: expected HxW, HxWx1, HxWx3 or HxWx4")
    if arr.dtype == np.uint8:
        scale = 255.0
    elif arr.dtype == np.uint16:
        scale = 65535.0
    elif np.issubdtype(arr.dtype, np.floating):
        scale = 1.0
    else:
        raise ValueError(f"numpy array of dtype {arr.dtype}: expected uint8, uint16 or float in [0, 1]")
    data = arr.astype(np.float32) / scale
    layout, alpha = "rgb", None
    if data.ndim == 2 or data.shape[2] == 1:
        layout = "gray" if data.ndim == 2 else "gray1"
        x = _gray_array(data.reshape(data.shape[:2]))
    else:
        if data.shape[2] == 4:
            layout, alpha = "rgba", arr[..., 3:].copy()
        x = torch.from_numpy(np.ascontiguousarray(data[..., :3])).permute(2, 0, 1)[None]
    return x.clamp(0, 1), _Restore("numpy", mode=layout, dtype=arr.dtype, scale=scale, alpha=alpha)


def from_tensor(x: torch.Tensor, restore: _Restore) -> Any:
    """Turn a (N, 3, H, W) output back into the caller's kind of image; clamps `x` to [0, 1] in place."""
    x = x.clamp_(0, 1)
    if restore.kind == "torch":
        out = x if restore.batched else x[0]
        return out.to(restore.device, restore.dtype)
    chw = x[0]
    gray = restore.mode.startswith("gray") or restore.mode in ("L", "I;16", "F")
    if gray:
        chw = chw.mean(dim=0, keepdim=True)
    if restore.kind == "numpy":
        out = _quantise(chw, restore.dtype, restore.scale)
        if restore.mode == "gray":
            out = out[..., 0]
        if restore.alpha is not None:
            out = np.concatenate([out, restore.alpha], axis=2)
        return out
    if restore.mode == "I;16":
        return Image.fromarray(_quantise(chw, np.uint16, 65535.0)[..., 0])
    if restore.mode == "F":
        return Image.fromarray(_quantise(chw, np.float32, 1.0)[..., 0], mode="F")
    levels = _quantise(chw, np.uint8, 255.0)
    img = Image.fromarray(levels[..., 0] if gray else levels)
    if restore.alpha is not None:
        img = img.convert("L").convert("LA") if restore.mode == "LA" else img.convert("RGBA")
        img.putalpha(restore.alpha)
    return img


def _quantise(chw: torch.Tensor, dtype: Any, scale: float) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> (H, W, C) numpy of `dtype`, rounded to its levels (in torch, in place).

    Quantised on the tensor's device, so a GPU result crosses to the CPU as bytes, not floats.
    """
    if np.issubdtype(dtype, np.floating):
        return chw.permute(1, 2, 0).cpu().numpy().astype(dtype)
    levels = chw.mul_(scale).round_()  # in place: `chw` is the output buffer (or its gray mean)
    small = torch.uint8 if dtype == np.uint8 else torch.int32  # torch has no full uint16 support
    return levels.to(small).permute(1, 2, 0).cpu().numpy().astype(dtype, copy=False)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of `tile` pixels covering `length`, neighbours overlapping >= `overlap`."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool, device: torch.device | str = "cpu") -> torch.Tensor:
    """1-D blending weights: rise over `overlap` pixels at inner edges, flat at image borders."""
    w = torch.ones(length, device=device)
    ramp = (torch.arange(overlap, dtype=torch.float32, device=device) + 0.5) / overlap
    if not at_start:
        w[:overlap] = ramp
    if not at_end:
        w[length - overlap:] = ramp.flip(0)
    return w


def run_tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: int,
    overlap: int,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Apply `fn` to overlapping tiles of `x` (N, C, H, W) and blend them with linear ramps, on x's device.

    Hand-written: no maintained library does seam-free blended tiling for arbitrary torch models.
    """
    n, c, h, w = x.shape
    th, tw = min(tile, h), min(tile, w)
    ys, xs = tile_starts(h, th, overlap), tile_starts(w, tw, overlap)
    out = torch.zeros(n, c, h, w, device=x.device)
    weight = torch.zeros(1, 1, h, w, device=x.device)
    total, done = len(ys) * len(xs), 0
    for y in ys:
        wy = _ramp(th, min(overlap, th // 2), y == 0, y + th == h, x.device)
        for x0 in xs:
            wx = _ramp(tw, min(overlap, tw // 2), x0 == 0, x0 + tw == w, x.device)
            blend = wy[:, None] * wx[None, :]
            out[..., y:y + th, x0:x0 + tw] += fn(x[..., y:y + th, x0:x0 + tw]).float() * blend
            weight[..., y:y + th, x0:x0 + tw] += blend
            done += 1
            if progress is not None:
                progress(done, total)
    return out.div_(weight)


def cpuinfo_has_native_bf16(cpuinfo: str) -> bool:
    """True if /proc/cpuinfo text lists bf16 instructions (AVX512-BF16 or AMX-BF16).

    Without them (e.g. AVX2-only CPUs) torch emulates bf16, which is slower than fp32.
    """
    flags = set(cpuinfo.split())
    return "avx512_bf16" in flags or "amx_bf16" in flags


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True on CPUs with bf16 instructions (AVX512-BF16 or AMX), where bf16 autocast pays off."""
    try:
        return cpuinfo_has_native_bf16(Path("/proc/cpuinfo").read_text())
    except OSError:
        return False


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's weights (CPU for a model without any)."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _device_has_native_bf16(device: torch.device) -> bool:
    if device.type == "cpu":
        return cpu_has_native_bf16()
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)  # Ampere (sm_80) and newer
    return False  # MPS and others: not measured, so "auto" does not pick it


def resolve_precision(precision: str, model: nn.Module | None = None, device: torch.device | str | None = None) -> str:
    """What `precision` means for `model` on `device` (default: the model's device, else CPU).

    "auto" picks a lower precision only where it is both fast and measured to be accurate: bf16 where
    the device computes bf16 natively (a CPU with AVX512-BF16 or AMX, a CUDA GPU of sm_80 or newer)
    and the generator family was measured to lose under 0.05 dB PSNR in it against fp32 on the real
    GoPro validation pairs (its class sets `bf16_inference_ok`); fp16 on a GPU where the family's
    `fp16_inference_ok` says the same of fp16; fp32 otherwise.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: allowed values are {', '.join(PRECISIONS)}")
    if device is None:
        device = model_device(model) if model is not None else torch.device("cpu")
    device = torch.device(device)
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("precision='fp16': for CUDA and MPS devices only (the model is on the CPU); use fp32 or bf16")
    if precision != "auto":
        return precision
    generator = getattr(model, "generator", model)
    if getattr(generator, "bf16_inference_ok", False) and _device_has_native_bf16(device):
        return "bf16"
    if device.type != "cpu" and getattr(generator, "fp16_inference_ok", False):
        return "fp16"
    return "fp32"


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """eval() for the duration, then every submodule's own training flag back (a model mid-training
    keeps training; a partly frozen one keeps its frozen parts in eval)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def compiled_forward(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """`model` through `torch.compile` (compiled on the first call for each network and image size;
    a second size compiles once more, with dynamic height and width).

    A new wrapper per call costs nothing: Dynamo keeps the compiled code with the network's forward,
    and Inductor keeps its compiled graphs in COMPILE_CACHE_DIR (or TORCHINDUCTOR_CACHE_DIR when set),
    so a later process for the same network and size loads them instead of compiling again. Updating
    the weights (training, load_state_dict) needs no recompile and is followed (tested).
    """
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(COMPILE_CACHE_DIR))
    # Inductor's freezing passes (oneDNN weight layouts, conv + pointwise fusion): the bundled model
    # at 1280x720, fp32, 2 threads, compiled module, best of 6 on a mostly idle AVX-512 machine:
    # 0.085 s with them, 0.135 s without (benchmarks/inference.py measures the whole deblur call).
    return torch.compile(model, options={"freezing": True})


def _prefers_channels_last(model: nn.Module, precision: str) -> bool:
    """channels_last for autocast (oneDNN and cuDNN's fast low-precision kernels are NHWC) and for
    fp32 in families measured to run faster in it (`channels_last_fp32_faster`)."""
    generator = getattr(model, "generator", model)
    return precision != "fp32" or getattr(generator, "channels_last_fp32_faster", False)


def deblur_image(
    model: nn.Module,
    image: Any,
    *,
    tile: int | None = None,
    overlap: int = 32,
    precision: str = "auto",
    progress: Callable[[int, int], None] | None = None,
    compile: bool = False,
    deconvolve: bool = True,
) -> Any:
    """Deblur `image` with `model` (a module mapping (N,3,H,W) [0,1] to the same); see `DeblurGAN.deblur`.

    Runs on the model's device (the image goes there; tiles are cut and blended there) and leaves
    the model as it found it: training flags come back after the call, and its weights are neither
    moved nor converted (channels_last is applied to the input only).
    """
    device = model_device(model)
    precision = resolve_precision(precision, model, device)
    if tile is not None and tile != 0 and tile < 2 * overlap + 16:
        raise ValueError(f"tile={tile}: must be 0 (no tiling) or at least 2 * overlap + 16 = {2 * overlap + 16}")
    if overlap < 0:
        raise ValueError(f"overlap={overlap}: must be >= 0")
    x, restore = to_tensor(image)
    x = x.to(device)
    h, w = x.shape[-2:]
    if tile is None:
        tile = AUTO_TILE_SIZE if h * w > AUTO_TILE_THRESHOLD else 0
    forward = compiled_forward(model) if compile else model
    channels_last = _prefers_channels_last(model, precision)

    def run(batch: torch.Tensor) -> torch.Tensor:
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=AUTOCAST_DTYPES.get(precision), enabled=precision != "fp32"):
            return forward(batch).float()

    with torch.inference_mode(), _eval_mode(model):
        if tile == 0 or (h <= tile and w <= tile):
            y = run(x)
            if progress is not None:
                progress(1, 1)
        else:
            y = run_tiled(run, x, tile, overlap, progress)
        stage = getattr(model, "deconvolution", None)
        if deconvolve and stage is not None:  # one kernel per photo, so on the whole image, not per tile
            y = torch.stack([stage(blurred, restored) for blurred, restored in zip(x, y)])
        del x  # a 12-megapixel input is 144 MB of float32: free it before the output conversion
        return from_tensor(y, restore)  # in place on y, so inside inference mode too
