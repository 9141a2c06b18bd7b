"""Degradation: what the camera does last, after the blur (sensor noise, then JPEG), one step for
every blur type.

Each blur type draws the settings (`Degradation`) in its own place in its random stream, so seeded
outputs stay what they were; `apply_degradation` then applies them the same way for all.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..imaging import to_uint8
from .sampling import _as_range, _rand, _uniform

__all__ = ["Degradation", "apply_degradation", "degrade", "add_noise", "jpeg_roundtrip"]


@dataclass
class Degradation:
    """Drawn degradation of an (N,3,H,W) batch.

    sigma: (N,) noise std (at mid-grey when there is shot noise).
    noise: standard-normal draws of the images' shape.
    quality: (N,) JPEG quality; use_jpeg: (N,) bool, where the JPEG round trip happens.
    shot: (N,) share of the noise variance that is shot noise (growing with the value), the rest
        read noise; ``None``: read noise only (std ``sigma`` everywhere).
    """

    sigma: torch.Tensor
    noise: torch.Tensor
    quality: torch.Tensor
    use_jpeg: torch.Tensor
    shot: torch.Tensor | None = None


def _noisy(images: torch.Tensor, sigma: torch.Tensor | float, noise: torch.Tensor, shot: torch.Tensor | None = None) -> torch.Tensor:
    shape = (-1,) + (1,) * (images.dim() - 1)
    sig = torch.as_tensor(sigma, dtype=images.dtype).reshape(shape)
    if shot is None:
        if bool((sig == 0).all()):
            return images
        return (images + sig * noise).clamp(0, 1)
    s = shot.to(images.dtype).reshape(shape)
    std = (sig**2 * ((1 - s) + s * (images.clamp(0, 1) / 0.5))).sqrt()
    return (images + std * noise).clamp(0, 1)


def apply_degradation(images: torch.Tensor, d: Degradation) -> torch.Tensor:
    """Noise (clipped to [0, 1]), then the JPEG round trip where ``d.use_jpeg``."""
    return jpeg_roundtrip(_noisy(images, d.sigma, d.noise, d.shot), d.quality, enabled=d.use_jpeg)


def add_noise(images: torch.Tensor, sigma: torch.Tensor | float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add Gaussian noise with per-image std ``sigma`` ((N,) or scalar) and clip to [0, 1]."""
    return _noisy(images, sigma, torch.randn(images.shape, generator=generator, dtype=images.dtype))


def degrade(
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    noise: float | tuple[float, float] = (0.0, 0.01),
    shot_fraction: float | tuple[float, float] = 0.0,
    jpeg_prob: float = 0.0,
    jpeg_quality: tuple[int, int] = (60, 95),
) -> tuple[torch.Tensor, dict]:
    """Sensor noise then JPEG, per image of an (N,3,H,W) batch in [0, 1]; the camera's last steps.

    ``noise`` is the std at mid-grey, split into signal-dependent shot noise (``shot_fraction`` of the
    variance, growing with the value) and constant read noise.
    """
    n = images.shape[0]
    lo, hi = _as_range(noise, "noise")
    sigma = _uniform(generator, lo, hi, n)
    s_lo, s_hi = _as_range(shot_fraction, "shot_fraction")
    shot = _uniform(generator, s_lo, s_hi, n)
    q_lo, q_hi = jpeg_quality
    quality = _uniform(generator, q_lo, q_hi + 1, n).floor().clamp(max=q_hi).long()
    use_jpeg = _rand(generator, n) < jpeg_prob
    noise_draw = torch.randn(images.shape, generator=generator, dtype=images.dtype)
    out = apply_degradation(images, Degradation(sigma, noise_draw, quality, use_jpeg, shot=shot))
    info = {"noise_sigma": sigma, "shot_fraction": shot,
            "jpeg_quality": torch.where(use_jpeg, quality, torch.zeros_like(quality))}
    return out, info


def jpeg_roundtrip(images: torch.Tensor, quality: torch.Tensor | int, *, enabled: torch.Tensor | bool = True) -> torch.Tensor:
    """JPEG encode/decode (PIL, libjpeg, 4:2:0) of each (3,H,W) image of a batch where ``enabled``."""
    n = images.shape[0]
    enabled = torch.as_tensor(enabled).expand(n)
    if not bool(enabled.any()):
        return images
    import io

    import numpy as np
    from PIL import Image

    quality = torch.as_tensor(quality).expand(n)
    out = images.clone()
    for i in torch.nonzero(enabled).flatten().tolist():
        u8 = to_uint8(images[i]).permute(1, 2, 0).numpy()
        buf = io.BytesIO()
        Image.fromarray(u8).save(buf, format="JPEG", quality=int(quality[i]))
        dec = np.array(Image.open(buf).convert("RGB"), dtype=np.float32) / 255
        out[i] = torch.from_numpy(dec).permute(2, 0, 1).to(images.dtype)
    return out
