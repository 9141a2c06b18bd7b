"""Classical deblurring baselines measured beside the models: identity, unsharp masking, and, when
the true blur kernel is known (synthetic data), non-blind Richardson-Lucy and unsupervised Wiener.

All baselines take and return float `H x W x 3` numpy arrays in [0, 1] (the scikit-image
convention; the evaluation quantises to uint8 afterwards, as for the models). Kernels are 2-D,
non-negative, sum to 1, and act by true convolution (`scipy.signal.convolve`), the convention
of `skimage.restoration`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ._extras import needs
from .imaging import to_uint8
from .metrics import psnr_images

with needs("eval"):
    from skimage.filters import unsharp_mask
    from skimage.restoration import richardson_lucy as _richardson_lucy
    from skimage.restoration import unsupervised_wiener

__all__ = [
    "BASELINES",
    "KERNEL_BASELINES",
    "UNSHARP_GRID",
    "Baseline",
    "identity",
    "unsharp",
    "richardson_lucy",
    "wiener",
    "choose_unsharp",
]

# Small on purpose: the grid is searched on the evaluation set itself (an oracle-tuned baseline).
UNSHARP_GRID: tuple[tuple[float, float], ...] = tuple((r, a) for r in (1.0, 2.0, 4.0, 8.0) for a in (0.5, 1.0, 2.0))


def _check(image: np.ndarray, kernel: np.ndarray | None = None, needs_kernel: bool = False) -> None:
    if not (isinstance(image, np.ndarray) and image.dtype.kind == "f" and image.ndim == 3 and image.shape[-1] == 3):
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"baselines take float H x W x 3 arrays in [0, 1], got {got}")
    if needs_kernel:
        if kernel is None:
            raise ValueError("this baseline is non-blind: it needs the true blur kernel (synthetic data only)")
        if kernel.ndim != 2 or kernel.min() < 0 or abs(float(kernel.sum()) - 1.0) > 1e-3:
            raise ValueError(f"kernel must be 2-D, non-negative and sum to 1; got shape {kernel.shape}, sum {kernel.sum():.4f}")


def identity(image: np.ndarray, kernel: np.ndarray | None = None) -> np.ndarray:
    """The blurred input itself: the score any method has to beat."""
    _check(image)
    return image


def unsharp(image: np.ndarray, radius: float = 2.0, amount: float = 1.0) -> np.ndarray:
    """Unsharp masking: `image + amount * (image - gaussian(image, radius))`, clipped to [0, 1].

    Args:
        image: float `H x W x 3` in [0, 1].
        radius: Gaussian sigma in pixels.
        amount: strength of the added detail.
    """
    _check(image)
    # channel_axis=2, not -1: scikit-image 0.26's unsharp_mask slices axis 0 for a negative axis.
    return unsharp_mask(image, radius=radius, amount=amount, channel_axis=2)


def _pad(image: np.ndarray, kernel: np.ndarray) -> tuple[np.ndarray, int]:
    # Deconvolution assumes what lies outside the frame; reflecting the image there keeps
    # zero-padding (RL) or wrap-around (Wiener's FFT) from ringing into the picture.
    p = max(kernel.shape)
    return np.pad(image, ((p, p), (p, p), (0, 0)), mode="reflect"), p


def richardson_lucy(image: np.ndarray, kernel: np.ndarray, num_iter: int = 30) -> np.ndarray:
    """Non-blind Richardson-Lucy deconvolution with the true kernel (`skimage.restoration`).

    Args:
        image: blurred float `H x W x 3` in [0, 1].
        kernel: the true blur kernel (2-D, sums to 1).
        num_iter: RL iterations; more sharpen more and amplify more noise.
    """
    _check(image, kernel, needs_kernel=True)
    padded, p = _pad(image.astype(np.float64), kernel)
    # A 1-deep 3-D kernel convolves the three channels independently in one call.
    out = _richardson_lucy(padded, kernel.astype(np.float64)[..., None], num_iter=num_iter)
    return np.clip(out[p:-p, p:-p], 0.0, 1.0)


def wiener(image: np.ndarray, kernel: np.ndarray, seed: int = 0) -> np.ndarray:
    """scikit-image's unsupervised Wiener-Hunt deconvolution (Gibbs-sampled regularisation)
    with the true kernel, channel by channel, seeded so that runs repeat.

    Args:
        image: blurred float `H x W x 3` in [0, 1].
        kernel: the true blur kernel (2-D, sums to 1).
        seed: seed of the Gibbs sampler.
    """
    _check(image, kernel, needs_kernel=True)
    padded, p = _pad(image.astype(np.float64), kernel)
    k = kernel.astype(np.float64)
    channels = [
        unsupervised_wiener(padded[..., c], k, rng=np.random.default_rng(seed + c))[0] for c in range(3)
    ]
    return np.clip(np.stack(channels, axis=-1)[p:-p, p:-p], 0.0, 1.0)


@dataclass(frozen=True)
class Baseline:
    """A named baseline; `needs_kernel` ones run only where the true kernel is known."""

    name: str
    fn: Callable[..., np.ndarray]
    needs_kernel: bool = False


BASELINES: dict[str, Baseline] = {
    "identity": Baseline("identity", identity),
    "unsharp": Baseline("unsharp", unsharp),
    "rl": Baseline("rl", richardson_lucy, needs_kernel=True),
    "wiener": Baseline("wiener", wiener, needs_kernel=True),
}
KERNEL_BASELINES = tuple(name for name, b in BASELINES.items() if b.needs_kernel)


def choose_unsharp(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    grid: Iterable[tuple[float, float]] = UNSHARP_GRID,
) -> tuple[tuple[float, float], dict[tuple[float, float], float]]:
    """The (radius, amount) of `grid` with the best mean PSNR (uint8, as evaluated) over `pairs`.

    Args:
        pairs: `(blurred, sharp)` float `H x W x 3` arrays in [0, 1].
        grid: candidate `(radius, amount)` settings.

    Returns:
        The best setting and the mean PSNR of every setting.
    """
    grid = list(grid)
    totals = dict.fromkeys(grid, 0.0)
    n = 0
    for blurred, sharp in pairs:
        ref = to_uint8(sharp)
        for setting in grid:
            totals[setting] += psnr_images([to_uint8(unsharp(blurred, *setting))], [ref])[0]
        n += 1
    if n == 0:
        raise ValueError("choose_unsharp got no image pairs")
    means = {s: t / n for s, t in totals.items()}
    return max(means, key=means.get), means
