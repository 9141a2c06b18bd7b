"""End-to-end `model.deblur()` speed, memory and utilization: a 1280x720 photo, and a 12-megapixel photo in tiles.

Utilization = the model's FLOPs at that size (torch.utils.flop_counter.FlopCounterMode: 2 per
multiply-add of every conv and matmul) / the median time of `deblur()` / the fp32 GEMM FLOP/s of
this machine (a 2048x2048 float32 matmul on the same threads), measured in the same process right
before and after the timed runs. Machines differ, so the ratio is the figure, not the seconds.
Each case runs in its own process so peak RSS figures do not mix. Prints a Markdown table and
writes it to docs/results/inference.md (`--results NAME`: NAME.md; see _results.py).

    python benchmarks/inference.py [--model PATH_OR_ID] [--repeats 10] [--precisions auto fp32 bf16]
        [--compile-precisions auto fp32] [--tiles auto] [--big-precisions auto fp32] [--big-tile 1024]

`--compile-precisions` adds `deblur(compile=True)` rows at 1280x720 (first call = compile time, or
loading from deblurgan_hf's on-disk compile cache when it is warm; `TORCHINDUCTOR_CACHE_DIR=$(mktemp -d)`
for a cold compile); give it no value to skip them.
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
GEMM_SIZE = 2048


def gemm_flops(n: int = GEMM_SIZE, repeats: int = 10) -> list[float]:
    """FLOP/s of `repeats` n x n float32 matmuls (after warm-up): the machine's practical fp32 peak."""
    import torch

    a, b = torch.rand(n, n), torch.rand(n, n)
    for _ in range(3):
        torch.mm(a, b)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        rates.append(2 * n**3 / (time.perf_counter() - start))
    return rates


def model_flops(net, width: int, height: int) -> float:
    """FLOPs of one whole-image forward pass of `net` (a DeblurGAN) at width x height, counted on fake
    tensors (shapes only, no compute or memory: a whole 12-megapixel pass would need gigabytes)."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    net.eval()
    with FakeTensorMode(allow_non_fake_inputs=True), FlopCounterMode(display=False) as counter:
        net(torch.empty(1, 3, height, width))
    return float(counter.get_total_flops())


def run_case(model: str, width: int, height: int, precision: str, tile: int | None, repeats: int,
             compile: bool = False) -> dict:
    import torch
    from PIL import Image

    from deblurgan_hf import DeblurGAN
    from deblurgan_hf.inference import resolve_precision

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1)))
    frame = sorted((DATA / "gopro_blur_only").glob("*.png"))[0]
    image = Image.open(frame).convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
    net = DeblurGAN.from_pretrained(model)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gemm = gemm_flops()
    start = time.perf_counter()  # warm-up at the full size: oneDNN primitives, or the compile
    net.deblur(image, tile=tile, precision=precision, compile=compile)
    first_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = net.deblur(image, tile=tile, precision=precision, compile=compile)
        times.append(time.perf_counter() - start)
    gemm += gemm_flops()
    assert out.size == image.size
    return {
        "size": f"{width}x{height}",
        "precision": precision,
        "resolved": resolve_precision(precision, net),
        "compile": compile,
        "tile": tile,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "first_s": first_s,
        "gemm_gflops": statistics.median(gemm) / 1e9,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": rss_before,
        "threads": torch.get_num_threads(),
        "mp_per_s": width * height / 1e6 / statistics.median(times),
    }


def _tile(value: str) -> int | None:
    return None if value == "auto" else int(value)


def parse_args() -> argparse.Namespace:
    from deblurgan_hf import DEFAULT_MODEL

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--precisions", nargs="+", default=["auto", "fp32", "bf16"], help="1280x720 eager rows")
    parser.add_argument("--compile-precisions", nargs="*", default=["auto", "fp32"], help="1280x720 compile=True rows")
    parser.add_argument("--tiles", nargs="+", type=_tile, default=[None], help="tile settings at 1280x720 (auto or N)")
    parser.add_argument("--big-precisions", nargs="*", default=["auto", "fp32"], help="4000x3000 rows")
    parser.add_argument("--big-repeats", type=int, default=1)
    parser.add_argument("--big-tile", type=int, default=None, help="tile for the 12 MP case (default: deblur's auto)")
    parser.add_argument("--results", default="inference", help="writes docs/results/RESULTS.md")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    return parser.parse_args()


def main(args: argparse.Namespace) -> None:
    if args.case:
        print(json.dumps(run_case(args.model, **json.loads(args.case))))
        return
    small = dict(width=1280, height=720, repeats=args.repeats)
    cases = [dict(small, precision=p, tile=t) for t in args.tiles for p in args.precisions]
    cases += [dict(small, precision=p, tile=t, compile=True) for t in args.tiles for p in args.compile_precisions]
    cases += [dict(width=4000, height=3000, precision=p, tile=args.big_tile, repeats=args.big_repeats)
              for p in args.big_precisions]
    from deblurgan_hf import DeblurGAN

    net = DeblurGAN.from_pretrained(args.model)  # once here: each case loads its own in its process
    flops = {size: model_flops(net, *size) for size in dict.fromkeys((c["width"], c["height"]) for c in cases)}
    env = {**os.environ, "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}
    print(f"model: {args.model}; FLOPs per whole image (FlopCounterMode): "
          + ", ".join(f"{w}x{h} {f / 1e9:.2f} G" for (w, h), f in flops.items()) + "\n")
    print("| image | precision | compile | tile | median s | min s | first call s | MP/s | model GFLOP/s "
          "| fp32 GEMM GFLOP/s | utilization | peak RSS MB | threads |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for case in cases:
        proc = subprocess.run(
            [sys.executable, __file__, "--model", args.model, "--case", json.dumps(case)],
            capture_output=True, text=True, env=env,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"case {case} failed:\n{proc.stderr[-3000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        w, h = (int(v) for v in r["size"].split("x"))
        r["model_gflops"] = flops[(w, h)] / r["median_s"] / 1e9
        r["utilization"] = r["model_gflops"] / r["gemm_gflops"]
        rows.append(r)
        tile = r["tile"] if r["tile"] is not None else "auto"
        precision = r["precision"] if r["precision"] == r["resolved"] else f"{r['precision']} ({r['resolved']})"
        print(f"| {r['size']} | {precision} | {'yes' if r['compile'] else 'no'} | {tile} | {r['median_s']:.3f} | "
              f"{r['min_s']:.3f} | {r['first_s']:.2f} | {r['mp_per_s']:.2f} | {r['model_gflops']:.1f} | "
              f"{r['gemm_gflops']:.1f} | {100 * r['utilization']:.0f}% | {r['peak_rss_mb']:.0f} | {r['threads']} |",
              flush=True)
    if net.deconvolution is not None:
        print("\nThis model has a deconvolution stage, which `deblur()` runs after the generator: the times and memory "
              "include it, the FLOPs (and so the utilization) count the generator only, not the stage's FFTs.")
    print(f"\nfp32 GEMM: {GEMM_SIZE}x{GEMM_SIZE} float32 matmul, median of 10 before and 10 after each case's "
          "timed runs, in the case's own process. 'first call' is the warm-up at full size (for compile=yes: "
          "the compile, or loading it from the on-disk cache).")
    for r in rows:
        if r["size"] == "1280x720" and r["precision"] == "auto" and r["tile"] is None:
            how = "deblur(image, compile=True)" if r["compile"] else "deblur(image)  (the default call)"
            print(f"\nUtilization, {how} at 1280x720 (auto = {r['resolved']}): {100 * r['utilization']:.0f}% of "
                  f"this machine's fp32 GEMM FLOP/s ({r['model_gflops']:.1f} of {r['gemm_gflops']:.1f} GFLOP/s)")


if __name__ == "__main__":
    from _results import recorded

    arguments = parse_args()
    with recorded(arguments.results, skip_flags=("--case", "-h", "--help")):
        main(arguments)
