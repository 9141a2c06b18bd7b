"""PSNR and SSIM: `evaluate` modules (the reference numbers) and a fast torch path for training.

The `evaluate` modules live in `psnr/psnr.py` and `ssim/ssim.py` and work on uint8 images
(`load_psnr()`, `load_ssim()`). `psnr_torch` / `ssim_torch` take the project's float tensors,
quantise them to uint8 levels first and then compute the same numbers (PSNR exactly up to
float rounding, SSIM within 1e-3 of the module), batched, so validation during training
reports what `deblurgan evaluate` would.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from .._extras import needs

__all__ = ["psnr_torch", "ssim_torch", "load_psnr", "load_ssim", "rgb_to_y", "PSNR_PATH", "SSIM_PATH"]

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


def _prepare(
    pred: torch.Tensor, target: torch.Tensor, y_channel: bool, crop_border: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate, quantise to uint8 levels (0..255, as float), optional Y channel and border crop."""
    for name, t in (("pred", pred), ("target", target)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            got = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a float torch.Tensor with values in [0, 1], got {got}")
        if t.ndim != 4 or t.shape[1] not in (1, 3):
            raise ValueError(f"{name} must have shape (N, 1 or 3, H, W), got {tuple(t.shape)}")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    pred, target = ((t.detach().to(dtype).clamp(0, 1) * 255).round() for t in (pred, target))
    if y_channel:
        if pred.shape[1] != 3:
            raise ValueError("y_channel=True needs RGB input (3 channels)")
        pred, target = rgb_to_y(pred), rgb_to_y(target)
    if crop_border:
        c = crop_border
        if pred.shape[-2] <= 2 * c or pred.shape[-1] <= 2 * c:
            raise ValueError(f"crop_border={c} leaves nothing of a {tuple(pred.shape[-2:])} image")
        pred, target = pred[..., c:-c, c:-c], target[..., c:-c, c:-c]
    return pred, target


@torch.no_grad()
def psnr_torch(
    pred: torch.Tensor, target: torch.Tensor, y_channel: bool = False, crop_border: int = 0
) -> torch.Tensor:
    """PSNR in dB per image on uint8 levels (data range 255); identical images give inf.

    Args:
        pred: float `N x C x H x W` in [0, 1] (C is 1 or 3).
        target: same shape as `pred`.
        y_channel: compare BT.601 luma instead of RGB.
        crop_border: pixels dropped on each side before comparing.
    """
    pred, target = _prepare(pred, target, y_channel, crop_border, torch.float64)
    mse = (pred - target).pow(2).flatten(1).mean(dim=1)
    return (10 * torch.log10(255.0**2 / mse)).float()


@lru_cache(maxsize=8)
def _gaussian_1d(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


@torch.no_grad()
def ssim_torch(
    pred: torch.Tensor,
    target: torch.Tensor,
    y_channel: bool = False,
    crop_border: int = 0,
    win_size: int = 11,
    sigma: float = 1.5,
) -> torch.Tensor:
    """SSIM (Wang et al. 2004) per image on uint8 levels: Gaussian window, mean over channels.

    Same convention as the SSIM module and `skimage.metrics.structural_similarity(
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)`: the SSIM map
    is averaged over the pixels at least `win_size // 2` from the border, where the window lies
    inside the image, so a "valid" convolution gives the same numbers as scikit-image's padded one.

    Args:
        pred: float `N x C x H x W` in [0, 1] (C is 1 or 3).
        target: same shape as `pred`.
        y_channel: compare BT.601 luma instead of RGB.
        crop_border: pixels dropped on each side before comparing.
        win_size: Gaussian window size (11 = scikit-image's for sigma 1.5).
        sigma: Gaussian standard deviation.
    """
    # float64 on 0..1 keeps E[x^2] - E[x]^2 free of cancellation at the 1e-4 level; it is cheap here.
    pred, target = _prepare(pred, target, y_channel, crop_border, torch.float64)
    pred, target = pred / 255.0, target / 255.0
    n, c, h, w = pred.shape
    if h < win_size or w < win_size:
        raise ValueError(f"SSIM needs images of at least {win_size}x{win_size}, got {h}x{w}")
    g = _gaussian_1d(win_size, sigma).to(pred.device)
    gh, gw = g.view(1, 1, win_size, 1).repeat(c, 1, 1, 1), g.view(1, 1, 1, win_size).repeat(c, 1, 1, 1)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, gh, groups=c), gw, groups=c)

    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = blur(pred), blur(target)
    var_x = blur(pred * pred) - mu_x**2
    var_y = blur(target * target) - mu_y**2
    cov = blur(pred * target) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.mean(dim=(2, 3)).mean(dim=1).float()
