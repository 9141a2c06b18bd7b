"""Rendering: deterministic image formation from drawn geometry (kernels, warps, convolutions).

Nothing here draws random numbers: `sampling` draws, these functions form the blurred image,
`degradation` adds what the camera does last (noise, JPEG).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from .sampling import CameraPaths

__all__ = ["rasterize_trajectory", "kernel_from_path", "kernel_support", "apply_kernel", "render_trajectory",
           "srgb_to_linear", "linear_to_srgb"]


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


def kernel_from_path(points: torch.Tensor) -> torch.Tensor:
    """Rasterise a path (pixels) into an odd-sized PSF centred on its centre of mass, never shrunk."""
    reach = (points - points.mean(0)).abs().max().item()
    return rasterize_trajectory(points, 2 * math.ceil(reach) + 3)


def kernel_support(kernel: torch.Tensor) -> int:
    """Longer side, in pixels, of the bounding box of a kernel's non-zero weights."""
    ys, xs = torch.nonzero(torch.as_tensor(kernel) > 0, as_tuple=True)
    return int(max(ys.max() - ys.min(), xs.max() - xs.min())) + 1


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


def srgb_to_linear(x: torch.Tensor, gamma: float = 2.2) -> torch.Tensor:
    """Gamma-curve inverse camera response (GOPRO_Large's ``blur_gamma`` used gamma 2.2)."""
    return x.clamp(0, 1) ** gamma


def linear_to_srgb(x: torch.Tensor, gamma: float = 2.2) -> torch.Tensor:
    return x.clamp(0, 1) ** (1 / gamma)


def _affine(sx: torch.Tensor, sy: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """(N,3,3) matrices [[sx, 0, tx], [0, sy, ty], [0, 0, 1]]."""
    m = torch.zeros(sx.shape[0], 3, 3, dtype=torch.float64)
    m[:, 0, 0], m[:, 1, 1], m[:, 0, 2], m[:, 1, 2], m[:, 2, 2] = sx, sy, tx, ty, 1
    return m


def render_trajectory(
    x: torch.Tensor,
    paths: CameraPaths,
    *,
    diag: torch.Tensor,
    ctr: torch.Tensor,
    n_frames: int,
    space: str = "srgb",
    gamma: float = 2.2,
    highlight_gain: torch.Tensor | None = None,
    output_box: tuple[int, int, int, int] | None = None,
) -> torch.Tensor:
    """The exposure of `trajectory_blur`: the (N,3,H,W) images warped along ``paths`` at ``n_frames``
    times, composited with the moving foreground, averaged (in linear light for ``space="linear"``),
    clipped to [0, 1]. Draws nothing random.

    Args:
        diag: (N,) float64 frame diagonals in pixels that the motion fractions refer to.
        ctr: (N,2) float64 rotation / zoom centres (x, y) in input pixels.
        highlight_gain: (N,) radiance gain of near-white pixels (1: none); ``None``: no highlights.
        output_box: (top, left, height, width) to render, inside the input.
    """
    t = torch.linspace(-0.5, 0.5, n_frames, dtype=torch.float64)
    homs = paths.homographies(t)  # (N,F,3,3)
    n, _, h, w = x.shape
    dtype = x.dtype
    half = diag / 2
    src = srgb_to_linear(x, gamma) if space == "linear" else x
    if highlight_gain is not None:
        # near-white pixels were probably clipped: give them a radiance above white (gain in linear
        # light, i.e. gain ** (1/gamma) on sRGB values) so their streaks stay bright after averaging
        gain = highlight_gain[:, None, None, None]
        sat = (x.max(1, keepdim=True).values >= 0.98).to(dtype)
        src = src * (1 + sat * ((gain if space == "linear" else gain ** (1 / gamma)) - 1))

    # Every warp is one 3x3 matrix from output pixels (x, y, 1) straight to grid_sample coordinates
    # (float64 composition, float32 application): pixel -> half-diagonal units around the motion
    # centre (C), camera homography (H_f), back to normalised source coordinates (G).
    one, zero = torch.ones(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
    c_mat = _affine(1 / half, 1 / half, -ctr[:, 0] / half, -ctr[:, 1] / half)
    g_mat = _affine(2 * half / w, 2 * half / h, 2 * (ctr[:, 0] + 0.5) / w - 1, 2 * (ctr[:, 1] + 0.5) / h - 1)
    top, left, out_h, out_w = (0, 0, h, w) if output_box is None else output_box
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
    return out.clamp(0, 1)


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
