"""Peak memory of `deblurgan deblur clip.mp4 -o out.mp4` for clips of 20 to 200 frames, and by batch
size: streaming should make it independent of the clip's length.

Clips: the 20 real 1280x720 GoPro frames (../shared/data/gopro_blur_only), repeated to the length
wanted, H.264 at 30 fps with an AAC tone. Each run is its own process; its peak resident memory
is the kernel's (`os.wait4` rusage, ru_maxrss), and RSS is also sampled while it runs. One image through `deblurgan deblur frame.png -o DIR`
is the yardstick (what an image request costs).

    python benchmarks/video_memory.py [--lengths 20 60 200] [--batch 2] [--batches 1 4]

Prints Markdown, written to docs/results/video_memory.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FRAMES = REPO.parent / "shared" / "data" / "gopro_blur_only"
DEBLURGAN = str(Path(sys.executable).with_name("deblurgan"))


def make_clip(path: Path, frames: int, fps: int = 30, sample_rate: int = 48000) -> None:
    import av
    from PIL import Image

    files = sorted(FRAMES.glob("*.png"))
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps, options={"crf": "18"})
        video.width, video.height, video.pix_fmt = 1280, 720, "yuv420p"
        sound = out.add_stream("aac", rate=sample_rate, layout="mono")
        for i in range(frames):
            with Image.open(files[i % len(files)]) as img:
                out.mux(video.encode(av.VideoFrame.from_ndarray(np.asarray(img.convert("RGB")), format="rgb24")))
        out.mux(video.encode(None))
        samples = sample_rate * frames // fps
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / sample_rate)).astype(np.float32)
        for start in range(0, samples, 1024):
            frame = av.AudioFrame.from_ndarray(tone[None, start:start + 1024], format="flt", layout="mono")
            frame.sample_rate, frame.pts = sample_rate, start
            out.mux(sound.encode(frame))
        out.mux(sound.encode(None))


def measure(args: list[str]) -> tuple[float, float, float, float]:
    """`deblurgan ARGS` as its own process: (peak RSS, median RSS over the first and over the
    second half of its run, in MiB; wall seconds). The halves are sampled every 0.2 s: a clip
    that is streamed holds about the same in both, one whose memory grows with length does not."""
    import psutil

    start = time.perf_counter()
    process = subprocess.Popen([DEBLURGAN, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"})
    watched, samples = psutil.Process(process.pid), []
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        try:
            samples.append(watched.memory_info().rss / 2**20)
        except psutil.NoSuchProcess:  # exited between the two calls: wait4 reaps it next round
            pass
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"deblurgan {' '.join(args)} failed (exit {os.waitstatus_to_exitcode(status)})")
    half = len(samples) // 2
    return (usage.ru_maxrss / 1024, float(np.median(samples[:half])), float(np.median(samples[half:])),
            seconds)  # ru_maxrss: Linux reports kilobytes


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[20, 60, 200], help="clip lengths in frames")
    parser.add_argument("--batch", type=int, default=2, help="--batch for the runs over lengths (the app's)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4], help="other --batch values, shortest clip")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="deblurgan-video-memory-") as tmp:
        tmp = Path(tmp)
        image = sorted(FRAMES.glob("*.png"))[0]
        rows.append(("one 1280x720 image (PNG into a folder)", 1, "-",
                     *measure(["deblur", str(image), "-o", str(tmp / "img")])))
        runs = [(n, args.batch) for n in args.lengths] + [(min(args.lengths), b) for b in args.batches]
        for frames, batch in runs:
            clip = tmp / f"clip{frames}.mp4"
            if not clip.exists():
                make_clip(clip, frames)
            figures = measure(["deblur", str(clip), "-o", str(tmp / f"out{frames}-{batch}.mp4"), "--batch", str(batch)])
            rows.append((f"clip, {frames / 30:.2f} s", frames, batch, *figures))
    print(f"`deblurgan deblur` on clips of the real 1280x720 GoPro frames (repeated; H.264 30 fps, AAC sound), "
          f"the bundled model, precision auto, {torch.get_num_threads()} torch threads; peak RSS of each process "
          "(ru_maxrss), and the median of RSS sampled every 0.2 s over the first and the second half of the run "
          "(model loading included in the first).\n")
    print("| input | frames | --batch | peak RSS (MiB) | median RSS, 1st half | median RSS, 2nd half | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, frames, batch, peak, first, second, seconds in rows:
        print(f"| {name} | {frames} | {batch} | {peak:.0f} | {first:.0f} | {second:.0f} | {seconds:.1f} |")
    by_length = rows[1:1 + len(args.lengths)]
    print(f"\n{by_length[-1][1] / by_length[0][1]:.0f}x the frames at --batch {args.batch}: peak RSS "
          f"x{by_length[-1][3] / by_length[0][3]:.2f}, second-half median x{by_length[-1][5] / by_length[0][5]:.2f}.")


if __name__ == "__main__":
    from _results import recorded

    with recorded("video_memory"):
        main()
