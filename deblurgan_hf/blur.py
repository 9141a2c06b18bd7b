"""Motion-blur synthesis, seedable and batched in torch (runs on the fly inside DataLoader workers).

Two families:

* **Kernel (uniform) blur**: DeblurGAN's random camera-trajectory kernels (Kupyn et al., CVPR 2018,
  Algorithm 1, after Boracchi & Foi, TIP 2012) convolved with the image (`random_trajectory_kernel`,
  `apply_kernel`). Kernel sizes and lengths are in pixels.
* **Trajectory (non-uniform, GoPro-like) blur**: an exposure simulated by averaging frames of the sharp
  image warped by homographies along a smooth random camera path (translation, in-plane rotation,
  zoom, slight perspective), optionally with a moving foreground region, averaged on sRGB values
  (like GOPRO_Large ``blur``) or in linear light (like ``blur_gamma``), plus optional highlight
  clipping, sensor noise and JPEG (`trajectory_blur`).

Trajectory-blur motion is expressed as a **fraction of the frame diagonal** (``frame_diag``, by default
the input's own diagonal). To blur a crop exactly as the full frame would be blurred, pass the full
frame's diagonal and the full frame's centre in crop pixel coordinates (``center``); the data pipeline
does this, so 128-pixel crops and full frames see the same blur in pixels.

Images are float tensors (3,H,W) or (N,3,H,W), RGB, in [0, 1]. Every random draw goes through the
``generator`` argument, so a seeded ``torch.Generator`` reproduces a blur exactly.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "random_trajectory",
    "rasterize_trajectory",
    "random_trajectory_kernel",
    "apply_kernel",
    "sample_camera_paths",
    "trajectory_blur",
    "BlurSynthesizer",
    "camera_shake_path",
    "camera_shake_blur",
    "kernel_from_path",
    "kernel_support",
    "degrade",
    "srgb_to_linear",
    "linear_to_srgb",
    "add_noise",
    "jpeg_roundtrip",
]


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


# ----------------------------------------------------------------------------------------------
# DeblurGAN / Boracchi-Foi random trajectory kernels
# ----------------------------------------------------------------------------------------------

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


def rasterize_trajectory(points: torch.Tensor, size: int, *, exposure: float = 1.0) -> torch.Tensor:
    """Sub-pixel rasterisation of a trajectory into a (size, size) PSF summing to 1.

    Each visited position splats bilinear weights on its 4 neighbouring pixels. The path is shifted
    so the PSF's centre of mass is the kernel centre (the blur does not shift the image), and scaled
    down about that centre if it would not fit in the kernel.

    Args:
        points: (T, 2) positions (x, y) in pixels.
        size: kernel side in pixels.
        exposure: fraction (0, 1] of the trajectory recorded (DeblurGAN used 1/100, 1/10, 1/2, 1).

    Returns:
        (size, size) float32 kernel, non-negative, summing to 1.
    """
    if not 0 < exposure <= 1:
        raise ValueError(f"exposure must be in (0, 1], got {exposure}")
    if size < 1:
        raise ValueError(f"kernel size must be >= 1, got {size}")
    if size == 1:
        return torch.ones(1, 1)
    pts = points[: max(1, int(round(exposure * len(points))))].to(torch.float64)
    centre = (size - 1) / 2
    # bilinear splatting keeps each point's mean position, so centring the points centres the mass
    rel = pts - pts.mean(0)
    reach = rel.abs().max().item()
    if reach > centre:  # too long for the kernel: shrink about the centre (the centroid stays put)
        rel = rel * (centre / reach)
    pos = (rel + centre).clamp(0, size - 1)
    x0 = pos[:, 0].floor().clamp(max=size - 2)
    y0 = pos[:, 1].floor().clamp(max=size - 2)
    fx, fy = pos[:, 0] - x0, pos[:, 1] - y0
    x0l, y0l = x0.long(), y0.long()
    kernel = torch.zeros(size * size, dtype=torch.float64)
    for dy, dx, w in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        kernel.index_add_(0, (y0l + dy) * size + (x0l + dx), w)
    kernel = kernel.view(size, size)
    return (kernel / kernel.sum()).float()


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


def apply_kernel(images: torch.Tensor, kernels: torch.Tensor, *, border: str = "reflect") -> torch.Tensor:
    """Convolve images with blur kernels (true convolution: a point image gives back the kernel).

    Border: the image is padded by half the kernel with ``border`` (``"reflect"`` by default, which
    stands in for the unseen scene outside the frame; also ``"replicate"``, ``"circular"``,
    ``"constant"``) and the output has the input's size. Small kernels use a grouped conv2d, large
    ones an FFT product (the same result up to float rounding, faster beyond ~15 pixels).

    Args:
        images: (3,H,W) or (N,C,H,W) float tensor.
        kernels: (k,k) shared kernel, or (N,k,k) one per image; odd or even k.

    Returns:
        Blurred images, same shape and dtype as ``images``.
    """
    squeeze = images.dim() == 3
    x = images.unsqueeze(0) if squeeze else images
    if x.dim() != 4:
        raise ValueError(f"images must be (3,H,W) or (N,C,H,W), got shape {tuple(images.shape)}")
    n, c, h, w = x.shape
    k = kernels.to(x.dtype)
    if k.dim() == 2:
        k = k.expand(n, *k.shape)
    if k.dim() != 3 or k.shape[0] != n:
        raise ValueError(f"kernels must be (k,k) or (N={n},k,k), got shape {tuple(kernels.shape)}")
    kh, kw = k.shape[-2:]
    top, left = (kh - 1) // 2, (kw - 1) // 2
    pad = (left, kw - 1 - left, top, kh - 1 - top)
    if border == "reflect" and (max(pad[:2]) >= w or max(pad[2:]) >= h):
        raise ValueError(f"image {h}x{w} too small for reflect padding of a {kh}x{kw} kernel; use border='replicate'")
    xp = F.pad(x, pad, mode=border)
    if max(kh, kw) <= 15:
        weight = k.flip(-2, -1).repeat_interleave(c, dim=0).unsqueeze(1)  # conv2d correlates: flip
        out = F.conv2d(xp.reshape(1, n * c, *xp.shape[-2:]), weight, groups=n * c).view(n, c, h, w)
    else:
        out = _fft_convolve(xp, k.unsqueeze(1))[..., kh - 1 : kh - 1 + h, kw - 1 : kw - 1 + w]
    return out.squeeze(0) if squeeze else out


def _fast_len(n: int) -> int:
    """Smallest length >= n with no prime factor above 5: FFTs of sizes like 4 x 163 are 5x slower."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _fft_convolve(padded: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Full linear convolution of (N,C,H,W) with (N or M,1 or C,k,k) by one FFT of the images.

    Output (N or M,C,H,W) is indexed like the input: take ``[k-1 : k-1+h]`` for a same-size result
    of an input padded by the kernel.
    """
    ph, pw = padded.shape[-2:]
    size = (_fast_len(ph), _fast_len(pw))
    spec = torch.fft.rfft2(padded, s=size) * torch.fft.rfft2(kernels, s=size)
    return torch.fft.irfft2(spec, s=size)[..., :ph, :pw]


# ----------------------------------------------------------------------------------------------
# Non-uniform blur: averaging frames warped along a random camera path
# ----------------------------------------------------------------------------------------------

def srgb_to_linear(x: torch.Tensor, gamma: float = 2.2) -> torch.Tensor:
    """Gamma-curve inverse camera response (GOPRO_Large's ``blur_gamma`` used gamma 2.2)."""
    return x.clamp(0, 1) ** gamma


def linear_to_srgb(x: torch.Tensor, gamma: float = 2.2) -> torch.Tensor:
    return x.clamp(0, 1) ** (1 / gamma)


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


def _affine(sx: torch.Tensor, sy: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """(N,3,3) matrices [[sx, 0, tx], [0, sy, ty], [0, 0, 1]]."""
    m = torch.zeros(sx.shape[0], 3, 3, dtype=torch.float64)
    m[:, 0, 0], m[:, 1, 1], m[:, 0, 2], m[:, 1, 2], m[:, 2, 2] = sx, sy, tx, ty, 1
    return m


def trajectory_blur(
    images: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    length: float | tuple[float, float] = (0.016, 0.032),
    curvature: float = 0.5,
    rotation: float = 1.0,
    zoom: float = 0.01,
    perspective: float = 0.01,
    object_prob: float = 0.25,
    object_size: tuple[float, float] = (0.1, 0.3),
    object_motion: float | tuple[float, float] = (0.0025, 0.015),
    space: str = "srgb",
    gamma: float = 2.2,
    highlight_prob: float = 0.0,
    highlight_gain: tuple[float, float] = (1.5, 4.0),
    noise: float | tuple[float, float] = (0.0, 0.01),
    jpeg_prob: float = 0.0,
    jpeg_quality: tuple[int, int] = (60, 95),
    n_frames: int | None = None,
    frame_step: float = 2.0,
    max_frames: int = 48,
    frame_diag: float | torch.Tensor | None = None,
    center: torch.Tensor | None = None,
    paths: CameraPaths | None = None,
    output_box: tuple[int, int, int, int] | None = None,
    return_info: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, dict]:
    """Non-uniform motion blur: average of the sharp image warped along a random camera path.

    The sharp input is the middle frame of the exposure (as GoPro's sharp frame is). All motion is in
    fractions of the frame diagonal ``frame_diag`` (default: each input's own diagonal). Warps use
    ``grid_sample`` (bilinear, reflection at the borders, which stand in for the unseen scene).

    Args:
        images: (3,H,W) or (N,3,H,W) float in [0, 1].
        generator: torch random generator.
        length: camera translation over the exposure, fraction of the diagonal; a (min, max) range
            is sampled log-uniformly. The default gives GoPro-like PSNR (see README).
        curvature: size of the quadratic/cubic path terms relative to ``length`` (0: straight line).
        rotation: max in-plane rotation over the exposure, degrees (uniform in +-rotation).
        zoom: max relative scale change over the exposure.
        perspective: max change of the homography's perspective terms (half-diagonal units).
        object_prob: probability of an independently moving elliptic foreground region.
        object_size: range of its semi-axes, in half-diagonals.
        object_motion: range of its own motion over the exposure, fraction of the diagonal.
        space: ``"srgb"`` averages the sRGB values (GOPRO_Large ``blur``, the one papers report on);
            ``"linear"`` averages in linear light (``blur_gamma``; x ** gamma, averaged, x ** (1/gamma)).
        gamma: camera response exponent for ``space="linear"`` and highlights.
        highlight_prob: probability per image of treating near-saturated pixels (>= 0.98) as brighter
            than white (times a gain in ``highlight_gain``, in linear light) before averaging, then
            clipping: bright streaks as in real night shots.
        noise: Gaussian sensor-noise std (or range, uniform) added after blurring, in [0, 1] units.
        jpeg_prob: probability of a JPEG round trip (PIL encode/decode) at a quality drawn
            from ``jpeg_quality``.
        n_frames: number of averaged frames; ``None`` picks enough for at most ``frame_step`` pixels
            between frames (at least 7, as GoPro's 7-13, at most ``max_frames``).
        frame_diag: diagonal in pixels that motion fractions refer to (a float or (N,) tensor);
            pass the full frame's diagonal when blurring a crop.
        center: (N,2) or (2,) rotation / zoom centre (x, y) in input pixel coordinates; pass the full
            frame's centre (in crop coordinates) when blurring a crop. Default: the input's centre.
        paths: pre-drawn `CameraPaths` (then the motion arguments and their draws are skipped).
        output_box: (top, left, height, width): render only this box of the input; the rest of the
            input is context the warps can sample from (much cheaper than blurring a padded crop).
        return_info: also return a dict with the paths, frame count and per-image settings.

    Returns:
        Blurred images like ``images`` (or their ``output_box``), and the info dict if ``return_info``.
    """
    if space not in ("srgb", "linear"):
        raise ValueError(f"space must be 'srgb' or 'linear', got {space!r}")
    squeeze = images.dim() == 3
    x = images.unsqueeze(0) if squeeze else images
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"images must be (3,H,W) or (N,3,H,W), got shape {tuple(images.shape)}")
    n, _, h, w = x.shape
    dtype = x.dtype
    if paths is None:
        paths = sample_camera_paths(
            n, length=length, curvature=curvature, rotation=rotation, zoom=zoom, perspective=perspective,
            object_prob=object_prob, object_size=object_size, object_motion=object_motion, generator=generator,
        )
    diag = torch.as_tensor(math.hypot(h, w) if frame_diag is None else frame_diag, dtype=torch.float64)
    diag = diag.expand(n) if diag.dim() == 0 else diag
    half = diag / 2
    if center is None:
        ctr = torch.tensor([(w - 1) / 2, (h - 1) / 2], dtype=torch.float64).expand(n, 2)
    else:
        ctr = torch.as_tensor(center, dtype=torch.float64).reshape(-1, 2).expand(n, 2)
    hl_draw = _rand(generator, n)
    hl_gain = _uniform(generator, *highlight_gain, n)
    noise_lo, noise_hi = _as_range(noise, "noise")
    sigma = _uniform(generator, noise_lo, noise_hi, n)
    jpeg_draw = _rand(generator, n)
    quality = _uniform(generator, jpeg_quality[0], jpeg_quality[1] + 1, n).floor().clamp(max=jpeg_quality[1])

    max_px = (paths.max_displacement() * diag).max().item()
    if n_frames is None:
        n_frames = int(min(max_frames, max(7, math.ceil(2 * max_px / frame_step) + 1)))
    if n_frames % 2 == 0:
        n_frames += 1  # odd, so the sharp middle frame is one of them
    t = torch.linspace(-0.5, 0.5, n_frames, dtype=torch.float64)
    homs = paths.homographies(t)  # (N,F,3,3)

    src = srgb_to_linear(x, gamma) if space == "linear" else x
    if highlight_prob > 0:
        # near-white pixels were probably clipped: give them a radiance above white (gain in linear
        # light, i.e. gain ** (1/gamma) on sRGB values) so their streaks stay bright after averaging
        on = (hl_draw < highlight_prob).to(dtype)[:, None, None, None]
        gain = 1 + on * (hl_gain.to(dtype)[:, None, None, None] - 1)
        sat = (x.max(1, keepdim=True).values >= 0.98).to(dtype)
        src = src * (1 + sat * ((gain if space == "linear" else gain ** (1 / gamma)) - 1))

    # Every warp is one 3x3 matrix from output pixels (x, y, 1) straight to grid_sample coordinates
    # (float64 composition, float32 application): pixel -> half-diagonal units around the motion
    # centre (C), camera homography (H_f), back to normalised source coordinates (G).
    one, zero = torch.ones(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
    c_mat = _affine(1 / half, 1 / half, -ctr[:, 0] / half, -ctr[:, 1] / half)
    g_mat = _affine(2 * half / w, 2 * half / h, 2 * (ctr[:, 0] + 0.5) / w - 1, 2 * (ctr[:, 1] + 0.5) / h - 1)
    top, left, out_h, out_w = (0, 0, h, w) if output_box is None else output_box
    if top < 0 or left < 0 or top + out_h > h or left + out_w > w or min(out_h, out_w) < 1:
        raise ValueError(f"output_box {output_box} is not inside the {h}x{w} input")
    xs = torch.arange(left, left + out_w, dtype=torch.float32).view(1, 1, out_w)
    ys = torch.arange(top, top + out_h, dtype=torch.float32).view(1, out_h, 1)
    obj = bool(paths.has_object.any())
    if obj:
        # affine map from source half-diagonal units to the ellipse's unit-circle frame
        ca, sa = torch.cos(paths.obj_angle), torch.sin(paths.obj_angle)
        ax, ay = paths.obj_axes[:, 0], paths.obj_axes[:, 1]
        ox, oy = paths.obj_center[:, 0], paths.obj_center[:, 1]
        q_mat = torch.stack([
            torch.stack([ca / ax, sa / ax, -(ca * ox + sa * oy) / ax], 1),
            torch.stack([-sa / ay, ca / ay, -(-sa * ox + ca * oy) / ay], 1),
            torch.stack([zero, zero, one], 1),
        ], 1)
        # ~2 px soft edge (in unit-circle units) so the object's boundary is antialiased
        edge = (2.0 / (paths.obj_axes.min(1).values * half)).float()[:, None]
        present = paths.has_object.float()[:, None]

    def warp(m: torch.Tensor) -> list[torch.Tensor]:
        """Rows of (N,k,3) matrices applied to all pixels, projected: k-1 maps of shape (N,H,W)."""
        m = m.float()[..., None, None]  # (N,k,3,1,1)
        rows = [m[:, i, 0] * xs + m[:, i, 1] * ys + m[:, i, 2] for i in range(m.shape[1])]
        inv = 1 / rows[-1].clamp(min=1e-3)
        return [r * inv for r in rows[:-1]]

    acc = torch.zeros(n, 3, out_h, out_w, dtype=dtype)
    for f in range(n_frames):
        hc = homs[:, f] @ c_mat
        grid = torch.stack(warp(g_mat @ hc), -1).to(dtype)
        frame = F.grid_sample(src, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        if obj:
            # the foreground moves by q relative to the scene: sample the source at H_f (u - q)
            q = 2 * paths.obj_velocity * t[f]  # diagonals -> half-diagonal units
            hq = homs[:, f] @ _affine(one, one, -q[:, 0], -q[:, 1]) @ c_mat
            m = torch.cat([(g_mat @ hq)[:, :2], (q_mat @ hq)[:, :2], hq[:, 2:]], 1)
            gx, gy, ex, ey = warp(m)
            r = torch.sqrt(ex * ex + ey * ey)
            mask = (((1 - r) / edge[..., None] + 0.5).clamp(0, 1) * present[..., None]).unsqueeze(1).to(dtype)
            oframe = F.grid_sample(src, torch.stack([gx, gy], -1).to(dtype), mode="bilinear",
                                   padding_mode="reflection", align_corners=False)
            frame = frame + mask * (oframe - frame)
        acc += frame
    out = acc / n_frames
    if space == "linear":
        out = linear_to_srgb(out, gamma)
    out = out.clamp(0, 1)
    out = add_noise(out, sigma.to(dtype), generator=generator)
    out = jpeg_roundtrip(out, quality.long(), enabled=jpeg_draw < jpeg_prob)
    out = out.squeeze(0) if squeeze else out
    if not return_info:
        return out
    info = {
        "paths": paths, "n_frames": n_frames, "frame_diag": diag, "max_displacement_px": paths.max_displacement() * diag,
        "noise_sigma": sigma, "jpeg_quality": torch.where(jpeg_draw < jpeg_prob, quality, torch.zeros_like(quality)),
        "highlights": hl_draw < highlight_prob,
    }
    return out, info


def add_noise(images: torch.Tensor, sigma: torch.Tensor | float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add Gaussian noise with per-image std ``sigma`` ((N,) or scalar) and clip to [0, 1]."""
    sig = torch.as_tensor(sigma, dtype=images.dtype).reshape(-1, *([1] * (images.dim() - 1)))
    noise = torch.randn(images.shape, generator=generator, dtype=images.dtype)
    if bool((sig == 0).all()):
        return images
    return (images + sig * noise).clamp(0, 1)


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
        u8 = (images[i].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        buf = io.BytesIO()
        Image.fromarray(u8).save(buf, format="JPEG", quality=int(quality[i]))
        dec = np.array(Image.open(buf).convert("RGB"), dtype=np.float32) / 255
        out[i] = torch.from_numpy(dec).permute(2, 0, 1).to(images.dtype)
    return out


# ----------------------------------------------------------------------------------------------
# Camera shake: long curved kernels with speed changes, optional rotation about the optical axis
# ----------------------------------------------------------------------------------------------

def _smooth_noise(generator: torch.Generator | None, n_knots: int, n: int) -> torch.Tensor:
    """(n,) float64 random curve through ``n_knots`` standard-normal knots, linearly interpolated."""
    knots = torch.randn((1, 1, n_knots), generator=generator, dtype=torch.float64)
    return F.interpolate(knots, size=n, mode="linear", align_corners=True).view(n)


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


def kernel_from_path(points: torch.Tensor) -> torch.Tensor:
    """Rasterise a path (pixels) into an odd-sized PSF centred on its centre of mass, never shrunk."""
    reach = (points - points.mean(0)).abs().max().item()
    return rasterize_trajectory(points, 2 * math.ceil(reach) + 3)


def kernel_support(kernel: torch.Tensor) -> int:
    """Longer side, in pixels, of the bounding box of a kernel's non-zero weights."""
    ys, xs = torch.nonzero(torch.as_tensor(kernel) > 0, as_tuple=True)
    return int(max(ys.max() - ys.min(), xs.max() - xs.min())) + 1


def _log_uniform(generator: torch.Generator | None, lo: float, hi: float) -> float:
    return lo * (hi / lo) ** float(_rand(generator, 1)) if lo > 0 else hi * float(_rand(generator, 1))


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
    shape = (n,) + (1,) * (images.dim() - 1)
    var = sigma.to(images.dtype).view(shape) ** 2
    level = images.clamp(0, 1) / 0.5
    std = (var * ((1 - shot.to(images.dtype).view(shape)) + shot.to(images.dtype).view(shape) * level)).sqrt()
    noise_draw = torch.randn(images.shape, generator=generator, dtype=images.dtype)
    out = (images + std * noise_draw).clamp(0, 1)
    out = jpeg_roundtrip(out, quality, enabled=use_jpeg)
    info = {"noise_sigma": sigma, "shot_fraction": shot,
            "jpeg_quality": torch.where(use_jpeg, quality, torch.zeros_like(quality))}
    return out, info


def camera_shake_blur(
    images: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    size: float | tuple[float, float] = (7, 75),
    speed_variation: float = 1.0,
    expl: float | tuple[float, float] = (0.002, 0.01),
    loop_prob: float = 0.3,
    rotation_prob: float = 0.3,
    rotation: float | tuple[float, float] = (0.2, 0.8),
    anchors: int = 3,
    linear_prob: float = 0.5,
    gamma: float = 2.2,
    highlight_prob: float = 0.5,
    highlight_gain: tuple[float, float] = (2.0, 8.0),
    noise: float | tuple[float, float] = (0.0, 0.03),
    shot_fraction: float | tuple[float, float] = (0.0, 1.0),
    jpeg_prob: float = 0.3,
    jpeg_quality: tuple[int, int] = (60, 95),
    valid: bool = False,
    frame_diag: float | None = None,
    center: torch.Tensor | None = None,
    output_box: tuple[int, int, int, int] | None = None,
) -> tuple[torch.Tensor, dict]:
    """Hand-held camera shake: a long curved kernel, optionally varying over the frame, then degradation.

    Each image gets a path (`camera_shake_path`) whose longer side is drawn log-uniformly from
    ``size`` pixels. With probability ``rotation_prob`` the camera also rolls about the optical axis,
    turning by ``rotation`` (a range, in units of ``size`` / half-diagonal: 0.5 moves a frame corner
    half as far as the shake) along its own smooth random curve; the spatially varying blur is then
    rendered as ``anchors`` x ``anchors`` local kernels blended bilinearly (the efficient filter flow of
    Hirsch et al., CVPR 2010). Every local kernel is centred on its centre of mass, so the blurred
    image stays aligned with the sharp one. With probability ``linear_prob`` the blur happens in linear
    light, where near-white pixels (probably clipped) first get a radiance gain (``highlight_gain``,
    with probability ``highlight_prob``) so that lights smear into bright streaks and clip again.
    Then `degrade` adds shot + read noise (std at mid-grey drawn from ``noise``) and JPEG, and the
    result is quantised to 8 bits.

    Args:
        images: (3,H,W) or (N,3,H,W) float in [0, 1].
        valid: valid convolution: the output is the input shrunk by the kernel on each side (no
            border is invented); the sharp target is ``images`` cropped by ``info["valid_crop"]``.
        frame_diag, center: the full frame's diagonal and centre (x, y) in input pixels, when
            ``images`` is a crop (rotation is about the frame's centre); default: the input's.
        output_box: (top, left, h, w): render only this box; the rest of the input is context.

    Returns:
        ``(blurred, info)``; info holds ``kernel`` (N,k,k) (the centre kernel), ``size`` (support,
        pixels), ``rotation`` (radians over the exposure), and the degradation settings.
    """
    squeeze = images.dim() == 3
    x = images.unsqueeze(0) if squeeze else images
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"images must be (3,H,W) or (N,3,H,W), got shape {tuple(images.shape)}")
    n, _, h, w = x.shape
    s_lo, s_hi = _as_range(size, "size")
    if s_lo < 1:
        raise ValueError(f"size must be >= 1 pixel, got {size}")
    r_lo, r_hi = _as_range(rotation, "rotation")
    half_diag = (math.hypot(h, w) if frame_diag is None else float(frame_diag)) / 2
    ctr = torch.tensor([(w - 1) / 2, (h - 1) / 2], dtype=torch.float64) if center is None else \
        torch.as_tensor(center, dtype=torch.float64).reshape(2)
    top, left, out_h, out_w = (0, 0, h, w) if output_box is None else output_box
    outs, kernels, sizes, rolls = [], [], [], []
    for i in range(n):
        # a path spanning e pixels splats onto floor(e) + 1 or + 2 of them: e in [lo - 1, hi - 2]
        extent = _log_uniform(generator, max(s_lo - 1, 0.0), max(s_hi - 2, s_lo - 1))
        path = camera_shake_path(extent, speed_variation=speed_variation, expl=expl, loop_prob=loop_prob,
                                 generator=generator)
        roll_draw, roll_amount = float(_rand(generator, 1)), _log_uniform(generator, max(r_lo, 1e-6), r_hi)
        roll_curve = _smooth_noise(generator, 4, path.shape[0]).cumsum(0)
        lin_draw, hl_draw = float(_rand(generator, 1)), float(_rand(generator, 1))
        gain = float(_uniform(generator, *highlight_gain, 1))
        theta = None
        if roll_draw < rotation_prob and extent > 0:
            span = (roll_curve.max() - roll_curve.min()).clamp(min=1e-9)
            theta = (roll_curve - roll_curve.mean()) / span * (roll_amount * extent / half_diag)
        src = x[i : i + 1]
        linear = lin_draw < linear_prob
        if linear:
            sat = (src.max(1, keepdim=True).values >= 0.98).to(src.dtype)
            src = srgb_to_linear(src, gamma)
            if hl_draw < highlight_prob:
                src = src * (1 + sat * (gain - 1))
        centre_kernel = kernel_from_path(path)
        if theta is None:
            out = _convolve(src, centre_kernel, valid)
        else:
            out = _convolve_varying(src, path, theta, ctr, anchors, valid)
        if linear:
            out = linear_to_srgb(out, gamma)
        out = out.clamp(0, 1)
        outs.append(out)
        kernels.append(centre_kernel)
        sizes.append(kernel_support(centre_kernel))
        rolls.append(0.0 if theta is None else float(theta.max() - theta.min()))
    if valid:
        if n > 1 and len({o.shape for o in outs}) > 1:
            raise ValueError("valid convolution of a batch gives different sizes per kernel; blur one image at a time")
        blurred = torch.cat(outs)
        crop = ((h - blurred.shape[-2]) // 2, (w - blurred.shape[-1]) // 2, blurred.shape[-2], blurred.shape[-1])
    else:
        blurred = torch.cat(outs)[..., top : top + out_h, left : left + out_w]
        crop = None
    blurred, info = degrade(blurred.contiguous(), generator, noise=noise, shot_fraction=shot_fraction,
                            jpeg_prob=jpeg_prob, jpeg_quality=jpeg_quality)
    blurred = (blurred * 255).round() / 255
    k = max(kk.shape[-1] for kk in kernels)
    info.update({
        "kernel": torch.stack([F.pad(kk, [(k - kk.shape[-1]) // 2] * 4) for kk in kernels]),
        "size": torch.tensor(sizes), "rotation": torch.tensor(rolls), "valid_crop": crop,
    })
    return (blurred.squeeze(0) if squeeze else blurred), info


def _convolve(image: torch.Tensor, kernel: torch.Tensor, valid: bool) -> torch.Tensor:
    """(1,3,H,W) convolved with one centred odd kernel: same size (reflect) or valid."""
    if not valid:
        border = "reflect" if kernel.shape[-1] // 2 < min(image.shape[-2:]) else "replicate"
        return apply_kernel(image, kernel, border=border)
    k = kernel.shape[-1]
    if min(image.shape[-2:]) < k:
        raise ValueError(f"image {tuple(image.shape[-2:])} is smaller than the {k}x{k} kernel for valid convolution")
    pad = k // 2
    return apply_kernel(image, kernel, border="constant")[..., pad : image.shape[-2] - pad, pad : image.shape[-1] - pad]


def _convolve_varying(image: torch.Tensor, path: torch.Tensor, theta: torch.Tensor, centre: torch.Tensor,
                      anchors: int, valid: bool) -> torch.Tensor:
    """Blur of translation ``path`` plus roll ``theta`` (radians per sample) about ``centre``.

    Local kernels at an anchors x anchors grid over the image, each from the displacement of that
    point, d(t) = path(t) + (R(theta(t)) - I)(p - centre), blended with bilinear weights.
    """
    _, _, h, w = image.shape
    cos, sin = torch.cos(theta)[:, None], torch.sin(theta)[:, None]
    grid = max(anchors - 1, 1)
    local = []
    for j in range(anchors):
        for i in range(anchors):
            p = torch.tensor([i * (w - 1) / grid, j * (h - 1) / grid], dtype=torch.float64) - centre
            rot = torch.cat([cos * p[0] - sin * p[1], sin * p[0] + cos * p[1]], 1) - p
            local.append(kernel_from_path(path + rot))
    k = max(kk.shape[-1] for kk in local)
    kernels = torch.stack([F.pad(kk, [(k - kk.shape[-1]) // 2] * 4) for kk in local]).to(image.dtype)
    pad = k // 2
    if valid:
        if min(h, w) < k:
            raise ValueError(f"image {h}x{w} is smaller than the {k}x{k} kernel for valid convolution")
        padded, (oh, ow) = image, (h - 2 * pad, w - 2 * pad)
    else:
        border = "reflect" if pad < min(h, w) else "replicate"
        padded, (oh, ow) = F.pad(image, (pad, pad, pad, pad), mode=border), (h, w)
    # one FFT of the image for all local kernels; output row/col r is input r + pad (valid) or r
    blurred = _fft_convolve(padded, kernels.unsqueeze(1))[..., k - 1 : k - 1 + oh, k - 1 : k - 1 + ow]
    first = pad if valid else 0
    ys = torch.arange(first, first + oh, dtype=image.dtype) / max(h - 1, 1) * grid
    xs = torch.arange(first, first + ow, dtype=image.dtype) / max(w - 1, 1) * grid
    wy = (1 - (ys[None, :] - torch.arange(anchors, dtype=image.dtype)[:, None]).abs()).clamp(min=0)  # (A,oh)
    wx = (1 - (xs[None, :] - torch.arange(anchors, dtype=image.dtype)[:, None]).abs()).clamp(min=0)  # (A,ow)
    weights = (wy[:, None, :, None] * wx[None, :, None, :]).reshape(anchors * anchors, 1, oh, ow)
    return (weights * blurred).sum(0, keepdim=True)


# ----------------------------------------------------------------------------------------------
# One callable for the data pipeline
# ----------------------------------------------------------------------------------------------

class BlurSynthesizer:
    """Random blur for sharp images: ``(blurred, info) = synth(sharp, generator)``.

    Args:
        mode: ``"trajectory"`` (non-uniform GoPro-like, `trajectory_blur`), ``"kernel"``
            (uniform DeblurGAN kernels, `random_trajectory_kernel` + `apply_kernel`), ``"shake"``
            (hand-held camera shake, `camera_shake_blur`), or ``"mix"``: ``components``, a list of
            configs of the other modes each with a ``weight``; every image draws one of them.
        **params: keyword arguments of `trajectory_blur` (trajectory mode) or, for kernel mode:
            ``size`` (31), ``max_len`` (float or (min, max) range in pixels, default (0.3*size, size)),
            ``exposure`` (tuple of choices, default (0.1, 0.5, 1.0, 1.0) as DeblurGAN's 1/10, 1/2, 1),
            ``expl`` (0.005), ``noise`` (std range, default (0, 0.01)), ``jpeg_prob`` (0),
            ``jpeg_quality`` ((60, 95)).

    info: trajectory mode: the `trajectory_blur` info; kernel mode: ``{"kernel": (N,k,k)}`` (the exact
    kernel convolved, for non-blind baselines) plus noise and JPEG settings.
    """

    MODES = ("trajectory", "kernel", "shake", "mix")
    KERNEL_KEYS = {"size", "max_len", "exposure", "expl", "noise", "jpeg_prob", "jpeg_quality", "n_steps", "border"}
    _NOT_PARAMS = {"images", "generator", "return_info", "paths", "frame_diag", "center", "output_box"}

    def __init__(self, mode: str = "trajectory", **params):
        if mode not in self.MODES:
            raise ValueError(f"blur mode must be one of {self.MODES}, got {mode!r}")
        if mode == "trajectory":
            allowed = set(inspect.signature(trajectory_blur).parameters) - self._NOT_PARAMS
        elif mode == "shake":
            allowed = set(inspect.signature(camera_shake_blur).parameters) - self._NOT_PARAMS
        elif mode == "mix":
            allowed = {"components"}
        else:
            allowed = self.KERNEL_KEYS
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise ValueError(f"unknown {mode}-blur parameter(s) {unknown}; allowed: {sorted(allowed)}")
        self.mode = mode
        self.params = dict(params)
        self.components: list[BlurSynthesizer] = []
        if mode == "mix":
            comps = params.get("components")
            if not isinstance(comps, (list, tuple)) or not comps:
                raise ValueError("blur mode 'mix' needs 'components': a non-empty list of blur configs with a 'weight'")
            weights = []
            for c in comps:
                if not isinstance(c, dict) or c.get("mode") == "mix":
                    raise ValueError(f"each mix component must be a blur config of another mode, got {c!r}")
                c = dict(c)
                weight = c.pop("weight", 1.0)
                if not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
                    raise ValueError(f"mix component weight must be a positive number, got {weight!r}")
                weights.append(float(weight))
                self.components.append(BlurSynthesizer.from_config(c))
            self.weights = torch.tensor(weights, dtype=torch.float64) / sum(weights)

    @property
    def shrinks(self) -> bool:
        """Whether the output is smaller than the input (valid convolution; for evaluation only)."""
        return bool(self.params.get("valid")) or any(c.shrinks for c in self.components)

    def pick(self, generator: torch.Generator | None = None) -> "BlurSynthesizer":
        """The synthesizer of the next image: a drawn component in mix mode, else this one."""
        if self.mode != "mix":
            return self
        u = float(_rand(generator, 1))
        index = int(torch.searchsorted(self.weights.cumsum(0), torch.tensor([u], dtype=torch.float64)).clamp(max=len(self.components) - 1))
        return self.components[index]

    @classmethod
    def from_config(cls, config: dict | None) -> "BlurSynthesizer":
        """From a dict like ``{"mode": "trajectory", "length": [0.01, 0.03]}`` (None: defaults)."""
        config = dict(config or {})
        return cls(config.pop("mode", "trajectory"), **config)

    def __repr__(self) -> str:
        return f"BlurSynthesizer(mode={self.mode!r}, **{self.params!r})"

    def sample_paths(self, n: int, generator: torch.Generator | None = None) -> CameraPaths | None:
        """Draw the camera paths of the next ``n`` trajectory blurs (``None`` in kernel mode)."""
        if self.mode != "trajectory":
            return None
        keys = set(inspect.signature(sample_camera_paths).parameters) - {"n", "generator"}
        return sample_camera_paths(n, generator=generator, **{k: v for k, v in self.params.items() if k in keys})

    def margin(self, frame_diag: float, paths: CameraPaths | None = None) -> int:
        """Pixels of context around a patch so that its blur does not depend on the patch border.

        Kernel mode: half the kernel. Trajectory mode: the largest motion of ``paths`` (drawn with
        `sample_paths`) in a frame of diagonal ``frame_diag``.
        """
        if self.mode == "kernel":
            return int(self.params.get("size", 31)) // 2 + 1
        if self.mode == "shake":
            # kernel reach from its centre of mass: at most the path span, plus what the roll adds
            size_hi = _as_range(self.params.get("size", (7, 75)), "size")[1]
            roll_hi = _as_range(self.params.get("rotation", (0.2, 0.8)), "rotation")[1]
            return int(math.ceil(size_hi * (1 + roll_hi))) + 3
        if self.mode == "mix":
            raise ValueError("a mix synthesizer has no margin of its own: pick() a component first")
        if paths is None:
            raise ValueError("trajectory mode needs the sampled paths to size the margin (see sample_paths)")
        return int(math.ceil(float((paths.max_displacement() * frame_diag).max()))) + 2

    def __call__(
        self,
        sharp: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        frame_diag: float | torch.Tensor | None = None,
        center: torch.Tensor | None = None,
        paths: CameraPaths | None = None,
        output_box: tuple[int, int, int, int] | None = None,
    ) -> tuple[torch.Tensor, dict]:
        """Blur ``sharp`` ((3,H,W) or (N,3,H,W)).

        ``frame_diag``, ``center``, ``paths`` and ``output_box`` as in `trajectory_blur` (kernel mode:
        ``output_box`` crops the result; the others do not apply).
        """
        if self.mode == "mix":
            return self.pick(generator)(sharp, generator, frame_diag=frame_diag, center=center, output_box=output_box)
        if self.mode == "trajectory":
            return trajectory_blur(sharp, generator=generator, frame_diag=frame_diag, center=center, paths=paths,
                                   output_box=output_box, return_info=True, **self.params)
        if self.mode == "shake":
            diag = None if frame_diag is None else float(torch.as_tensor(frame_diag).reshape(-1)[0])
            return camera_shake_blur(sharp, generator=generator, frame_diag=diag, center=center,
                                     output_box=output_box, **self.params)
        blurred, info = self._kernel_blur(sharp, generator)
        if output_box is not None:
            top, left, bh, bw = output_box
            blurred = blurred[..., top : top + bh, left : left + bw].contiguous()
        return blurred, info

    def _kernel_blur(self, sharp: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, dict]:
        p = self.params
        squeeze = sharp.dim() == 3
        x = sharp.unsqueeze(0) if squeeze else sharp
        n = x.shape[0]
        size = int(p.get("size", 31))
        lo, hi = _as_range(p.get("max_len", (0.3 * size, float(size))), "max_len")
        exposures = p.get("exposure", (0.1, 0.5, 1.0, 1.0))
        exposures = exposures if isinstance(exposures, (tuple, list)) else (exposures,)
        kernels = []
        for _ in range(n):
            length = lo + (hi - lo) * float(_rand(generator, 1))
            exposure = float(exposures[int(_rand(generator, 1) * len(exposures)) % len(exposures)])
            kernels.append(random_trajectory_kernel(
                size, max_len=length, exposure=exposure, expl=p.get("expl", 0.005),
                n_steps=p.get("n_steps", 2000), generator=generator,
            ))
        k = torch.stack(kernels)
        out = apply_kernel(x, k, border=p.get("border", "reflect")).clamp(0, 1)
        noise_lo, noise_hi = _as_range(p.get("noise", (0.0, 0.01)), "noise")
        sigma = _uniform(generator, noise_lo, noise_hi, n)
        out = add_noise(out, sigma.to(out.dtype), generator=generator)
        q_lo, q_hi = p.get("jpeg_quality", (60, 95))
        quality = _uniform(generator, q_lo, q_hi + 1, n).floor().clamp(max=q_hi).long()
        use_jpeg = _rand(generator, n) < p.get("jpeg_prob", 0.0)
        out = jpeg_roundtrip(out, quality, enabled=use_jpeg)
        info = {"kernel": k, "noise_sigma": sigma, "jpeg_quality": torch.where(use_jpeg, quality, torch.zeros_like(quality))}
        return (out.squeeze(0) if squeeze else out), info
