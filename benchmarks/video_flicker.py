"""Flicker of frame-by-frame deblurring on a real clip: the 20 consecutive 1280x720 GoPro frames
(../shared/data/gopro_blur_only, one sequence) as a 30 fps clip, through `deblurgan_hf.video`.

Flicker is measured as the mean absolute difference between consecutive frames (0-255 levels),
for the input and for the output, both plain and after warping frame t+1 onto frame t with the
optical flow OpenCV (Farneback) finds between the *input* frames, so camera and object motion
cancel out and what is left is change the motion does not explain. Sharpness is the mean
squared gradient of the luma (tests/app_server.gradient_energy).

Temporal smoothing candidate: each output frame blended with the previous smoothed output
warped onto it by the same flow, `s_t = (1 - a) out_t + a warp(s_{t-1})`, for a few `a`. It is
worth adding only if it lowers the warped difference without lowering sharpness.

    python benchmarks/video_flicker.py [--model PATH_OR_ID] [--precision auto] [--alphas 0.25 0.5]

Prints Markdown, written to docs/results/video_flicker.md.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FRAMES = REPO.parent / "shared" / "data" / "gopro_blur_only"


def make_lossless_clip(files: list[Path], path: Path, fps: int = 30) -> None:
    """The frames as an RGB-lossless H.264 clip: decoding it gives back the PNGs' pixels exactly."""
    import av
    from PIL import Image

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264rgb", rate=fps, options={"qp": "0"})
        with Image.open(files[0]) as first:
            stream.width, stream.height = first.size
        stream.pix_fmt = "rgb24"
        for file in files:
            with Image.open(file) as img:
                out.mux(stream.encode(av.VideoFrame.from_ndarray(np.asarray(img.convert("RGB")), format="rgb24")))
        out.mux(stream.encode(None))


def decode(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as clip:
        return [f.to_ndarray(format="rgb24") for f in clip.decode(video=0)]


def flow_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense flow (H, W, 2) such that a[y, x] ~ b[y + fy, x + fx]."""
    import cv2

    gray_a, gray_b = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (a, b))
    return cv2.calcOpticalFlowFarneback(gray_a, gray_b, None, pyr_scale=0.5, levels=4, winsize=21,
                                        iterations=5, poly_n=7, poly_sigma=1.5, flags=0)


def warp(image: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`image` sampled at (x + fx, y + fy): (warped float image, mask of pixels sampled inside it)."""
    import cv2

    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = xs + flow[..., 0], ys + flow[..., 1]
    warped = cv2.remap(image.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    return warped, inside


def sharpness(frames: list[np.ndarray]) -> float:
    def energy(rgb: np.ndarray) -> float:
        y = (rgb.astype(np.float64) @ [0.299, 0.587, 0.114]) / 255.0
        return float((np.diff(y, axis=0) ** 2).mean() + (np.diff(y, axis=1) ** 2).mean())

    return float(np.mean([energy(f) for f in frames]))


def flicker(frames: list[np.ndarray], flows: list[np.ndarray]) -> tuple[float, float, float]:
    """Mean absolute difference between consecutive frames: plain, motion-compensated, and
    motion-compensated after a Gaussian blur (sigma 4 px), which leaves out the fine detail a
    sharper frame has more of (where small flow errors show) and keeps brightness and colour
    changes, the flicker a viewer sees."""
    import cv2

    plain, warped, coarse = [], [], []
    for t, flow in enumerate(flows):
        a, b = frames[t].astype(np.float32), frames[t + 1]
        plain.append(np.abs(frames[t + 1].astype(np.float32) - a).mean())
        b_on_a, inside = warp(b, flow)
        warped.append(np.abs(b_on_a - a).mean(axis=2)[inside].mean())
        low_a, low_b = (cv2.GaussianBlur(x, (0, 0), 4) for x in (a, b_on_a))
        coarse.append(np.abs(low_b - low_a).mean(axis=2)[inside].mean())
    return float(np.mean(plain)), float(np.mean(warped)), float(np.mean(coarse))


def smooth(frames: list[np.ndarray], back_flows: list[np.ndarray], alpha: float) -> list[np.ndarray]:
    """s_t = (1 - alpha) out_t + alpha warp(s_{t-1}); back_flows[t - 1] maps frame t onto t - 1."""
    out = [frames[0]]
    for t in range(1, len(frames)):
        previous, _ = warp(out[-1], back_flows[t - 1])
        blended = (1 - alpha) * frames[t].astype(np.float32) + alpha * previous
        out.append(np.clip(blended, 0, 255).round().astype(np.uint8))
    return out


def main() -> None:
    import torch

    from deblurgan_hf import DEFAULT_MODEL, DeblurGAN
    from deblurgan_hf.inference import resolve_precision
    from deblurgan_hf.video import deblur_video

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.25, 0.5])
    args = parser.parse_args()
    files = sorted(FRAMES.glob("*.png"))
    if len(files) != 20:
        raise SystemExit(f"{FRAMES}: expected the 20 consecutive real GoPro frames, found {len(files)}")
    net = DeblurGAN.from_pretrained(args.model)
    with tempfile.TemporaryDirectory(prefix="deblurgan-flicker-") as tmp:
        clip, result = Path(tmp) / "blurred.mkv", Path(tmp) / "deblurred.mkv"
        make_lossless_clip(files, clip)
        deblur_video(lambda x: net.deblur(x, precision=args.precision), clip, result, lossless=True)
        inputs, outputs = decode(clip), decode(result)
    flows = [flow_between(inputs[t], inputs[t + 1]) for t in range(len(inputs) - 1)]
    back_flows = [flow_between(inputs[t + 1], inputs[t]) for t in range(len(inputs) - 1)]
    rows = {"input (blurred)": inputs, "output, frame by frame (shipped)": outputs}
    for alpha in args.alphas:
        rows[f"output, flow-warped temporal blend a={alpha:g}"] = smooth(outputs, back_flows, alpha)

    print(f"{len(files)} consecutive real 1280x720 GoPro frames ({FRAMES.name}, one sequence) as a 30 fps clip, "
          f"RGB-lossless in and out; model {Path(args.model).name}, precision {args.precision} "
          f"({resolve_precision(args.precision, net)}), {torch.get_num_threads()} torch threads. Flow: OpenCV "
          "Farneback between consecutive input frames. Differences in 0-255 levels, mean over the 19 pairs "
          "(motion-compensated: frame t+1 warped onto t, pixels whose flow leaves the frame left out); "
          "sharpness: mean squared luma gradient (x 1e4).\n")
    print("| frames | consecutive difference | motion-compensated | motion-compensated, coarse (sigma 4) | sharpness |")
    print("|---|---:|---:|---:|---:|")
    figures = {}
    for name, frames in rows.items():
        figures[name] = (*flicker(frames, flows), sharpness(frames))
        plain, warped, coarse, sharp = figures[name]
        print(f"| {name} | {plain:.2f} | {warped:.2f} | {coarse:.2f} | {sharp * 1e4:.2f} |")
    base = figures["input (blurred)"]
    out = figures["output, frame by frame (shipped)"]
    print(f"\nOutput against input: consecutive difference x{out[0] / base[0]:.2f}, motion-compensated "
          f"x{out[1] / base[1]:.2f}, coarse x{out[2] / base[2]:.2f}, sharpness x{out[3] / base[3]:.2f}.")
    helps = [name for name, (_, warped, _, sharp) in figures.items() if "blend" in name
             and warped < out[1] and sharp >= out[3]]
    print("Temporal blending that lowers the motion-compensated difference without lowering sharpness: "
          f"{', '.join(helps) if helps else 'none of those measured, so none is applied'}.")


if __name__ == "__main__":
    from _results import recorded

    with recorded("video_flicker"):
        main()
