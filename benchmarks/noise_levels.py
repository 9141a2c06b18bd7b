"""How noisy and how clipped the camera-shake benchmark's photos are, per source and variant: the
`noise_level` the deconvolution stage reads (it treats clipped lights only from `clipped_noise_from`
up) and the share of pixels `clipped_regions` finds.

    python benchmarks/noise_levels.py [--limit 12]

Writes docs/results/deconvolution-clipped-noise.md. No model runs: this is the blurred inputs alone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sharp"
# (source, seeds): the card's held-out photos with its seed 0; the development sets with theirs
SOURCES = (("kodak24", [0]), ("cbsd68", [0]), ("bsds432", [1, 2]), ("urban100", [1, 2]), ("night_and_indoor", [1]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=12, help="photos per source, seed and bin")
    parser.add_argument("--bins", nargs="+", default=["7-15", "31-75"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from deblurgan_hf.data import image_to_tensor
    from deblurgan_hf.deconvolution import BlindDeconvolution, clipped_regions, noise_level
    from deblurgan_hf.evaluation import PairSource

    args = parse_args(argv)
    stage = BlindDeconvolution()
    bins = [tuple(int(v) for v in b.split("-")) for b in args.bins]
    print(f"{args.limit} photos per source, seed and bin; bins {', '.join(args.bins)} px. Noise: `noise_level` of the "
          f"blurred photo's channel mean; the stage treats clipped lights from {stage.clipped_noise_from} up. Clipped: share "
          f"of pixels in `clipped_regions` at {stage.clipped_level}.\n")
    print("| source | seeds | variant | noise min | noise median | noise max | photos treated | clipped median | clipped max |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for source, seeds in SOURCES:
        for variant in ("uniform", "rotation", "lowlight"):
            noise, clipped = [], []
            for lo, hi in bins:
                for seed in seeds:
                    for pair in PairSource(f"sharp:{DATA / source}", limit=args.limit, blur="shake", seed=seed,
                                           shake_size=(lo, hi), shake_variant=variant):
                        x = image_to_tensor(pair.blurred)
                        noise.append(noise_level(x.mean(0)))
                        clipped.append(float(clipped_regions(x, stage.clipped_level).float().mean()))
            noise, clipped = np.array(noise), np.array(clipped)
            treated = int((noise >= stage.clipped_noise_from).sum())
            print(f"| {source} | {', '.join(map(str, seeds))} | {variant} | {noise.min():.4f} | {np.median(noise):.4f} | "
                  f"{noise.max():.4f} | {treated} of {len(noise)} | {np.median(clipped):.2%} | {clipped.max():.2%} |", flush=True)
    return 0


if __name__ == "__main__":
    from _results import recorded

    with recorded("deconvolution-clipped-noise"):
        status = main()
    raise SystemExit(status)
