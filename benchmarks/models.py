"""Speed and memory of every generator (default config) on one image: prints a Markdown table.

    python benchmarks/models.py [--generators nafnet,resnet] [--repeats 5] [--size 1280x720] [--threads 2]

Per generator: parameters, GMACs and GFLOPs (torch.utils.flop_counter.FlopCounterMode, which
counts 2 FLOPs per multiply-add of every conv and matmul), median latency in fp32 and in bf16 autocast + channels_last
(torch.inference_mode, after one warm-up run), and the peak RSS of each. Every measurement runs in its own
subprocess so memory peaks do not mix.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FRAMES = REPO.parent / "shared" / "data" / "gopro_blur_only"
MODES = ("fp32", "bf16_cl")


def _input(width: int, height: int):
    """A real GoPro frame resized to the size asked (latency does not depend on content, but keep it real)."""
    import numpy as np
    import torch
    from PIL import Image

    files = sorted(FRAMES.glob("*.png"))
    if not files:
        raise FileNotFoundError(f"no frames in {FRAMES} (needed as benchmark input)")
    img = Image.open(files[0]).convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255


def _worker(task: str, name: str, width: int, height: int, repeats: int, threads: int) -> dict:
    """Run one measurement in this (fresh) process and return its figures."""
    import resource

    import torch

    from deblurgan_hf.models import build_generator

    base_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # torch and package imports
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_generator(name).eval()
    x = _input(width, height)
    if task == "flops":
        from torch.utils.flop_counter import FlopCounterMode

        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(x)
        return {"params": sum(p.numel() for p in model.parameters()), "gmacs": counter.get_total_flops() / 2e9}
    bf16 = task == "bf16_cl"
    if bf16:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for i in range(repeats + 1):  # the first run is warm-up (oneDNN primitive creation)
            start = time.perf_counter()
            model(x)
            if i:
                times.append(time.perf_counter() - start)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"median_s": statistics.median(times), "peak_rss_mb": peak_rss_mb, "base_rss_mb": base_rss_mb}


def _run(task: str, name: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--worker", task, "--generators", name, "--size", args.size,
           "--repeats", str(args.repeats), "--threads", str(args.threads)]  # fmt: skip
    # Same allocator settings as the Makefile: otherwise glibc mmaps and munmaps every tensor
    # above 32 MB, and page faults take a large share of the time of a 720p forward pass.
    env = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000", **os.environ}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} {task} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    from deblurgan_hf.models import GENERATORS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generators", default=",".join(GENERATORS), help="comma-separated names (default: all)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per configuration after one warm-up")
    p.add_argument("--size", default="1280x720", help="input WIDTHxHEIGHT")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--worker", choices=("flops", *MODES), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        p.error(f"--size must be WIDTHxHEIGHT, e.g. 1280x720, got {args.size!r}")
    names = [n.strip() for n in args.generators.split(",") if n.strip()]
    unknown = [n for n in names if n not in GENERATORS]
    if unknown:
        p.error(f"unknown generator(s) {unknown}; allowed: {sorted(GENERATORS)}")
    if args.repeats < 1:
        p.error("--repeats must be >= 1")

    if args.worker:
        print(json.dumps(_worker(args.worker, names[0], width, height, args.repeats, args.threads)))
        return

    print(f"{width}x{height}, {args.threads} threads, median of {args.repeats} runs after 1 warm-up\n")
    print("| generator | params (M) | GMACs | GFLOPs | fp32 (s) | bf16 + channels_last (s) | peak RSS fp32 (MB) | peak RSS bf16 (MB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    base = 0.0
    for name in names:
        f = _run("flops", name, args)
        r = {mode: _run(mode, name, args) for mode in MODES}
        base = max(base, *(r[m]["base_rss_mb"] for m in MODES))
        print(
            f"| {name} | {f['params'] / 1e6:.2f} | {f['gmacs']:.1f} | {2 * f['gmacs']:.1f} | {r['fp32']['median_s']:.2f} | "
            f"{r['bf16_cl']['median_s']:.2f} | {r['fp32']['peak_rss_mb']:.0f} | {r['bf16_cl']['peak_rss_mb']:.0f} |",
            flush=True,
        )
    print(f"\nPeak RSS includes the process after importing torch and the package: about {base:.0f} MB.")


if __name__ == "__main__":
    from _results import recorded

    with recorded("models", skip_flags=("--worker", "-h", "--help")):
        main()
