"""How much the blind stage's result depends on the machine: the same photos, through the same code,
in two processes that differ only in float rounding, and how far their kernels and gains move apart.

    python benchmarks/deconvolution_stability.py [--limit 3] [--bins 7-15 15-31 31-75] [--stage NAME=JSON ...]

Run A uses this CPU's own SIMD kernels on all its threads; run B torch's and MKL's AVX2 kernels on one
thread (on a CPU without AVX-512 only the thread count differs). Both are `benchmarks/deconvolution.py`
on its development set (uniform variant), writing each photo's gain and kernel with `--dump`. An
estimator that is stable moves a photo's gain by hundredths of a dB; a chaotic one turns rounding into
another kernel. Writes docs/results/deconvolution-stability.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SCRIPT = Path(__file__).with_name("deconvolution.py")
RUNS = {"A": ({}, []),
        "B": ({"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}, ["--threads", "1"])}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=3, help="photos per source, seed and bin")
    parser.add_argument("--bins", nargs="+", default=["7-15", "15-31", "31-75"])
    parser.add_argument("--stage", action="append", default=None, metavar="NAME=JSON",
                        help="BlindDeconvolution config to measure (repeatable; default: default={})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    args = parse_args(argv)
    photos = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run, (env, extra) in RUNS.items():
            dump = Path(tmp) / f"{run}.json"
            command = [sys.executable, str(SCRIPT), "--variants", "uniform", "--limit", str(args.limit),
                       "--bins", *args.bins, "--dump", str(dump), *extra]
            for stage in args.stage or ["default={}"]:
                command += ["--stage", stage]
            # RESULTS_DIR= : the runs write no results file of their own
            subprocess.run(command, check=True, env={**os.environ, **env, "RESULTS_DIR": ""}, stdout=subprocess.DEVNULL)
            photos[run] = json.loads(dump.read_text())
    a, b = photos["A"], photos["B"]
    if [(p["bin"], p["method"], p["photo"]) for p in a] != [(p["bin"], p["method"], p["photo"]) for p in b]:
        raise SystemExit("the two runs scored different photos")
    print(f"Development set of benchmarks/deconvolution.py (uniform variant, {args.limit} photos per source, seed and bin). "
          "A: this CPU's kernels, all threads; B: AVX2 kernels, one thread. Gain: mean PSNR over the input (dB); "
          "|A - B|: a photo's gain in A minus in B; kernel cosine: between the two runs' estimates (1: the same).\n")
    print("| kernel (px) | method | gain A | gain B | mean abs(A - B) (dB) | max abs(A - B) (dB) "
          "| median kernel cosine | kernels below 0.95 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    keys = dict.fromkeys((p["bin"], p["method"]) for p in a if p["method"] != "true kernel")
    for bin_, method in keys:
        pa = [p for p in a if (p["bin"], p["method"]) == (bin_, method)]
        pb = [p for p in b if (p["bin"], p["method"]) == (bin_, method)]
        ga, gb = np.array([p["gain"] for p in pa]), np.array([p["gain"] for p in pb])
        cosines = []
        for x, y in zip(pa, pb):
            if x["kernel"] is None or y["kernel"] is None:  # declined before an estimate
                continue
            kx, ky = np.asarray(x["kernel"]), np.asarray(y["kernel"])
            same_size = kx.shape == ky.shape
            cosines.append(float((kx * ky).sum() / (np.linalg.norm(kx) * np.linalg.norm(ky))) if same_size else 0.0)
        diff = np.abs(ga - gb)
        below = sum(c < 0.95 for c in cosines)
        print(f"| {bin_} | {method} | {ga.mean():+.2f} | {gb.mean():+.2f} | {diff.mean():.2f} | {diff.max():.2f} "
              f"| {np.median(cosines) if cosines else float('nan'):.3f} | {below} of {len(cosines)} |", flush=True)
    print("\nStages: " + "; ".join(f"`{s}`" for s in args.stage or ["default={}"]))
    return 0


if __name__ == "__main__":
    from _results import recorded

    with recorded("deconvolution-stability"):
        status = main()
    raise SystemExit(status)
