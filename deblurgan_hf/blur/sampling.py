"""Sampling: every random draw of the blur's geometry (camera paths, trajectories, kernels).

Each function takes the ``generator`` and draws in a fixed order, so a seeded ``torch.Generator``
reproduces a blur exactly; the draws never depend on earlier outcomes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .rendering import rasterize_trajectory

__all__ = ["CameraPaths", "random_trajectory", "random_trajectory_kernel", "sample_camera_paths", "camera_shake_path"]


def _rand(generator: torch.Generator | None, *shape: int) -> torch.Tensor:
    return torch.rand(shape, generator=generator, dtype=torch.float64)


def _uniform(generator: torch.Generator | None, lo: float, hi: float, n: int) -> torch.Tensor:
    return lo + (hi - lo) * _rand(generator, n)


def _as_range(value: float | tuple[float, float] | list[float], name: str) -> tuple[float, float]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or value[0] > value[1]:
            raise ValueError(f"{name} must be a number or a (min, max) pair with min <= max, got {value!r}")
        return float(value[0]), float(value[1])
    return float(value), float(value)


def _log_uniform(generator: torch.Generator | None, lo: float, hi: float) -> float:
    return lo * (hi / lo) ** float(_rand(generator, 1)) if lo > 0 else hi * float(_rand(generator, 1))


def _smooth_noise(generator: torch.Generator | None, n_knots: int, n: int) -> torch.Tensor:
    """(n,) float64 random curve through ``n_knots`` standard-normal knots, linearly interpolated."""
    knots = torch.randn((1, 1, n_knots), generator=generator, dtype=torch.float64)
    return F.interpolate(knots, size=n, mode="linear", align_corners=True).view(n)


def random_trajectory(
    n_steps: int = 2000,
    max_len: float = 60.0,
    *,
    expl: float = 0.005,
    centripetal: float | None = None,
    prob_big_shake: float | None = None,
    gaussian_shake: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A random 2-D camera trajectory (Kupyn et al. 2018, Algorithm 1).

    A particle moves at constant speed (total length ``max_len`` pixels over ``n_steps``); each step
    its velocity gets inertia, a Gaussian shake, a centripetal pull back to the origin and, rarely,
    an impulsive big shake that reverses it roughly.

    Args:
        n_steps: number of trajectory samples.
        max_len: total length of the path in pixels.
        expl: anxiety; scales the shake, the centripetal pull and the big-shake probability.
        centripetal: pull towards the origin; ``None`` draws ``0.7 * U(0, 1)`` (as DeblurGAN).
        prob_big_shake: big-shake probability factor; ``None`` draws ``0.2 * U(0, 1)``.
        gaussian_shake: shake strength; ``None`` draws ``10 * U(0, 1)``.
        generator: torch random generator.

    Returns:
        (n_steps, 2) float64 tensor of (x, y) positions in pixels, starting at the origin.
    """
    if n_steps < 2 or max_len <= 0:
        raise ValueError(f"need n_steps >= 2 and max_len > 0, got n_steps={n_steps}, max_len={max_len}")
    draws = _rand(generator, 4)
    centripetal = 0.7 * float(draws[0]) if centripetal is None else centripetal
    prob_big_shake = 0.2 * float(draws[1]) if prob_big_shake is None else prob_big_shake
    gaussian_shake = 10.0 * float(draws[2]) if gaussian_shake is None else gaussian_shake
    angle = 2 * math.pi * float(draws[3])
    # All random numbers up front (one generator call each); the recurrence is scalar, so plain
    # Python complex arithmetic is much faster than per-step tensor ops.
    big = _rand(generator, n_steps).tolist()
    big_angle = _rand(generator, n_steps).tolist()
    shake = torch.randn((n_steps, 2), generator=generator, dtype=torch.float64).tolist()

    step = max_len / (n_steps - 1)
    v = complex(math.cos(angle), math.sin(angle)) * (expl if expl > 0 else step)
    x = [0j] * n_steps
    for t in range(n_steps - 1):
        kick = 0j
        if big[t] < prob_big_shake * expl:
            kick = 2 * v * complex(math.cos(math.pi + big_angle[t] - 0.5), math.sin(math.pi + big_angle[t] - 0.5))
        dv = kick + expl * (gaussian_shake * complex(*shake[t]) - centripetal * x[t]) * step
        v = v + dv
        v = v / (abs(v) + 1e-12) * step
        x[t + 1] = x[t] + v
    return torch.tensor([[z.real, z.imag] for z in x], dtype=torch.float64)


def random_trajectory_kernel(
    size: int = 31,
    *,
    max_len: float | None = None,
    exposure: float = 1.0,
    n_steps: int = 2000,
    expl: float = 0.005,
    centripetal: float | None = None,
    prob_big_shake: float | None = None,
    gaussian_shake: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A random DeblurGAN motion-blur kernel.

    Args:
        size: kernel side in pixels (DeblurGAN: 64-pixel canvas).
        max_len: trajectory length in pixels; ``None`` means ``size`` (DeblurGAN: 60 on 64).
        exposure: fraction of the trajectory recorded.
        n_steps, expl, centripetal, prob_big_shake, gaussian_shake: see `random_trajectory`.
        generator: torch random generator (same seed, same kernel).

    Returns:
        (size, size) float32 tensor, non-negative, summing to 1.
    """
    points = random_trajectory(
        n_steps, float(size) if max_len is None else max_len, expl=expl, centripetal=centripetal,
        prob_big_shake=prob_big_shake, gaussian_shake=gaussian_shake, generator=generator,
    )
    return rasterize_trajectory(points, size, exposure=exposure)


@dataclass
class CameraPaths:
    """Per-image random motion during one exposure, time t in [-1/2, 1/2], identity at t = 0.

    Translations are fractions of the frame diagonal; angles in radians; the foreground ellipse
    lives in half-diagonal units around the frame centre (the frame's corners are at radius 1).
    """

    velocity: torch.Tensor  # (N,2) translation per exposure (linear term)
    accel: torch.Tensor  # (N,2) quadratic term (curved path)
    jerk: torch.Tensor  # (N,2) cubic term (change of direction)
    rotation: torch.Tensor  # (N,) in-plane rotation over the exposure
    zoom: torch.Tensor  # (N,) relative scale change over the exposure
    perspective: torch.Tensor  # (N,2) change of the homography's perspective row over the exposure
    obj_center: torch.Tensor  # (N,2) foreground ellipse centre, in half-diagonal units from the frame centre
    obj_axes: torch.Tensor  # (N,2) ellipse semi-axes, half-diagonal units
    obj_angle: torch.Tensor  # (N,)
    obj_velocity: torch.Tensor  # (N,2) foreground motion (relative to the scene) over the exposure
    has_object: torch.Tensor  # (N,) bool

    def positions(self, t: torch.Tensor) -> torch.Tensor:
        """(N,F,2) camera translation at times t (F,), in frame diagonals."""
        t = t.to(self.velocity.dtype)[None, :, None]
        return self.velocity[:, None] * t + self.accel[:, None] * t**2 + self.jerk[:, None] * t**3

    def homographies(self, t: torch.Tensor) -> torch.Tensor:
        """(N,F,3,3) maps from output to source coordinates (half-diagonal units, frame centre origin)."""
        n, f = self.velocity.shape[0], t.numel()
        tt = t.to(self.velocity.dtype)[None, :]
        theta = self.rotation[:, None] * tt
        scale = 1 + self.zoom[:, None] * tt
        pos = 2 * self.positions(t)  # diagonals -> half-diagonal units
        h = torch.zeros(n, f, 3, 3, dtype=self.velocity.dtype)
        h[..., 0, 0] = scale * torch.cos(theta)
        h[..., 0, 1] = -scale * torch.sin(theta)
        h[..., 1, 0] = scale * torch.sin(theta)
        h[..., 1, 1] = scale * torch.cos(theta)
        h[..., 0, 2] = pos[..., 0]
        h[..., 1, 2] = pos[..., 1]
        h[..., 2, 0] = self.perspective[:, None, 0] * tt
        h[..., 2, 1] = self.perspective[:, None, 1] * tt
        h[..., 2, 2] = 1
        return h

    def max_displacement(self) -> torch.Tensor:
        """(N,) bound on any in-frame point's motion from t=0 (|t| <= 1/2), in frame diagonals."""
        trans = 0.5 * self.velocity.norm(dim=1) + 0.25 * self.accel.norm(dim=1) + 0.125 * self.jerk.norm(dim=1)
        # rotation, zoom and perspective move the corners most: radius 1/2 diagonal, times t <= 1/2;
        # the 1.2 covers the perspective division to first order
        other = 0.25 * 1.2 * (self.rotation.abs() + self.zoom.abs() + self.perspective.norm(dim=1))
        obj = torch.where(self.has_object, 0.5 * self.obj_velocity.norm(dim=1), torch.zeros_like(trans))
        return trans + other + obj


def sample_camera_paths(
    n: int,
    *,
    length: float | tuple[float, float] = (0.016, 0.032),
    curvature: float = 0.5,
    rotation: float = 1.0,
    zoom: float = 0.01,
    perspective: float = 0.01,
    object_prob: float = 0.25,
    object_size: tuple[float, float] = (0.1, 0.3),
    object_motion: float | tuple[float, float] = (0.0025, 0.015),
    generator: torch.Generator | None = None,
) -> CameraPaths:
    """Draw n smooth random camera paths (see `trajectory_blur` for the arguments)."""
    lo, hi = _as_range(length, "length")
    if lo < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    # log-uniform: small and large blur equally likely per octave, as in real handheld footage
    u = _rand(generator, n)
    mag = lo * (hi / lo) ** u if lo > 0 else hi * u
    ang = 2 * math.pi * _rand(generator, n)
    direction = torch.stack([torch.cos(ang), torch.sin(ang)], 1)
    velocity = direction * mag[:, None]
    accel = curvature * mag[:, None] * (2 * _rand(generator, n, 2) - 1)
    jerk = curvature * mag[:, None] * (2 * _rand(generator, n, 2) - 1)
    rot = math.radians(rotation) * (2 * _rand(generator, n) - 1)
    zm = zoom * (2 * _rand(generator, n) - 1)
    persp = perspective * (2 * _rand(generator, n, 2) - 1)
    # foreground object (draws happen even when unused, so the stream does not depend on the outcome)
    has_object = _rand(generator, n) < object_prob
    o_lo, o_hi = _as_range(object_size, "object_size")
    obj_center = 1.2 * (2 * _rand(generator, n, 2) - 1) * torch.tensor([0.8, 0.6], dtype=torch.float64)
    obj_axes = o_lo + (o_hi - o_lo) * _rand(generator, n, 2)
    obj_angle = math.pi * _rand(generator, n)
    m_lo, m_hi = _as_range(object_motion, "object_motion")
    oang = 2 * math.pi * _rand(generator, n)
    omag = m_lo + (m_hi - m_lo) * _rand(generator, n)
    obj_velocity = torch.stack([torch.cos(oang), torch.sin(oang)], 1) * omag[:, None]
    return CameraPaths(velocity, accel, jerk, rot, zm, persp, obj_center, obj_axes, obj_angle, obj_velocity, has_object)


def camera_shake_path(
    extent: float,
    *,
    n_steps: int = 1000,
    speed_variation: float = 1.0,
    expl: float | tuple[float, float] = (0.002, 0.01),
    loop_prob: float = 0.3,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A hand-shake path whose bounding box is ``extent`` pixels on its longer side.

    Two shapes: with probability ``loop_prob`` a Boracchi-Foi random trajectory (`random_trajectory`:
    inertia, shake, pull back, rare big jerks; anxiety drawn from ``expl``), which loops as in
    DeblurGAN's kernels; otherwise a smooth random walk in velocity (a drift plus 2-5 random knots),
    the open, curved strokes with one to three turns that measured hand-shake kernels mostly are
    (Levin et al., CVPR 2009; Kohler et al., ECCV 2012). Either is then re-timed with a random smooth
    speed profile (log-speed of std up to ``speed_variation``): real shake slows down and dwells,
    which shows as bright knots along the kernel.

    Returns:
        (n_steps, 2) float64 (x, y) positions in pixels, equally spaced in time.
    """
    e_lo, e_hi = _as_range(expl, "expl")
    anxiety = e_lo + (e_hi - e_lo) * float(_rand(generator, 1))
    loop = float(_rand(generator, 1)) < loop_prob
    n_knots = 2 + int(4 * float(_rand(generator, 1)))
    drift = torch.randn(2, generator=generator, dtype=torch.float64)
    wander = torch.stack([_smooth_noise(generator, n_knots, n_steps - 1) for _ in range(2)], 1)
    if loop:
        pts = random_trajectory(n_steps, 100.0, expl=anxiety, generator=generator)
    else:
        pts = torch.cat([torch.zeros(1, 2, dtype=torch.float64), (drift + wander).cumsum(0)])
    variation = speed_variation * float(_rand(generator, 1))
    speed = torch.exp(variation * _smooth_noise(generator, 6, n_steps - 1))
    arc = torch.cat([torch.zeros(1, dtype=torch.float64), speed.cumsum(0)])
    arc = arc / arc[-1] * (n_steps - 1)  # samples equally spaced in time fall where the path is slow
    pos = torch.linspace(0, n_steps - 1, n_steps, dtype=torch.float64)
    idx = torch.searchsorted(arc, pos).clamp(1, n_steps - 1)
    frac = ((pos - arc[idx - 1]) / (arc[idx] - arc[idx - 1]).clamp(min=1e-12)).clamp(0, 1)[:, None]
    pts = pts[idx - 1] + frac * (pts[idx] - pts[idx - 1])
    span = (pts.max(0).values - pts.min(0).values).max().item()
    return pts * (extent / max(span, 1e-9))
