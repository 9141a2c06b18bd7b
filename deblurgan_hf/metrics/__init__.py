"""PSNR and SSIM, written once (torch, on uint8 levels) and used everywhere.

Validation during training (`psnr_torch` / `ssim_torch` on float batches in [0, 1], quantised to
uint8 levels first), `deblurgan evaluate` and the baselines (`psnr_images` / `ssim_images` on
uint8 images), the benchmarks and the tests all score with the functions here, so a number in
a training log means what it means in an evaluation table. The `evaluate` modules in `psnr/`
and `ssim/` (`load_psnr()`, `load_ssim()`, or `evaluate.load(PSNR_PATH)`) are thin wrappers of
`psnr_images` / `ssim_images`. tests/test_metrics.py pins both to scikit-image's
`peak_signal_noise_ratio` and `structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .._extras import needs

__all__ = [
    "psnr_torch",
    "ssim_torch",
    "psnr_images",
    "ssim_images",
    "check_uint8",
    "Uint8ImageInputs",
    "load_psnr",
    "load_ssim",
    "rgb_to_y",
    "PSNR_PATH",
    "SSIM_PATH",
]

PSNR_PATH = str(Path(__file__).resolve().parent / "psnr")
SSIM_PATH = str(Path(__file__).resolve().parent / "ssim")

# BT.601 luma on 0..255 levels (MATLAB rgb2ycbcr), the Y-channel convention of deblurring papers.
_Y_WEIGHTS = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)


def load_psnr(**kwargs):
    """The PSNR `evaluate` module of this package, loaded from its local folder (works offline)."""
    with needs("eval"):
        import evaluate

    return evaluate.load(PSNR_PATH, **kwargs)


def load_ssim(**kwargs):
    """The SSIM `evaluate` module of this package, loaded from its local folder (works offline)."""
    with needs("eval"):
        import evaluate

    return evaluate.load(SSIM_PATH, **kwargs)


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of an `N x 3 x H x W` tensor on 0..255 levels, in 16..235 (not rounded)."""
    w = x.new_tensor(_Y_WEIGHTS).view(1, 3, 1, 1)
    return 16.0 + (x * w).sum(dim=1, keepdim=True)


# ----------------------------------------------------------------------------------------------
# The one implementation: float64 tensors of uint8 levels (0..255), N x C x H x W
# ----------------------------------------------------------------------------------------------


def _luma_and_crop(
    pred: torch.Tensor, target: torch.Tensor, y_channel: bool, crop_border: int, where: str
) -> tuple[torch.Tensor, torch.Tensor]:
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if y_channel:
        if pred.shape[1] != 3:
            raise ValueError(f"y_channel=True needs RGB images; {where} is gray")
        pred, target = rgb_to_y(pred), rgb_to_y(target)
    if crop_border:
        c = int(crop_border)
        if pred.shape[-2] <= 2 * c or pred.shape[-1] <= 2 * c:
            raise ValueError(f"crop_border={c} leaves nothing of {where} ({pred.shape[-2]}x{pred.shape[-1]})")
        pred, target = pred[..., c:-c, c:-c], target[..., c:-c, c:-c]
    return pred, target


def _psnr_levels(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image (data range 255); identical images give inf."""
    mse = (pred - target).pow(2).flatten(1).mean(dim=1)
    return 10 * torch.log10(255.0**2 / mse)


@lru_cache(maxsize=8)
def _gaussian_1d(size: int, sigma: float) -> tuple[float, ...]:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return tuple((g / g.sum()).tolist())


def _blur_valid(x: torch.Tensor, taps: tuple[float, ...]) -> torch.Tensor:
    """Separable "valid" filtering of the last two dims, as a sum of shifted slices.

    In float64 this is about 5x faster on the CPU than `F.conv2d` (no fast float64 convolution
    there), and as fast as scikit-image's own filtering, for the same numbers to ~1e-15.
    """
    k = len(taps)
    h, w = x.shape[-2] - k + 1, x.shape[-1] - k + 1
    rows = x[..., 0:h, :] * taps[0]
    for i in range(1, k):
        rows.add_(x[..., i : i + h, :], alpha=taps[i])
    out = rows[..., 0:w] * taps[0]
    for i in range(1, k):
        out.add_(rows[..., i : i + w], alpha=taps[i])
    return out


def _ssim_levels(pred: torch.Tensor, target: torch.Tensor, win_size: int, sigma: float, where: str) -> torch.Tensor:
    """SSIM per image: Gaussian window, K1 = 0.01, K2 = 0.03, population covariances, mean over channels.

    The SSIM map is averaged over the pixels where the window lies inside the image, as
    scikit-image does (it filters the padded image and crops `win_size // 2`), so a "valid"
    filter gives its numbers.
    """
    h, w = pred.shape[-2:]
    if h < win_size or w < win_size:
        raise ValueError(f"SSIM needs images of at least {win_size}x{win_size} pixels; {where} is {h}x{w}")
    # float64 on 0..1 keeps E[x^2] - E[x]^2 free of cancellation at the 1e-4 level.
    x, y = pred / 255.0, target / 255.0
    mu_x, mu_y, xx, yy, xy = _blur_valid(torch.stack([x, y, x * x, y * y, x * y]), _gaussian_1d(win_size, sigma))
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.mean(dim=(2, 3)).mean(dim=1)


# ----------------------------------------------------------------------------------------------
# Float batches in [0, 1] (training, validation)
# ----------------------------------------------------------------------------------------------


def _float_levels(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate float batches and quantise them to uint8 levels (0..255, as float64), as saving would."""
    for name, t in (("pred", pred), ("target", target)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            got = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a float torch.Tensor with values in [0, 1], got {got}")
        if t.ndim != 4 or t.shape[1] not in (1, 3):
            raise ValueError(f"{name} must have shape (N, 1 or 3, H, W), got {tuple(t.shape)}")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    return tuple((t.detach().to(torch.float64).clamp(0, 1) * 255).round() for t in (pred, target))


@torch.no_grad()
def psnr_torch(
    pred: torch.Tensor, target: torch.Tensor, y_channel: bool = False, crop_border: int = 0
) -> torch.Tensor:
    """PSNR in dB per image (float32) on uint8 levels (data range 255); identical images give inf.

    Args:
        pred: float `N x C x H x W` in [0, 1] (C is 1 or 3).
        target: same shape as `pred`.
        y_channel: compare BT.601 luma instead of RGB.
        crop_border: pixels dropped on each side before comparing.
    """
    pred, target = _luma_and_crop(*_float_levels(pred, target), y_channel, crop_border, "pred")
    return _psnr_levels(pred, target).float()


@torch.no_grad()
def ssim_torch(
    pred: torch.Tensor,
    target: torch.Tensor,
    y_channel: bool = False,
    crop_border: int = 0,
    win_size: int = 11,
    sigma: float = 1.5,
) -> torch.Tensor:
    """SSIM (Wang et al. 2004) per image (float32) on uint8 levels: Gaussian window, mean over channels.

    Args:
        pred: float `N x C x H x W` in [0, 1] (C is 1 or 3).
        target: same shape as `pred`.
        y_channel: compare BT.601 luma instead of RGB.
        crop_border: pixels dropped on each side before comparing.
        win_size: Gaussian window size (11 = scikit-image's for sigma 1.5).
        sigma: Gaussian standard deviation.
    """
    pred, target = _luma_and_crop(*_float_levels(pred, target), y_channel, crop_border, "pred")
    return _ssim_levels(pred, target, win_size, sigma, "pred").float()


# ----------------------------------------------------------------------------------------------
# uint8 images (evaluation, baselines, the evaluate modules)
# ----------------------------------------------------------------------------------------------


def check_uint8(value, where: str) -> None:
    """Refuse non-uint8 arrays before `datasets.Image` would fail obscurely or re-interpret them."""
    if isinstance(value, np.ndarray) and value.dtype != np.uint8:
        raise ValueError(
            f"{where} has dtype {value.dtype}; the module takes uint8 images (0..255). "
            "Convert float images in [0, 1] with deblurgan_hf.imaging.to_uint8(x)."
        )


def _uint8_array(image, where: str) -> np.ndarray:
    """A uint8 H x W or H x W x 3 array (or PIL image) as such, or a clear error."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"{where} has dtype {arr.dtype} (PIL mode {getattr(image, 'mode', '?')}); uint8 is required")
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)):
        raise ValueError(
            f"{where} has shape {arr.shape} (PIL mode {getattr(image, 'mode', '?')}); "
            "expected H x W (gray) or H x W x 3 (RGB): convert with .convert('RGB')"
        )
    return arr


def _image_levels(image: np.ndarray) -> torch.Tensor:
    """H x W or H x W x C uint8 -> 1 x C x H x W float64 levels."""
    t = torch.from_numpy(image.astype(np.float64))
    return (t[None] if t.ndim == 2 else t.permute(2, 0, 1))[None]


def _pairs_levels(predictions: Sequence, references: Sequence, y_channel: bool, crop_border: int):
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    for i, (pred, ref) in enumerate(zip(predictions, references)):
        p, r = _uint8_array(pred, f"predictions[{i}]"), _uint8_array(ref, f"references[{i}]")
        if p.shape != r.shape:
            raise ValueError(f"predictions[{i}] has shape {p.shape} but references[{i}] has shape {r.shape}")
        yield i, _luma_and_crop(_image_levels(p), _image_levels(r), y_channel, crop_border, f"image {i}")


def psnr_images(predictions: Sequence, references: Sequence, *, y_channel: bool = False, crop_border: int = 0) -> list[float]:
    """PSNR in dB of each (prediction, reference) pair of uint8 images (H x W x 3 or H x W arrays, or PIL).

    Args:
        predictions: restored images.
        references: sharp references, same sizes and channels.
        y_channel: compare BT.601 luma (16..235, not rounded) of RGB images instead of RGB.
        crop_border: pixels dropped on each side before comparing.
    """
    return [float(_psnr_levels(p, r)) for _, (p, r) in _pairs_levels(predictions, references, y_channel, crop_border)]


def ssim_images(predictions: Sequence, references: Sequence, *, y_channel: bool = False, crop_border: int = 0) -> list[float]:
    """SSIM of each (prediction, reference) pair of uint8 images, at least 11 x 11 (see `psnr_images`)."""
    return [float(_ssim_levels(p, r, 11, 1.5, f"image {i}"))
            for i, (p, r) in _pairs_levels(predictions, references, y_channel, crop_border)]


class Uint8ImageInputs:
    """Mixin for the `evaluate` modules: refuse non-uint8 arrays as they are added.

    A plain class on purpose: `evaluate` takes the first `EvaluationModule` subclass a module's
    namespace holds as its metric, so this must not be one.
    """

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of images after checking their dtype (evaluate appends the inputs doc)."""
        for name, column in (("predictions", predictions), ("references", references)):
            for i, value in enumerate(column or []):
                check_uint8(value, f"{name}[{i}]")
        return super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one image pair after checking its dtype (evaluate appends the inputs doc)."""
        check_uint8(prediction, "prediction")
        check_uint8(reference, "reference")
        return super().add(prediction=prediction, reference=reference, **kwargs)
