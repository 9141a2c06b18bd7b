"""The blur types, each sampling -> rendering -> degradation: `trajectory_blur` (non-uniform,
GoPro-like), `camera_shake_blur` (long hand-shake kernels), kernel blur, and `BlurSynthesizer`,
the one callable the data pipeline uses for all of them (and their mix)."""

from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F

from .degradation import Degradation, apply_degradation, degrade
from .rendering import (
    _convolve,
    _convolve_varying,
    apply_kernel,
    kernel_from_path,
    kernel_support,
    linear_to_srgb,
    render_trajectory,
    srgb_to_linear,
)
from .sampling import (
    CameraPaths,
    _as_range,
    _log_uniform,
    _rand,
    _smooth_noise,
    _uniform,
    camera_shake_path,
    random_trajectory_kernel,
    sample_camera_paths,
)

__all__ = ["trajectory_blur", "camera_shake_blur", "BlurSynthesizer"]


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

    gain = None
    if highlight_prob > 0:
        on = (hl_draw < highlight_prob).to(dtype)
        gain = 1 + on * (hl_gain.to(dtype) - 1)
    top, left, out_h, out_w = (0, 0, h, w) if output_box is None else output_box
    if top < 0 or left < 0 or top + out_h > h or left + out_w > w or min(out_h, out_w) < 1:
        raise ValueError(f"output_box {output_box} is not inside the {h}x{w} input")

    max_px = (paths.max_displacement() * diag).max().item()
    if n_frames is None:
        n_frames = int(min(max_frames, max(7, math.ceil(2 * max_px / frame_step) + 1)))
    if n_frames % 2 == 0:
        n_frames += 1  # odd, so the sharp middle frame is one of them
    out = render_trajectory(x, paths, diag=diag, ctr=ctr, n_frames=n_frames, space=space, gamma=gamma,
                            highlight_gain=gain, output_box=output_box)
    noise_draw = torch.randn(out.shape, generator=generator, dtype=dtype)
    out = apply_degradation(out, Degradation(sigma.to(dtype), noise_draw, quality.long(), jpeg_draw < jpeg_prob))
    out = out.squeeze(0) if squeeze else out
    if not return_info:
        return out
    info = {
        "paths": paths, "n_frames": n_frames, "frame_diag": diag, "max_displacement_px": paths.max_displacement() * diag,
        "noise_sigma": sigma, "jpeg_quality": torch.where(jpeg_draw < jpeg_prob, quality, torch.zeros_like(quality)),
        "highlights": hl_draw < highlight_prob,
    }
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

    def pick(self, generator: torch.Generator | None = None) -> BlurSynthesizer:
        """The synthesizer of the next image: a drawn component in mix mode, else this one."""
        if self.mode != "mix":
            return self
        u = float(_rand(generator, 1))
        index = int(torch.searchsorted(self.weights.cumsum(0), torch.tensor([u], dtype=torch.float64)).clamp(max=len(self.components) - 1))
        return self.components[index]

    @classmethod
    def from_config(cls, config: dict | None) -> BlurSynthesizer:
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
        noise_draw = torch.randn(out.shape, generator=generator, dtype=out.dtype)
        q_lo, q_hi = p.get("jpeg_quality", (60, 95))
        quality = _uniform(generator, q_lo, q_hi + 1, n).floor().clamp(max=q_hi).long()
        use_jpeg = _rand(generator, n) < p.get("jpeg_prob", 0.0)
        out = apply_degradation(out, Degradation(sigma.to(out.dtype), noise_draw, quality, use_jpeg))
        info = {"kernel": k, "noise_sigma": sigma, "jpeg_quality": torch.where(use_jpeg, quality, torch.zeros_like(quality))}
        return (out.squeeze(0) if squeeze else out), info
