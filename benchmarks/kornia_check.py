"""Would kornia replace the hand-written warp and filter of `deblurgan_hf.blur` at equal speed?

    pip install kornia && python benchmarks/kornia_check.py [--threads 2] [--repeats 5]

Times, best of ``--repeats``, on a real 1280x720 GoPro frame (float32, CPU), each pair computing
the same thing (the maximum difference is printed beside):
- one frame of `trajectory_blur`'s exposure: the projective warp of every output pixel to source
  coordinates + `grid_sample` (rendering.render_trajectory's inner step) vs
  `kornia.geometry.transform.warp_perspective` with the same homography in pixels;
- `blur.apply_kernel` (grouped conv2d up to 15 px, one FFT beyond) vs `kornia.filters.filter2d`
  (reflect border, true convolution) for a 9 px and a 31 px motion kernel.
kornia is not a dependency of the project: the script answers whether it should become one.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from deblurgan_hf.blur import apply_kernel, random_trajectory_kernel

FRAME = Path(__file__).resolve().parents[2] / "shared" / "data" / "gopro_real" / "val" / "sharp"


def best(fn, repeats: int) -> tuple[float, torch.Tensor]:
    fn()  # warm-up
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def project_and_sample(src: torch.Tensor, hom: torch.Tensor) -> torch.Tensor:
    """The project's warp: output pixel (x, y, 1) -> homography -> normalised coordinates -> grid_sample."""
    _, _, h, w = src.shape
    # pixel -> grid_sample coordinates with corner pixels at -1 and 1: kornia's convention, so that both
    # sides compute the same warp (the project uses pixel edges, align_corners=False; same cost)
    to_norm = torch.tensor([[2 / (w - 1), 0, -1], [0, 2 / (h - 1), -1], [0, 0, 1]], dtype=torch.float64)
    m = (to_norm @ hom).float()[..., None, None]
    xs = torch.arange(w, dtype=torch.float32).view(1, w)
    ys = torch.arange(h, dtype=torch.float32).view(h, 1)
    rows = [m[i, 0] * xs + m[i, 1] * ys + m[i, 2] for i in range(3)]
    inv = 1 / rows[2].clamp(min=1e-3)
    grid = torch.stack([rows[0] * inv, rows[1] * inv], -1)[None]
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="reflection", align_corners=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    try:
        import kornia
    except ImportError:
        raise SystemExit("kornia is not installed: pip install kornia (it is not a dependency of the project)") from None
    torch.set_num_threads(args.threads)
    frame = sorted(FRAME.glob("*.png"))[0]
    x = torch.from_numpy(np.asarray(Image.open(frame).convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)[None]
    print(f"kornia {kornia.__version__}, torch {torch.__version__}, {args.threads} threads, {frame.name} "
          f"{x.shape[-1]}x{x.shape[-2]}, best of {args.repeats}\n")
    print("| operation | project (s) | kornia (s) | kornia / project | max abs difference |\n|---|---:|---:|---:|---:|")

    # a camera homography of trajectory_blur's size: 0.6 degrees roll, 1% zoom, a few pixels of shift
    a, s = np.radians(0.6), 1.01
    hom = torch.tensor([[s * np.cos(a), -s * np.sin(a), 6.0], [s * np.sin(a), s * np.cos(a), -4.0], [1e-6, 2e-6, 1.0]],
                       dtype=torch.float64)  # output pixel -> source pixel (pixel-centre coordinates)
    ours_t, ours = best(lambda: project_and_sample(x, hom), args.repeats)
    # kornia maps source -> destination pixels (it inverts the matrix itself)
    dst_from_src = torch.linalg.inv(hom).float()[None]
    theirs_t, theirs = best(lambda: kornia.geometry.transform.warp_perspective(
        x, dst_from_src, tuple(x.shape[-2:]), mode="bilinear", padding_mode="reflection", align_corners=True), args.repeats)
    print(f"| projective warp, one frame | {ours_t:.4f} | {theirs_t:.4f} | {theirs_t / ours_t:.2f} | "
          f"{float((ours - theirs).abs().max()):.1e} |")

    for size in (9, 31):
        k = random_trajectory_kernel(size, generator=torch.Generator().manual_seed(0))
        ours_t, ours = best(lambda k=k: apply_kernel(x, k[None]), args.repeats)
        theirs_t, theirs = best(lambda k=k: kornia.filters.filter2d(x, k[None], border_type="reflect", behaviour="conv"),
                                args.repeats)
        print(f"| blur with a {size} px kernel | {ours_t:.4f} | {theirs_t:.4f} | {theirs_t / ours_t:.2f} | "
              f"{float((ours - theirs).abs().max()):.1e} |")


if __name__ == "__main__":
    from _results import recorded

    with recorded("kornia", skip_flags=("-h", "--help")):
        main()
