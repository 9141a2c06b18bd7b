"""Does the kernel estimator keep the true kernel? Started from the kernel that blurred a photo, a few
of its latent / kernel alternations at full resolution should leave it where it is; what they lose
is lost by the objective (its settings), not by the coarse-to-fine search.

    python benchmarks/deconvolution_fixed_point.py [--limit 12] [--seeds 1 2] [--bins 31-75]
        [--iterations 3] [--setting NAME=JSON ...] [--results NAME]

On the development set of `benchmarks/deconvolution.py` (BSDS432 and Urban100 photos, seeds 1 and 2,
the uniform variant), each photo is deconvolved by the default stage's final step with:
- `true kernel`: the kernel that blurred it (the ceiling);
- each `--setting`: that kernel after `--iterations` alternations of `estimate_kernel` started from it
  (JSON object of its keyword arguments, such as `threshold` or `kernel_weight`; `{}`: the stage's
  own), in a support 1.3 x the kernel's extent.
Per row: gain, photos made worse, `kernel_agreement` with the true kernel and the estimate's extent
over the true one (under 1: the alternations shortened the path). Writes
docs/results/deconvolution-fixed-point.md (`--results NAME`: NAME.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from deconvolution import (  # benchmarks/deconvolution.py
    add_development_set,
    kernel_bins,
    named_objects,
    true_kernel_result,
)

# `estimate_kernel`'s arguments that shape its objective at full resolution, as the stage's fields
OBJECTIVE = ("threshold", "latent_weight_floor", "kernel_weight")
SETTINGS = ["stage={}", *(f'threshold {v}={{"threshold": {v}}}' for v in (0.05, 0.2)),
            *(f'kernel_weight {v}={{"kernel_weight": {v}}}' for v in (0.5, 8)),
            *(f'latent_weight_floor {v}={{"latent_weight_floor": {v}}}' for v in (1e-4, 3e-4, 3e-3))]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_development_set(parser, limit=12, bins=["31-75"])
    parser.add_argument("--iterations", type=int, default=3, help="alternations from the true kernel (1-30)")
    parser.add_argument("--setting", action="append", default=None, metavar="NAME=JSON",
                        help="estimate_kernel keyword arguments (repeatable; default: " + ", ".join(SETTINGS) + ")")
    parser.add_argument("--results", default="deconvolution-fixed-point", help="writes docs/results/RESULTS.md")
    args = parser.parse_args(argv)
    if not 1 <= args.iterations <= 30:
        parser.error(f"--iterations must be in [1, 30], got {args.iterations}")
    from deblurgan_hf.deconvolution import BlindDeconvolution

    args.setting = named_objects(parser, "--setting", args.setting or SETTINGS)
    for name, setting in args.setting.items():
        unknown = sorted(set(setting) - set(OBJECTIVE))
        if unknown:
            parser.error(f"--setting {name}: unknown field(s) {unknown}; allowed: {list(OBJECTIVE)}")
        try:  # the stage's fields of the same names, with its limits
            BlindDeconvolution.from_config(setting)
        except ValueError as err:
            parser.error(f"--setting {name}: {err}")
    args.bins = kernel_bins(parser, args.bins)
    return args


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import torch

    from deblurgan_hf.data import image_to_tensor
    from deblurgan_hf.deconvolution import BlindDeconvolution, _extent, _odd, estimate_kernel, kernel_agreement
    from deblurgan_hf.evaluation import PairSource
    from deblurgan_hf.imaging import to_uint8
    from deblurgan_hf.metrics import psnr_images

    args = parse_args(argv)
    stage = BlindDeconvolution()
    own = {name: getattr(stage, name) for name in OBJECTIVE}
    print(f"Sources: {', '.join(Path(s.partition(':')[2]).name for s in args.sources)}; {args.limit} photos per source, "
          f"seed and bin; seeds {', '.join(map(str, args.seeds))}; uniform variant; {args.iterations} alternations from "
          "the true kernel. Gain: mean PSNR over the blurred input (dB); worse: photos below their input; agreement: "
          "`kernel_agreement` with the true kernel; extent: the estimate's over the true one's (means over photos).\n")
    print("| kernel (px) | kernel deconvolved with | gain (dB) | worse | agreement | extent |\n|---|---|---:|---:|---:|---:|")
    for lo, hi in args.bins:
        pairs = [p for src in args.sources for seed in args.seeds
                 for p in PairSource(src, limit=args.limit, blur="shake", seed=seed, shake_size=(lo, hi))]
        inputs = psnr_images([p.blurred for p in pairs], [p.sharp for p in pairs])
        rows: dict[str, tuple[list, list, list]] = {"true kernel": ([], [1.0] * len(pairs), [1.0] * len(pairs))}
        for name in args.setting:
            rows[name] = ([], [], [])
        for p in pairs:
            x = image_to_tensor(p.blurred)
            rows["true kernel"][0].append(to_uint8(true_kernel_result(stage, x, p.kernel)).permute(1, 2, 0).numpy())
            true = torch.from_numpy(p.kernel).float()
            gray = x.mean(0)
            support = min(_odd(_extent(true) * 1.3), _odd(min(gray.shape) / 3))
            cut = max(true.shape[-1] - support, 0) // 2  # the true kernel's empty margin beyond the support
            start = true[cut : true.shape[-1] - cut, cut : true.shape[-1] - cut]
            for name, setting in args.setting.items():
                kernel = estimate_kernel(gray, support, iterations=args.iterations, initial=start / start.sum(),
                                         **{**own, **setting})
                outs, agreements, extents = rows[name]
                outs.append(to_uint8(true_kernel_result(stage, x, kernel.numpy())).permute(1, 2, 0).numpy())
                agreements.append(kernel_agreement(kernel, true))
                extents.append(_extent(kernel) / _extent(true))
        for name, (outs, agreements, extents) in rows.items():
            psnr = psnr_images(outs, [p.sharp for p in pairs])
            worse = sum(a < b - 1e-9 for a, b in zip(psnr, inputs))
            label = name if name == "true kernel" else f"{name} (`{json.dumps(args.setting[name])}`)"
            print(f"| {lo}-{hi} | {label} | {np.mean(psnr) - np.mean(inputs):+.2f} | {worse} of {len(pairs)} "
                  f"| {np.mean(agreements):.2f} | {np.mean(extents):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    from _results import recorded

    with recorded(parse_args().results):
        status = main()
    raise SystemExit(status)
