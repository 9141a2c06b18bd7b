"""End-to-end `model.deblur()` speed and memory: a 1280x720 photo, and a 12-megapixel photo in tiles.

Each case runs in its own process so peak RSS figures do not mix. Prints a markdown table.

    python benchmarks/inference.py [--model PATH_OR_ID] [--repeats 10] [--big-tile 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def run_case(model: str, width: int, height: int, precision: str, tile: int | None, repeats: int) -> dict:
    import torch
    from PIL import Image

    from deblurgan_hf import DeblurGAN

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1)))
    frame = sorted((DATA / "gopro_blur_only").glob("*.png"))[0]
    image = Image.open(frame).convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
    net = DeblurGAN.from_pretrained(model)
    net.deblur(image.crop((0, 0, 256, 256)), precision=precision)  # warm-up (oneDNN kernels, channels_last)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = net.deblur(image, tile=tile, precision=precision)
        times.append(time.perf_counter() - start)
    assert out.size == image.size
    return {
        "size": f"{width}x{height}",
        "precision": precision,
        "tile": tile,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": rss_before,
        "threads": torch.get_num_threads(),
        "mp_per_s": width * height / 1e6 / statistics.median(times),
    }


def main() -> None:
    from deblurgan_hf import DEFAULT_MODEL

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--big-repeats", type=int, default=1)
    parser.add_argument("--big-tile", type=int, default=None, help="tile for the 12 MP case (default: deblur's auto)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.model, **json.loads(args.case))))
        return
    cases = [dict(width=1280, height=720, precision=p, tile=None, repeats=args.repeats) for p in args.precisions]
    cases += [dict(width=4000, height=3000, precision=p, tile=args.big_tile, repeats=args.big_repeats) for p in args.precisions]
    env = {**os.environ, "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}
    print(f"model: {args.model}\n")
    print("| image | precision | tile | median s | min s | MP/s | peak RSS MB | threads |")
    print("|---|---|---|---|---|---|---|---|")
    for case in cases:
        proc = subprocess.run(
            [sys.executable, __file__, "--model", args.model, "--case", json.dumps(case)],
            capture_output=True, text=True, env=env, check=True,
        )
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        tile = r["tile"] if r["tile"] is not None else "auto"
        print(f"| {r['size']} | {r['precision']} | {tile} | {r['median_s']:.3f} | {r['min_s']:.3f} | "
              f"{r['mp_per_s']:.2f} | {r['peak_rss_mb']:.0f} | {r['threads']} |", flush=True)


if __name__ == "__main__":
    from _results import recorded

    with recorded("inference", skip_flags=("--case", "-h", "--help")):
        main()
