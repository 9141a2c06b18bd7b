"""Blind deconvolution of camera shake: estimate one blur kernel for the photo, then deconvolve.

Long, curved hand-shake kernels (15-75 px) are what a small generator trained on a CPU budget
does not learn to undo (an independent evaluation measured +0.2 dB for `nafnet-motion-s` on real
13-27 px kernels, +0.0 dB on 31-75 px ones), while the classical pipeline
recovers them from the image itself:

1. kernel estimation, coarse to fine (kernel sizes growing by sqrt 2): alternate a latent image
   with only salient edges (an L0 gradient prior, Xu et al. 2013; Pan et al. 2014) and a
   least-squares kernel fit on the gradients (conjugate gradients on the kernel's support), then
   drop weak and detached kernel pixels and re-centre it on its centre of mass; a long kernel is
   estimated again on a smaller copy (optionally, on the latent image's strongest edges only, Cho
   and Lee 2009); in a noisy (dim-light) photo, pixels near a clipped light are left out of the fit;
2. non-blind deconvolution of the full-resolution colour image with a hyper-Laplacian gradient
   prior (|g|^(2/3), Krishnan and Fergus 2009), by half-quadratic splitting in the Fourier domain,
   in a dim-light photo clipped pixels taken as at least what was recorded (Cho et al. 2011);
3. in a clean photo whose long kernel was estimated at three scales, the estimate whose
   deconvolution, blurred again, best matches the photo;
4. a check that the result kept the input's low frequencies (blur does not change them) away from
   clipped lights: a kernel estimate that went wrong gives a result that does not, and the input
   is returned.

Written here with torch FFTs because no maintained library does blind kernel estimation
(scikit-image has only non-blind deconvolution, and no hyper-Laplacian prior).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.fft as fft
import torch.nn.functional as F

from .blur.rendering import apply_kernel

__all__ = ["BlindDeconvolution", "KernelEstimate", "clipped_regions", "deconvolve", "estimate_kernel", "kernel_agreement",
           "prefers_deconvolution", "reblur_residual",
           "low_frequency_change", "noise_level"]

# Shorter estimates are taken for a sharp photo: on sharp Kodak24 / CBSD68 photos the estimate is 4-5 px
# wide, and deconvolving with it only adds artefacts; blur that short is the generator's.
MIN_KERNEL = 7
# `noise_level` of the camera-shake benchmark's photos, 1% Gaussian noise in each channel, read on the
# channel mean the stage uses (0.01 / sqrt 3 = 0.0058; 0.006 rounded); the prior grows in proportion above it.
NOISE_REFERENCE = 0.006


def _otf(kernel: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Real FFT of `kernel` zero-padded to `shape`, its centre moved to the origin."""
    kh, kw = kernel.shape[-2:]
    padded = kernel.new_zeros(*kernel.shape[:-2], *shape)
    padded[..., :kh, :kw] = kernel
    return fft.rfft2(torch.roll(padded, (-(kh // 2), -(kw // 2)), dims=(-2, -1)))


def _kernel_from_spectrum(spectrum: torch.Tensor, shape: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """The `size` window around the origin of an inverse FFT (the adjoint of `_otf`)."""
    kh, kw = size
    full = torch.roll(fft.irfft2(spectrum, s=shape), (kh // 2, kw // 2), dims=(-2, -1))
    return full[..., :kh, :kw]


def _gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Circular forward differences along width and height."""
    return torch.roll(x, -1, -1).sub_(x), torch.roll(x, -1, -2).sub_(x)


def _gradient_otfs(shape: tuple[int, int], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    delta = torch.zeros(shape, dtype=dtype)
    delta[0, 0] = 1
    gx, gy = _gradients(delta)
    return fft.rfft2(gx), fft.rfft2(gy)


def _ramp_weights(inside: int, before: int, after: int, dtype: torch.dtype) -> torch.Tensor:
    """1 over the `inside` samples, falling smoothly to 0 across the `before` and `after` padding."""
    def fall(n: int) -> torch.Tensor:
        return 0.5 + 0.5 * torch.cos(torch.linspace(0, math.pi, n + 2, dtype=dtype)[1:-1])
    return torch.cat([fall(before).flip(0), torch.ones(inside, dtype=dtype), fall(after)])


def _pad_periodic(image: torch.Tensor, pad: int, kernel: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """(padded image, pad): reflect-padded by at least `pad` (more after the image, up to a size the FFT
    is fast at: a prime factor makes it several times slower) and blended there into a blurred copy, so
    the padded image is nearly periodic and FFT deconvolution does not ring from the frame's edges."""
    from scipy.fft import next_fast_len

    squeeze = image.dim() == 2
    x = image[None] if squeeze else image
    h, w = x.shape[-2:]
    pad = max(1, min(pad, h - 1, w - 1))
    extra_h, extra_w = (min(next_fast_len(n + 2 * pad, real=True) - n - 2 * pad, n - 1 - pad) for n in (h, w))
    padded = F.pad(x[None], (pad, pad + extra_w, pad, pad + extra_h), mode="reflect")[0]
    size = padded.shape[-2:]
    if kernel is None:  # no kernel yet: a Gaussian as wide as the padding
        sigma = max(pad / 3, 1.0)
        t = torch.arange(-int(3 * sigma), int(3 * sigma) + 1, dtype=x.dtype)
        g = torch.exp(-(t**2) / (2 * sigma**2))
        kernel = g[:, None] * g[None, :]
        kernel = kernel / kernel.sum()
    blurred = fft.irfft2(fft.rfft2(padded) * _otf(kernel, size), s=size)
    alpha = (_ramp_weights(h, pad, pad + extra_h, x.dtype)[:, None] * _ramp_weights(w, pad, pad + extra_w, x.dtype)[None, :])
    out = alpha * padded + (1 - alpha) * blurred
    return (out[0] if squeeze else out), pad


def _half_quadratic(blurred: torch.Tensor, kernel: torch.Tensor, sparsify: Callable, beta: float, beta_max: float,
                    growth: float) -> torch.Tensor:
    """argmin_x |kernel * x - blurred|^2 / 2 + a gradient prior, by half-quadratic splitting (circular):
    `sparsify(gx, gy, beta)` is the prior's step on the gradients, beta grows by `growth` up to `beta_max`."""
    shape = blurred.shape[-2:]
    k = _otf(kernel, shape)
    dx, dy = _gradient_otfs(shape, blurred.dtype)
    numerator = k.conj() * fft.rfft2(blurred)
    denominator_k, denominator_d = k.abs() ** 2, dx.abs() ** 2 + dy.abs() ** 2
    del k
    x = blurred
    # In place, for memory (these temporaries set the stage's peak), but in the original order of operations and
    # operands: `estimate_kernel` is chaotic, and products rounded another way (conj(dx) * F as F * conj(dx)) move it.
    while beta < beta_max:
        gx, gy = sparsify(*_gradients(x), beta)
        spectrum = (dx.conj() * fft.rfft2(gx)).add_(dy.conj() * fft.rfft2(gy))
        del gx, gy
        x = fft.irfft2(spectrum.mul_(beta).add_(numerator).div_(denominator_k + beta * denominator_d), s=shape)
        beta *= growth
    return x


def _l0_latent(blurred: torch.Tensor, kernel: torch.Tensor, weight: float) -> torch.Tensor:
    """argmin_x |kernel * x - blurred|^2 + weight * |grad x|_0 (circular)."""
    def keep_strong(gx: torch.Tensor, gy: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
        flat = gx**2 + gy**2 < weight / beta
        return gx.masked_fill(flat, 0), gy.masked_fill(flat, 0)

    return _half_quadratic(blurred, kernel, keep_strong, 2 * weight, 1e5, 2)


def _fit_kernel(latent_gradients: tuple[torch.Tensor, torch.Tensor], blurred: torch.Tensor, mask: torch.Tensor,
                start: torch.Tensor, weight: float, iterations: int = 20) -> torch.Tensor:
    """argmin_k sum over gradient directions |mask (latent gradient * k - grad blurred)|^2 + weight |k|^2,
    k on the support of `start`, by conjugate gradients from `start`."""
    shape, size = blurred.shape[-2:], start.shape
    latent_spectra = [fft.rfft2(g) for g in latent_gradients]

    def normal(k: torch.Tensor) -> torch.Tensor:
        kf = _otf(k, shape)
        out = weight * k
        for s in latent_spectra:
            residual = mask * fft.irfft2(s * kf, s=shape)
            out = out + _kernel_from_spectrum(s.conj() * fft.rfft2(residual), shape, size)
        return out

    rhs = sum(_kernel_from_spectrum(s.conj() * fft.rfft2(mask * g), shape, size)
              for s, g in zip(latent_spectra, _gradients(blurred)))
    k = start.clone()
    r = rhs - normal(k)
    p, rr = r.clone(), (r * r).sum()
    for _ in range(iterations):
        if rr < 1e-20:
            break
        q = normal(p)
        step = rr / (p * q).sum().clamp_min(1e-30)
        k, r = k + step * p, r - step * q
        rr_next = (r * r).sum()
        p, rr = r + (rr_next / rr) * p, rr_next
    return k


def _edge_threshold(gx: torch.Tensor, gy: torch.Tensor, mask: torch.Tensor, keep: int) -> float:
    """The squared gradient magnitude above which each of four orientation bins still holds `keep`
    pixels of `mask` (Cho and Lee 2009): every direction keeps enough edges to constrain the kernel."""
    magnitude = (gx**2 + gy**2)[mask > 0]
    angle = torch.atan2(gy, gx)[mask > 0].remainder(math.pi)
    bins = (angle / (math.pi / 4)).long().clamp(max=3)
    levels = []
    for b in range(4):
        m = magnitude[bins == b]
        levels.append(float(m.topk(min(keep, m.numel())).values[-1]) if m.numel() else 0.0)
    return min(levels)


def _clean_kernel(kernel: torch.Tensor, threshold: float) -> torch.Tensor:
    """Non-negative, pixels under `threshold` x the peak dropped, connected pieces holding under 10% of
    the mass dropped but the heaviest (a shake path is one stroke), sum 1."""
    from scipy import ndimage

    k = kernel.clamp_min(0)
    if not k.max() > 0:
        return _delta(kernel.shape[-1], kernel.dtype)
    k = torch.where(k < k.max() * threshold, torch.zeros_like(k), k)
    labels, count = ndimage.label(k.numpy() > 0, structure=np.ones((3, 3)))
    if count > 1:
        mass = ndimage.sum(k.numpy(), labels, range(1, count + 1))
        # the heaviest piece always stays: a kernel scattered over more than ten pieces would lose them all
        keep = np.concatenate([[False], (mass >= 0.1 * mass.sum()) | (mass == mass.max())])
        k = k * torch.from_numpy(keep[labels]).to(k.dtype)
    return k / k.sum()


def _centred(kernel: torch.Tensor) -> torch.Tensor:
    """The kernel shifted (bilinear) so that its centre of mass is its centre pixel: no net shift."""
    from scipy import ndimage

    cy, cx = ndimage.center_of_mass(kernel.numpy())
    c = kernel.shape[-1] // 2
    shifted = torch.from_numpy(ndimage.shift(kernel.numpy(), (c - cy, c - cx), order=1)).clamp_min(0)
    return shifted / shifted.sum()


def _delta(size: int, dtype: torch.dtype) -> torch.Tensor:
    k = torch.zeros(size, size, dtype=dtype)
    k[size // 2, size // 2] = 1
    return k


def _resized_kernel(kernel: torch.Tensor, size: int) -> torch.Tensor:
    k = F.interpolate(kernel[None, None], size=(size, size), mode="bilinear", align_corners=True)[0, 0].clamp_min(0)
    return k / k.sum()


def _magnified_kernel(kernel: torch.Tensor, scale_y: float, scale_x: float) -> torch.Tensor:
    """The kernel estimated on a copy `scale_y` x `scale_x` (< 1) the image's size, at the image's own
    resolution: sampled (bilinear) at exactly `scale` of its pixel pitch along each axis about its centre
    pixel (`_resized_kernel` to an odd size stretches it by (size - 1) / (n - 1) instead of 1 / scale:
    1-3% too long at the stage's copies)."""
    n = kernel.shape[-1]
    size = _odd(n / min(scale_y, scale_x))
    offsets = torch.arange(size, dtype=kernel.dtype) - size // 2  # in the image's pixels, from the centre
    y, x = torch.meshgrid(offsets * scale_y * 2 / n, offsets * scale_x * 2 / n, indexing="ij")
    k = F.grid_sample(kernel[None, None], torch.stack([x, y], -1)[None], mode="bilinear", padding_mode="zeros",
                      align_corners=False)[0, 0].clamp_min(0)
    return k / k.sum()


def _extent(kernel: torch.Tensor) -> int:
    """Side of the smallest square window holding every non-zero pixel of the kernel."""
    rows, cols = torch.nonzero(kernel > 0, as_tuple=True)
    return int(max(rows.max() - rows.min(), cols.max() - cols.min())) + 1


def _odd(n: float) -> int:
    n = int(math.ceil(n))
    return n + (n % 2 == 0)


def _without_clipped(mask: torch.Tensor, clipped: torch.Tensor, reach: int, pad: int) -> torch.Tensor:
    """`mask` (padded) less the pixels within `reach` of a clipped one (`clipped`: (1, 1, H, W), the
    unpadded photo); unchanged if that would leave under a quarter of the photo."""
    reach = _odd(reach)
    # a square window's maximum, taken as rows then columns: a 45 px square at once is 20x slower
    near = F.max_pool2d(F.max_pool2d(clipped, (1, reach), stride=1, padding=(0, reach // 2)), (reach, 1), stride=1,
                        padding=(reach // 2, 0))[0, 0] > 0
    h, w = near.shape
    kept = mask.clone()
    kept[pad : pad + h, pad : pad + w] *= ~near
    return kept if kept.sum() >= 0.25 * h * w else mask


def estimate_kernel(gray: torch.Tensor, max_size: int, *, threshold: float = 0.1, latent_weight: float = 4e-3,
                    latent_weight_floor: float = 1e-3, iterations: int = 5, coarse_iterations: int = 10,
                    kernel_weight: float = 2.0, edge_pixels: int = 0, clipped: torch.Tensor | None = None,
                    initial: torch.Tensor | None = None, fine_weight: float | None = None) -> torch.Tensor:
    """The blur kernel of a grayscale image (H, W) in [0, 1], as a `max_size` square (odd) summing to 1.

    Coarse to fine: each level doubles the pixel count; the L0 weight of the latent image shrinks by
    1.1 per iteration down to `latent_weight_floor`, so ever finer edges take part. The coarse levels
    get `coarse_iterations` each, the full-resolution one `iterations`. With `edge_pixels` > 0 the
    kernel is fitted on the latent image's strongest gradients only: at each level a threshold keeping
    `edge_pixels` x the kernel side in each of four directions, lowered by 1.1 per alternation.
    `clipped` (H, W, bool): saturated pixels; the fit leaves out every pixel within the current
    kernel's reach of one (a clipped light's edge is sharp whatever the blur: it pulls the kernel
    towards a dot). `initial` (odd square, at most `max_size`): a kernel to refine, at full resolution
    only, from the floor L0 weight. `fine_weight`: the L0 weight, constant, at full resolution.
    """
    max_size = _odd(max_size)
    ratio = math.sqrt(0.5)
    levels = max(int(math.floor(math.log(5 / max_size) / math.log(ratio))), 0) + 1
    h, w = gray.shape
    kernel, weight = None, latent_weight
    if initial is not None:
        n = initial.shape[-1]
        if initial.dim() != 2 or initial.shape[0] != n or n % 2 == 0 or n > max_size:
            raise ValueError(f"initial must be an odd square kernel of at most {max_size} px, got {tuple(initial.shape)}")
        levels, weight = 1, latent_weight_floor
        kernel = F.pad(initial, [(max_size - initial.shape[-1]) // 2] * 4)
    for level in range(levels - 1, -1, -1):
        size = _odd(max_size * ratio**level)
        if kernel is None:
            kernel = torch.zeros(size, size, dtype=gray.dtype)
            kernel[size // 2, size // 2 - 1 : size // 2 + 2] = 1 / 3
        elif kernel.shape[-1] != size:  # the coarser level's (not the caller's `initial`)
            kernel = _resized_kernel(kernel, size)
        scale = ratio**level
        hs, ws = max(round(h * scale), 2 * size), max(round(w * scale), 2 * size)
        small = gray if level == 0 else F.interpolate(gray[None, None], size=(hs, ws), mode="bilinear",
                                                      antialias=True, align_corners=False)[0, 0]
        blurred, pad = _pad_periodic(small, size)
        mask = torch.zeros_like(blurred)  # fit only where the photo is, not its padding
        mask[pad + 1 : pad + hs - 2, pad + 1 : pad + ws - 2] = 1
        near_clipped = None
        if clipped is not None and clipped.any():
            near_clipped = F.interpolate(clipped[None, None].float(), size=small.shape, mode="area")
        edge = None
        if level == 0 and fine_weight is not None:
            weight = latent_weight_floor = fine_weight
        for _ in range(iterations if level == 0 else coarse_iterations):
            fit_mask = mask if near_clipped is None else _without_clipped(mask, near_clipped, _extent(kernel), pad)
            gx, gy = _gradients(_l0_latent(blurred, kernel, weight))
            if edge_pixels > 0:  # only the strongest edges of each direction take part in the fit
                edge = _edge_threshold(gx, gy, fit_mask, edge_pixels * size) if edge is None else edge / 1.1
                weak = gx**2 + gy**2 < edge
                gx, gy = gx.masked_fill(weak, 0), gy.masked_fill(weak, 0)
            kernel = _clean_kernel(_fit_kernel((gx, gy), blurred, fit_mask, kernel, kernel_weight), threshold)
            weight = max(weight / 1.1, latent_weight_floor)
        kernel = _centred(kernel)
    return kernel


def _shrink(v: torch.Tensor, weight: float, p: float = 2 / 3, iterations: int = 3) -> torch.Tensor:
    """argmin_x (x - v)^2 / 2 + weight |x|^p, elementwise (generalised soft thresholding, Zuo et al. 2013)."""
    tau = (2 * weight * (1 - p)) ** (1 / (2 - p)) + weight * p * (2 * weight * (1 - p)) ** ((p - 1) / (2 - p))
    a = v.abs()
    x = a
    for _ in range(iterations):
        x = x.clamp_min(1e-8).pow_(p - 1).mul_(weight * p).neg_().add_(a)  # a - weight p x^(p-1), in place
    return x.clamp_min_(0).masked_fill_(~(a > tau), 0).mul_(v.sign())


def deconvolve(image: torch.Tensor, kernel: torch.Tensor, *, prior_weight: float = 1e-3,
               clipped_level: float | None = None, clipped_rounds: int = 2) -> torch.Tensor:
    """Non-blind deconvolution of (C, H, W) in [0, 1] blurred by `kernel` (true convolution):
    argmin_x |kernel * x - image|^2 / 2 + prior_weight * sum |grad x|^(2/3), by half-quadratic
    splitting; the frame is padded by the kernel size so its edges do not ring.

    Pixels at or above `clipped_level` were clipped: their true value is at least what was recorded.
    For `clipped_rounds` rounds each is replaced by the larger of itself and the current result
    reblurred, and the photo deconvolved again (the clipped-data step of Cho et al. 2011, as
    imputation), so a saturated light's edge does not ring across the photo."""
    if image.dim() == 3 and image.shape[0] > 1:  # a channel at a time: the solve's temporaries take a third of the memory
        return torch.stack([deconvolve(channel[None], kernel, prior_weight=prior_weight, clipped_level=clipped_level,
                                       clipped_rounds=clipped_rounds)[0] for channel in image])
    padded, pad = _pad_periodic(image, kernel.shape[-1], kernel)

    def solve(observed: torch.Tensor) -> torch.Tensor:
        return _half_quadratic(observed, kernel, lambda gx, gy, beta: (_shrink(gx, prior_weight / beta),
                                                                       _shrink(gy, prior_weight / beta)),
                               1 / 64, 256, 2 * math.sqrt(2))

    x = solve(padded)
    clipped = padded >= clipped_level if clipped_level is not None else None
    if clipped is not None and clipped.any():
        k = _otf(kernel, padded.shape[-2:])
        for _ in range(clipped_rounds):
            reblurred = fft.irfft2(fft.rfft2(x) * k, s=padded.shape[-2:])
            x = solve(torch.where(clipped, torch.maximum(padded, reblurred), padded))
    return x[..., pad : pad + image.shape[-2], pad : pad + image.shape[-1]].clamp(0, 1)


def noise_level(gray: torch.Tensor) -> float:
    """Standard deviation of the noise of a grey image (H, W): the median absolute value of its finest
    diagonal Haar band over 0.6745 (Donoho and Johnstone 1994); blur leaves that band mostly noise."""
    h, w = gray.shape[-2] // 2 * 2, gray.shape[-1] // 2 * 2
    g = gray[..., :h, :w]
    band = (g[..., 0::2, 0::2] - g[..., 1::2, 0::2] - g[..., 0::2, 1::2] + g[..., 1::2, 1::2]) / 2
    return float(band.abs().median() / 0.6745)


def clipped_regions(image: torch.Tensor, level: float) -> torch.Tensor:
    """(H, W) bool: where the 3 x 3 mean of a channel of (C, H, W) reaches `level`: a saturated area,
    not a lone pixel that noise lifted there."""
    return (F.avg_pool2d(image[None], 3, stride=1, padding=1, count_include_pad=False)[0] >= level).any(0)


def low_frequency_change(before: torch.Tensor, after: torch.Tensor, scale: int,
                         clipped: torch.Tensor | None = None) -> float:
    """Mean absolute difference of the two images averaged over `scale` x `scale` blocks: blur and
    its exact inverse leave it near 0; a wrong kernel estimate raises it. Blocks holding a `clipped`
    pixel are left out: clipping took light away from them that the deconvolution rightly restores."""
    scale = max(1, min(scale, before.shape[-2], before.shape[-1]))
    change = (F.avg_pool2d(before[None], scale) - F.avg_pool2d(after[None], scale)).abs().mean(1)[0]
    if clipped is not None:
        kept = F.max_pool2d(clipped[None, None].float(), scale)[0, 0] == 0
        if kept.float().mean() >= 0.25:  # mostly clipped: judge on every block rather than a few
            return float(change[kept].mean())
    return float(change.mean())


def kernel_agreement(a: torch.Tensor, b: torch.Tensor, shift: int = 4) -> float:
    """Peak normalised cross-correlation of two kernels over relative shifts up to `shift` px: 1 for the
    same kernel, near 0 for unrelated ones."""
    n = max(a.shape[-1], b.shape[-1])
    a, b = (F.pad(k, [(n - k.shape[-1]) // 2] * 4) for k in (a, b))
    correlation = F.conv2d(F.pad(a, [shift] * 4)[None, None], b[None, None])[0, 0]
    return float(correlation.max() / (a.norm() * b.norm()).clamp_min(1e-12))


def reblur_residual(blurred: torch.Tensor, restored: torch.Tensor, kernel: torch.Tensor,
                    margin: int | None = None, clipped: torch.Tensor | None = None) -> float:
    """Mean squared difference between the grey `blurred` (C, H, W) and `restored` blurred again by
    `kernel`: a kernel that explains the blur leaves less of the photo unexplained. Left out: `margin`
    px at the borders (default 2 x the kernel's half side, where the deconvolution padded the frame)
    and pixels within `margin` px of a `clipped` one (H, W), where the recorded light is not the blur
    of the scene's (the camera clipped it) and the clamped result cannot reblur to it."""
    margin = 2 * (kernel.shape[-1] // 2) if margin is None else margin
    reblurred = apply_kernel(restored.float().mean(0)[None, None], kernel.float(), border="constant")[0, 0]
    h, w = reblurred.shape
    residual = (reblurred - blurred.float().mean(0)).square()[margin : h - margin, margin : w - margin]
    if clipped is not None and clipped.any():
        near = clipped[None, None].float()
        for window in ((1, 2 * margin + 1), (2 * margin + 1, 1)):  # separable: a square window costs its area
            near = F.max_pool2d(near, window, stride=1, padding=(window[0] // 2, window[1] // 2))
        near = near[0, 0] > 0
        kept = ~near[margin : h - margin, margin : w - margin]
        if kept.float().mean() >= 0.25:  # mostly clipped: judge on every pixel rather than a few
            return float(residual[kept].mean())
    return float(residual.mean())


class KernelEstimate(NamedTuple):
    kernel: torch.Tensor  # at the image's resolution
    scale: float  # of the estimation copy
    agreement: float | None  # `kernel_agreement` with the estimates at the neighbouring scales; None: not checked
    neighbours: tuple[torch.Tensor, ...] = ()  # those estimates, smaller copy first


@dataclass(frozen=True)
class BlindDeconvolution:
    """The deconvolution stage of a model's config (`DeblurGAN(deconvolution={...})`).

    Args:
        max_kernel: largest kernel side in pixels, at the estimation resolution.
        estimate_pixels: the kernel is estimated on a grayscale copy downscaled to at most this many
            pixels (and scaled back up for the full-resolution deconvolution).
        threshold: kernel pixels under this fraction of the peak are dropped at every iteration.
        prior_weight: weight of the gradient prior in the final deconvolution (more: smoother, less
            noise and ringing), for a kernel up to `prior_from` px on a photo with 1% noise (`prior_for`).
        prior_from: above this kernel extent (px at the estimation resolution) the prior weight grows in
            proportion to it.
        prior_noise_power: the prior weight grows as the photo's noise level (over 1%) to this power.
        max_low_frequency_change: above this (mean abs. difference of 2 x `max_kernel` blocks, 0-1
            scale) the deconvolution is taken for a failed estimate and the input is kept.
        coarse_iterations: latent / kernel alternations at each level below full resolution (these
            levels are cheap; the full-resolution level gets 5).
        long_kernel_scale: a kernel first estimated at least `long_kernel_from` px long is estimated
            again on a copy this much smaller (1: never), in the same support, and that estimate kept.
        long_kernel_from: see `long_kernel_scale` (px at the estimation resolution).
        iterations: latent / kernel alternations at the full estimation resolution.
        latent_weight_floor: the L0 weight of the latent image shrinks (by 1.1 per alternation) down to
            this: lower lets finer edges into the kernel fit.
        kernel_weight: weight of the kernel's squared norm in its fit (more: smoother, more compact).
        edge_pixels: a kernel first estimated at least `edge_from` px long is estimated again on the
            latent image's strongest edges only, this many pixels per kernel pixel of side in each of
            four directions (0: never).
        edge_from: see `edge_pixels` (px at the estimation resolution).
        clipped_level: pixels whose 3 x 3 mean reaches this in a channel are taken as clipped (a
            saturated light; 0.98 for 8-bit photos): left out of the kernel fit, re-estimated in the
            deconvolution and left out of the low-frequency check (over 1: none are).
        clipped_rounds: re-estimation rounds of the clipped pixels in the deconvolution (0: none).
        clipped_noise_from: clipped pixels are treated so only in a photo whose `noise_level` reaches
            this (0: in every photo).
        agreement_scale: a long kernel (see `long_kernel_scale`) is also estimated on copies this much
            smaller and larger; where either estimate's `kernel_agreement` with it is under
            `min_agreement`, the estimate is taken for a failure and the input is kept (1: no check).
        min_agreement: see `agreement_scale`.
        choose_by_residual: where `agreement_scale` checked a long kernel, deconvolve with each of the
            three estimates that agrees with another (`min_agreement`) and keep the result whose
            `reblur_residual` is least, instead of declining where the middle one disagrees; only in a
            photo whose `noise_level` is under `residual_noise_below`.
        residual_noise_below: see `choose_by_residual` (0: never; 1: in every photo).
        long_kernel_weight_floor: the L0 weight of the latent image, held constant, at the full
            resolution of a long kernel's estimates (their copy's; see `long_kernel_scale`): lower lets
            finer edges into the fit, which keeps a long kernel near the truth
            (docs/results/deconvolution-fixed-point.md). 0: `latent_weight_floor`, as elsewhere.
    """

    # 45, not 75: a support much larger than the kernel lets the fit wander (measured on the benchmark's
    # 7-15 px kernels: recovered in a 45 px support, lost in a 75 px one; and 31-75 px kernels gained
    # more, on average, from a 45 px estimate than from a 75 px one)
    max_kernel: int = 45
    estimate_pixels: int = 400_000
    threshold: float = 0.1
    # 5e-4 up to 15 px with noise^1.5, not 1e-3 up to 30 px with noise^1 (half the weight for short kernels
    # on clean photos, the same for long kernels and in dim light): on the development set, this stage
    # alone, 7-15 px +2.62 dB instead of +2.38, 15-31 px +2.67 instead of +2.59, 31-75 px equal; given the
    # true kernel +3.95 / +4.26 / +3.41 instead of +3.46 / +4.07 / +3.41 (docs/results/deconvolution-prior.md)
    prior_weight: float = 5e-4
    prior_from: int = 15
    prior_noise_power: float = 1.5
    max_low_frequency_change: float = 0.005
    # 10, not 5: +0.8 dB on 7-15 px kernels and +0.4 on 31-75 px (-0.1 on 15-31) on the development set of
    # docs/results/deconvolution.md, for 2 s more on a 720p photo
    coarse_iterations: int = 10
    # A 65-70 px kernel comes out of the full-resolution estimate 28-45 px long, while kernels up to 30 px
    # are best estimated there; a coarser copy recovers the long ones (a larger support instead lets the
    # fit wander, above). 0.45 from 30 px, not 0.6 from 41 (a kernel filling its support): on the
    # development set (docs/results/deconvolution-long-kernels.md) 31-75 px +1.33 dB instead of +0.59,
    # rotation +0.12 instead of -0.16, 15-31 px +2.59 instead of +2.46; on 12 of the card's held-out photos
    # (deconvolution-long-kernels-card.md) 31-75 px +0.94 instead of +1.23, rotation +0.24 instead of -0.10
    long_kernel_scale: float = 0.45
    long_kernel_from: int = 30
    iterations: int = 5
    latent_weight_floor: float = 1e-3
    kernel_weight: float = 2.0
    # off: on the development set (docs/results/deconvolution-edge-selection.md) edges (10 from 21 px) gained on 31-75 px kernels,
    # but the card's held-out photos lost with them (15-31 px -0.2 dB, 31-75 px -0.15, its rotation row -0.4)
    edge_pixels: int = 0
    edge_from: int = 21
    # On the development set (docs/results/deconvolution-clipped-lights.md) 0.98 gained in low light (7-15 /
    # 15-31 / 31-75 px +1.04 / +0.73 / +0.47 dB instead of +0.96 / +0.65 / +0.46); on 24 of the card's
    # held-out photos low light made far fewer photos worse (7-15 px 4 of 24 instead of 15) but daylight
    # (uniform, 1% noise) lost 15-75 px (+3.05 / +0.51 dB instead of +3.34 / +0.93). Hence only in a noisy
    # photo: dim light, where a clipped area is a light whose streak is the blur. In daylight it is mostly
    # a bright surface (sky, paper) whose edges the kernel fit needs. 0.01: 1.7% noise in each channel,
    # between daylight's 1% and dim light's 2-3% (noise_level 0.0039-0.0097 and 0.0107-0.0184 on the
    # benchmark's photos of every source but one dim night photo at 0.0068,
    # docs/results/deconvolution-clipped-noise.md)
    clipped_level: float = 0.98
    clipped_rounds: int = 2
    clipped_noise_from: float = 0.01
    # A wrong long-kernel estimate changes with the copy's scale, a right one does not. On the development
    # set, 48 photos of 31-75 px (docs/results/deconvolution-agreement.md), 1.2 / 0.5 made half as many
    # photos worse (6 of 48 instead of 11) for a mean gain of +0.72 dB instead of +0.77, and 3.5 s more
    # per long-kernel photo; fewer ruined photos is worth 0.05 dB.
    agreement_scale: float = 1.2
    min_agreement: float = 0.5
    # On the 48 development photos of 31-75 px (docs/results/deconvolution-residual.md) +1.21 dB, 8 worse,
    # 7 declined, against +0.72, 6 and 20 without it, its final step (up to three deconvolutions) taking
    # 2.5 s per photo; on 24 photos of seed 3 with night and indoor ones (-seed3.md) +1.19 against +0.68,
    # 5 worse each; rotation +0.15 against +0.03 (-variants.md). Not in low light (below).
    choose_by_residual: bool = True
    # In dim light's noise the residual picked worse estimates, even with the clipped lights left out of
    # it: on 48 development photos of 31-75 px low light (docs/results/deconvolution-residual-clipped.md)
    # +0.12 dB, 20 worse, against +0.21, 15 without it. 0.01 = `clipped_noise_from`: daylight below.
    residual_noise_below: float = 0.01
    # off for now: measured on the development set only (docs/results/deconvolution-long-kernel-floor.md),
    # not yet on the card's held-out photos nor on the other bins and variants
    long_kernel_weight_floor: float = 0.0

    # caps keep a hostile config from costing minutes per photo
    LIMITS = {"max_kernel": (3, 101), "estimate_pixels": (10_000, 1_000_000), "threshold": (0.0, 0.9),
              "prior_weight": (1e-5, 1e-1), "prior_from": (1, 101), "prior_noise_power": (0.0, 4.0),
              "max_low_frequency_change": (0.0, 1.0),
              "coarse_iterations": (1, 30), "long_kernel_scale": (0.3, 1.0), "long_kernel_from": (3, 101),
              "iterations": (1, 30),
              "latent_weight_floor": (1e-5, 1e-1), "kernel_weight": (1e-3, 100.0),
              "edge_pixels": (0, 1000), "edge_from": (3, 101), "clipped_level": (0.5, 2.0), "clipped_rounds": (0, 10),
              "clipped_noise_from": (0.0, 1.0), "agreement_scale": (1.0, 2.0), "min_agreement": (0.0, 1.0),
              "choose_by_residual": (False, True), "residual_noise_below": (0.0, 1.0),
              "long_kernel_weight_floor": (0.0, 0.1)}

    def __post_init__(self) -> None:
        for f in fields(self):
            value, (low, high) = getattr(self, f.name), self.LIMITS[f.name]
            if isinstance(f.default, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"deconvolution.{f.name} must be true or false, got {value!r}")
                continue
            kind = int if isinstance(f.default, int) else float
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
                raise ValueError(f"deconvolution.{f.name} must be a{'n integer' if kind is int else ' number'}, got {value!r}")
            if not (low <= value <= high):  # also refuses NaN
                raise ValueError(f"deconvolution.{f.name} must be in [{low}, {high}], got {value!r}")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BlindDeconvolution:
        if not isinstance(config, dict):
            raise ValueError(f"deconvolution must be a JSON object, got {type(config).__name__}")
        unknown = sorted(set(config) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"deconvolution: unknown field(s) {unknown}; allowed: {[f.name for f in fields(cls)]}")
        return cls(**config)

    def to_config(self) -> dict[str, Any]:
        return asdict(self)

    def estimate(self, image: torch.Tensor) -> KernelEstimate:
        """The blur kernel of (3, H, W) in [0, 1]."""
        h, w = image.shape[-2:]
        scale = min(1.0, math.sqrt(self.estimate_pixels / (h * w)))
        clipped = self._clipped(image)
        kernel = self._estimate_at(image, scale, clipped)
        edges = self.edge_pixels if _extent(kernel) * scale >= self.edge_from else 0
        if edges:
            kernel = self._estimate_at(image, scale, clipped, edges)
        agreement, neighbours = None, ()
        if self.long_kernel_scale < 1 and _extent(kernel) * scale >= self.long_kernel_from:
            small = scale * self.long_kernel_scale
            fine = self.long_kernel_weight_floor or None
            kernel = self._estimate_at(image, small, clipped, edges, fine)
            if self.agreement_scale > 1:
                neighbours = tuple(self._estimate_at(image, s, clipped, edges, fine)
                                   for s in (small / self.agreement_scale, min(small * self.agreement_scale, 1.0)))
                agreement = min(kernel_agreement(kernel, k) for k in neighbours)
        return KernelEstimate(kernel, scale, agreement, neighbours)

    def _estimate_at(self, image: torch.Tensor, scale: float, clipped: torch.Tensor | None,
                     edge_pixels: int = 0, fine_weight: float | None = None) -> torch.Tensor:
        """The kernel, at the image's resolution, estimated on a grey copy at `scale` (`clipped`: the
        image's `_clipped`; `fine_weight`: see `estimate_kernel`)."""
        h, w = image.shape[-2:]
        gray = image.float().mean(0)
        if scale < 1:
            gray = F.interpolate(gray[None, None], size=(max(round(h * scale), 8), max(round(w * scale), 8)),
                                 mode="bilinear", antialias=True, align_corners=False)[0, 0]
        support = min(self.max_kernel, _odd(min(gray.shape) / 3))
        kernel = estimate_kernel(gray, support, threshold=self.threshold, iterations=self.iterations,
                                 coarse_iterations=self.coarse_iterations, latent_weight_floor=self.latent_weight_floor,
                                 kernel_weight=self.kernel_weight, edge_pixels=edge_pixels, clipped=clipped,
                                 fine_weight=fine_weight)
        if scale < 1:
            kernel = _centred(_magnified_kernel(kernel, gray.shape[-2] / h, gray.shape[-1] / w))
        return kernel

    def clipped_level_for(self, image: torch.Tensor) -> float | None:
        """`clipped_level` for (3, H, W) in [0, 1], or None where its clipped pixels are treated as any
        other (handling off, or a photo less noisy than `clipped_noise_from`)."""
        if self.clipped_level > 1 or noise_level(image.float().mean(0)) < self.clipped_noise_from:
            return None
        return self.clipped_level

    def _clipped(self, image: torch.Tensor) -> torch.Tensor | None:
        """`clipped_regions` of (3, H, W), or None where the stage treats no pixel as clipped."""
        level = self.clipped_level_for(image)
        return None if level is None else clipped_regions(image, level)

    def prior_for(self, extent: float, noise: float) -> float:
        """The final deconvolution's prior weight for a kernel `extent` px wide (at the estimation
        resolution) on a photo of `noise_level` `noise`: more where inverting amplifies more, a longer
        kernel (whose estimate is also less sure) and a noisier photo (dim light)."""
        return (self.prior_weight * max(1.0, extent / self.prior_from)
                * max(1.0, noise / NOISE_REFERENCE) ** self.prior_noise_power)

    def restore(self, blurred: torch.Tensor,
                estimate: KernelEstimate | None = None) -> tuple[torch.Tensor | None, dict[str, Any]]:
        """(deconvolved photo, or None where the stage declines; what it found) for one photo (3, H, W)
        in [0, 1], float32 on the CPU. It declines a photo too small to hold a kernel, a kernel under
        `MIN_KERNEL` pixels (a sharp photo), a long kernel whose estimate changes with the copy's scale
        (`agreement_scale`; where `choose_by_residual` applies, only where no two of the three estimates
        agree) and a result that moved the low frequencies. `estimate`: this photo's `estimate()` by a
        stage with the same estimation settings, not made again."""
        if min(blurred.shape[-2:]) < 4 * MIN_KERNEL:
            return None, {"declined": "too small"}
        kernel, scale, agreement, neighbours = self.estimate(blurred) if estimate is None else estimate
        extent = _extent(kernel) * scale  # at the estimation resolution, whatever the photo's size
        info: dict[str, Any] = {"kernel": kernel, "extent": extent, "agreement": agreement}
        if extent < MIN_KERNEL:
            return None, {**info, "declined": "short kernel"}
        noise, clipped = noise_level(blurred.mean(0)), self._clipped(blurred)
        if self.choose_by_residual and neighbours and noise < self.residual_noise_below:
            trio = (kernel, *neighbours)
            candidates = [k for k in trio if any(kernel_agreement(k, other) >= self.min_agreement
                                                 for other in trio if other is not k)]
        else:
            candidates = [kernel] if agreement is None or agreement >= self.min_agreement else []
        if not candidates:
            return None, {**info, "declined": "estimate unstable across scales"}
        margin = 2 * (max(k.shape[-1] for k in candidates) // 2)  # one region for every candidate's residual
        best, changes = None, []
        for k in candidates:
            weight = self.prior_for(_extent(k) * scale, noise)
            out = deconvolve(blurred, k, prior_weight=weight,
                             clipped_level=None if clipped is None else self.clipped_level, clipped_rounds=self.clipped_rounds)
            changes.append(low_frequency_change(blurred, out, 2 * k.shape[-1], clipped))
            if changes[-1] > self.max_low_frequency_change:
                continue
            residual = reblur_residual(blurred, out, k, margin, clipped) if len(candidates) > 1 else 0.0
            if best is None or residual < best[0]:
                best = (residual, out, {"kernel": k, "extent": _extent(k) * scale, "prior_weight": weight,
                                        "low_frequency_change": changes[-1]})
        if best is None:
            return None, {**info, "low_frequency_change": min(changes), "declined": "low frequencies moved"}
        return best[1], {**info, **best[2]}

    def __call__(self, blurred: torch.Tensor, restored: torch.Tensor) -> torch.Tensor:
        """Choose, for one photo (3, H, W) in [0, 1], between the generator's `restored` and the
        deconvolution of `blurred` (`restore`): the one that changed the photo more, since each
        leaves alone the blur it does not model (the generator long shake paths, a single kernel the
        blur of moving objects). Computed on the CPU in float32."""
        with torch.no_grad():
            x = blurred.detach().to("cpu", torch.float32)
            out, _ = self.restore(x)
            if not prefers_deconvolution(x, out, restored.detach().to("cpu", torch.float32)):
                return restored
        return out.to(restored.device, restored.dtype)


def prefers_deconvolution(blurred: torch.Tensor, deconvolved: torch.Tensor | None, restored: torch.Tensor) -> bool:
    """Whether `deblur` keeps the stage's `deconvolved` photo (None: it declined) over the generator's
    `restored` one, all (3, H, W) on one device: where it changed `blurred` more."""
    return deconvolved is not None and bool((deconvolved - blurred).abs().mean() > (restored - blurred).abs().mean())
