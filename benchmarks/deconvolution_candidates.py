"""Where a long kernel's result is lost: in the choice among the blind stage's estimates, or in the
estimates themselves?

    python benchmarks/deconvolution_candidates.py [--limit 12] [--seeds 1 2] [--bins 31-75]
        [--variants uniform] [--stage JSON] [--transforms power:1.5 gaussian:0.7 ...] [--results NAME]

On the development set of `benchmarks/deconvolution.py` (BSDS432 and Urban100 photos, seeds 1 and 2)
each photo's kernel is estimated once by the stage, then scored as:
- `stage`: the stage's result (`restore`), what `deblur` gets;
- `best single estimate`: each of the estimates the stage weighed for a long kernel (the one at its
  smaller copy and the two at the neighbouring scales) deconvolved alone, the best kept by the sharp
  photo, an estimate the stage's checks decline counting as the input: the most any choice among them
  can reach (an oracle; a photo the stage gave one estimate keeps it);
- `TRANSFORM`: the stage's result with every estimate transformed first: `power:P` raises it to P
  (thinner paths), `gaussian:S` blurs it (sigma S px, a wider hedge), `threshold:T` drops pixels under
  T x its peak; each renormalised and re-centred;
- `five scales`: the stage's choice among five estimates, two more at copies `agreement_scale`^2
  smaller and larger;
- `true kernel`: the uniform variant deconvolved with the kernel that blurred it (the ceiling).
Where `best single estimate` is near `stage`, a better choice cannot gain; only better estimates can.
Writes docs/results/deconvolution-candidates.md (`--results NAME`: NAME.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from deconvolution import add_development_set, kernel_bins, true_kernel_result  # benchmarks/deconvolution.py


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_development_set(parser, limit=12, bins=["31-75"])
    parser.add_argument("--variants", nargs="+", default=["uniform"], choices=["uniform", "rotation", "lowlight"])
    parser.add_argument("--stage", default="{}", help="the BlindDeconvolution config (JSON object)")
    parser.add_argument("--transforms", nargs="*",
                        default=["power:1.5", "power:2", "gaussian:0.7", "gaussian:1.5", "threshold:0.2"])
    parser.add_argument("--results", default="deconvolution-candidates", help="writes docs/results/RESULTS.md")
    args = parser.parse_args(argv)
    try:
        args.stage = json.loads(args.stage)
    except json.JSONDecodeError as err:
        parser.error(f"--stage must be a JSON object ({err})")
    args.bins = kernel_bins(parser, args.bins)
    for item in args.transforms:
        kind, _, value = item.partition(":")
        try:
            number = float(value)
        except ValueError:
            kind = ""
        if kind not in ("power", "gaussian", "threshold") or not (0 < number < (1 if kind == "threshold" else 100)):
            parser.error(f"--transforms: {item!r} is not power:P or gaussian:S (0 < P, S < 100) or threshold:T (0 < T < 1)")
    from deblurgan_hf.deconvolution import BlindDeconvolution

    try:
        BlindDeconvolution.from_config(args.stage)
    except ValueError as err:
        parser.error(f"--stage: {err}")
    return args


def transformed(kernel, transform: str):
    """`kernel` (a torch tensor) by `transform` (see the module docstring), sum 1, centred."""
    import numpy as np
    import torch
    from scipy import ndimage

    from deblurgan_hf.deconvolution import _centred

    kind, value = transform.split(":")
    value = float(value)
    k = kernel.clamp_min(0)
    if kind == "power":
        k = k**value
    elif kind == "gaussian":  # padded so the blur does not fall off the support
        k = torch.from_numpy(ndimage.gaussian_filter(np.pad(k.numpy(), 4), value)).to(k.dtype)
    else:
        k = torch.where(k < k.max() * value, torch.zeros_like(k), k)
    return _centred(k / k.sum())


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from deblurgan_hf.data import image_to_tensor
    from deblurgan_hf.deconvolution import BlindDeconvolution, KernelEstimate, kernel_agreement
    from deblurgan_hf.evaluation import PairSource
    from deblurgan_hf.imaging import to_uint8
    from deblurgan_hf.metrics import psnr_images

    args = parse_args(argv)
    stage = BlindDeconvolution.from_config(args.stage)
    print(f"Stage `{json.dumps(args.stage)}`; sources {', '.join(Path(s.partition(':')[2]).name for s in args.sources)}, "
          f"{args.limit} photos per source, seed and bin; seeds {', '.join(map(str, args.seeds))}. Gain: mean PSNR over "
          "the blurred input (dB); worse: photos below their input; declined: photos left as they were.\n")
    print("| kernel (px) | variant | method | gain (dB) | worse | declined |\n|---|---|---|---:|---:|---:|")
    for lo, hi in args.bins:
        for variant in args.variants:
            pairs = [p for src in args.sources for seed in args.seeds
                     for p in PairSource(src, limit=args.limit, blur="shake", seed=seed, shake_size=(lo, hi),
                                         shake_variant=variant)]
            methods = ["true kernel"] if variant == "uniform" else []
            methods += ["stage", "best single estimate", *args.transforms, "five scales"]
            outs: dict[str, list] = {m: [] for m in methods}
            declined = dict.fromkeys(methods, 0)

            def keep(method, pair, out, outs=outs, declined=declined):
                declined[method] += out is None
                outs[method].append(pair.blurred if out is None else to_uint8(out).permute(1, 2, 0).numpy())

            for p in pairs:
                x = image_to_tensor(p.blurred)
                if variant == "uniform":
                    keep("true kernel", p, true_kernel_result(stage, x, p.kernel))
                estimate = stage.estimate(x)
                chosen = stage.restore(x, estimate)[0]
                keep("stage", p, chosen)
                singles = [stage.restore(x, KernelEstimate(k, estimate.scale, None))[0]
                           for k in (estimate.kernel, *estimate.neighbours)]
                scores = [psnr_images([p.blurred if o is None else to_uint8(o).permute(1, 2, 0).numpy()], [p.sharp])[0]
                          for o in singles]
                keep("best single estimate", p, singles[int(np.argmax(scores))])
                for t in args.transforms:
                    keep(t, p, stage.restore(x, KernelEstimate(transformed(estimate.kernel, t), estimate.scale, estimate.agreement,
                                                               tuple(transformed(k, t) for k in estimate.neighbours)))[0])
                if estimate.neighbours:
                    small, clipped = estimate.scale * stage.long_kernel_scale, stage._clipped(x)
                    extra = tuple(stage._estimate_at(x, s, clipped, 0)
                                  for s in (small / stage.agreement_scale**2, min(small * stage.agreement_scale**2, 1.0)))
                    neighbours = (*estimate.neighbours, *extra)
                    five = KernelEstimate(estimate.kernel, estimate.scale,
                                          min(kernel_agreement(estimate.kernel, k) for k in neighbours), neighbours)
                    keep("five scales", p, stage.restore(x, five)[0])
                else:  # a short kernel: one estimate, whatever the scales
                    keep("five scales", p, chosen)
            inputs = psnr_images([p.blurred for p in pairs], [p.sharp for p in pairs])
            for method in methods:
                psnr = psnr_images(outs[method], [p.sharp for p in pairs])
                worse = sum(a < b - 1e-9 for a, b in zip(psnr, inputs))
                print(f"| {lo}-{hi} | {variant} | {method} | {np.mean(psnr) - np.mean(inputs):+.2f} | {worse} of {len(pairs)} "
                      f"| {declined[method]} |", flush=True)
    return 0


if __name__ == "__main__":
    from _results import recorded

    with recorded(parse_args().results):  # a bad argument stops in parse_args, before the file is touched
        status = main()
    raise SystemExit(status)
