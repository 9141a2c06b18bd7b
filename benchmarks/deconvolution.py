"""The blind-deconvolution stage alone, on the camera-shake benchmark's blur: how far is it from the
deconvolution given the true kernel, and which of its settings (levers) gain?

    python benchmarks/deconvolution.py [--sources sharp:DIR ...] [--limit 4] [--seeds 1 2]
        [--stage NAME=JSON ...] [--bins 7-15 15-31 31-75] [--variants uniform rotation lowlight]
        [--max-sizes 0 512]

Pairs are made as `evaluation.camera_shake_benchmark` makes them (valid convolution, centred
kernel, 1% noise; rotation and lowlight variants), by default on BSDS432 and Urban100 photos with
seeds 1 and 2: the development set, apart from the Kodak24 / CBSD68 photos and seed 0 that the
model card reports.
Each `--stage` is a `BlindDeconvolution` config (JSON object; `{}` = the defaults) scored as the
stage runs in `deblur`, without the generator: where it declines, the input is its output. With
`--generator MODEL [MODEL ...]`, each model's generator is scored alone and with each stage as `deblur`
combines them: per photo the output that changed the input more, the generator's where the stage declines.
`true kernel` rows deconvolve the uniform variant with the kernel that blurred it, and the lowlight
variant with the camera's kernel (its blur is that path in linear light, lights clipped), by the
first stage's prior rule and clipped-light setting (and one row for each other such setting among
the stages): the ceiling of a perfect estimate. Writes docs/results/deconvolution.md (`--results NAME`: NAME.md).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEVELOPMENT_SOURCES = [f"sharp:{DATA / 'sharp' / 'bsds432'}", f"sharp:{DATA / 'sharp' / 'urban100'}"]
# `BlindDeconvolution` fields that act after the kernel estimate: stages differing only in these are
# scored on one estimate per photo (their s / photo then counts the estimate once, for the first)
FINAL_STEP = ("prior_weight", "prior_from", "prior_noise_power", "max_low_frequency_change", "clipped_rounds",
              "min_agreement", "choose_by_residual", "residual_noise_below")


def add_development_set(parser: argparse.ArgumentParser, limit: int, bins: list[str]) -> None:
    """The deconvolution benchmarks' photos: `--sources`, `--limit`, `--seeds` and `--bins` (see
    `kernel_bins`), by default the development set."""
    parser.add_argument("--sources", nargs="+", default=DEVELOPMENT_SOURCES)
    parser.add_argument("--limit", type=int, default=limit, help="photos per source, seed and bin")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--bins", nargs="+", default=bins)


def kernel_bins(parser: argparse.ArgumentParser, values: list[str]) -> list[tuple[int, int]]:
    """`--bins` values LO-HI as (LO, HI) pixel ranges, or the parser's error."""
    try:
        bins = [tuple(int(v) for v in b.split("-", 1)) for b in values]
    except ValueError:
        bins = []
    if len(bins) != len(values) or any(len(b) != 2 for b in bins):
        parser.error(f"--bins must be LO-HI pixel ranges like 7-15, got {values}")
    return bins


def named_objects(parser: argparse.ArgumentParser, flag: str, items: list[str]) -> dict[str, dict]:
    """`NAME=JSON` values of `flag` as {NAME: JSON object}, or the parser's error."""
    named = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            parser.error(f"{flag} must be NAME=JSON, got {item!r}")
        try:
            named[name] = json.loads(text)
        except json.JSONDecodeError as err:
            parser.error(f"{flag} {name}: not JSON ({err})")
        if not isinstance(named[name], dict):
            parser.error(f"{flag} {name}: must be a JSON object, got {text!r}")
    return named


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_development_set(parser, limit=4, bins=["7-15", "15-31", "31-75"])
    parser.add_argument("--stage", action="append", default=None, metavar="NAME=JSON",
                        help="a stage config to score (repeatable; default: default={})")
    parser.add_argument("--variants", nargs="+", default=["uniform", "rotation", "lowlight"])
    parser.add_argument("--max-sizes", type=int, nargs="+", default=[0], metavar="PX",
                        help="also score the photos downscaled to this longer side before the blur, where the same "
                        "kernels span more of the photo (0: as they are)")
    parser.add_argument("--generator", metavar="MODEL", nargs="+", default=[],
                        help="model folders or Hub ids: also score each one's generator alone and each stage as "
                        "`deblur` combines the two (`prefers_deconvolution`), in fp32; rows named by the folder")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    parser.add_argument("--results", default="deconvolution", help="writes docs/results/RESULTS.md")
    parser.add_argument("--dump", metavar="JSON", help="also write each photo's gain and estimated kernel there "
                        "(benchmarks/deconvolution_stability.py compares two such runs)")
    args = parser.parse_args(argv)
    args.stage = named_objects(parser, "--stage", args.stage or ["default={}"])
    labels = [model_label(m) for m in args.generator]
    if len(set(labels)) < len(labels):
        parser.error(f"--generator: two models would share a row name: {labels}")
    args.bins = kernel_bins(parser, args.bins)
    if any(m < 0 for m in args.max_sizes):
        parser.error(f"--max-sizes must be pixel counts (0: photos as they are), got {args.max_sizes}")
    return args


def model_label(model: str) -> str:
    """A model's name in the rows: its folder's, with the run's for a training run's `best` or `final` export."""
    path = Path(model)
    return "/".join(path.parts[-2:]) if path.name in ("best", "final") else path.name


def true_kernel_result(stage, x, kernel):
    """Photo `x` (3, H, W) deconvolved by `stage`'s final step (prior rule, clipped lights) with `kernel`
    (numpy, the pair's true or camera kernel), never declined: the ceiling of a perfect estimate."""
    import torch

    from deblurgan_hf.deconvolution import _extent, deconvolve, noise_level

    kernel = torch.from_numpy(kernel).float()
    return deconvolve(x, kernel, prior_weight=stage.prior_for(_extent(kernel), noise_level(x.mean(0))),
                      clipped_level=stage.clipped_level_for(x), clipped_rounds=stage.clipped_rounds)


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import torch
    from PIL import Image

    from deblurgan_hf.data import image_to_tensor
    from deblurgan_hf.deconvolution import MIN_KERNEL, BlindDeconvolution, prefers_deconvolution
    from deblurgan_hf.evaluation import PairSource
    from deblurgan_hf.files import atomic_write_text
    from deblurgan_hf.imaging import to_uint8
    from deblurgan_hf.metrics import psnr_images

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    stages = {name: BlindDeconvolution.from_config(cfg) for name, cfg in args.stage.items()}
    models = {}
    if args.generator:
        from deblurgan_hf import DeblurGAN

        models = {model_label(m): DeblurGAN.from_pretrained(m) for m in args.generator}
    estimation = {name: json.dumps({k: v for k, v in s.to_config().items() if k not in FINAL_STEP}, sort_keys=True)
                  for name, s in stages.items()}  # stages with the same one share their kernel estimates
    true_kernel_rows, rules = [], set()  # the first stage of each final-step setting
    for name, stage in stages.items():
        rule = (stage.prior_weight, stage.prior_from, stage.prior_noise_power, stage.clipped_level, stage.clipped_rounds,
                stage.clipped_noise_from)
        if rule not in rules:
            rules.add(rule)
            true_kernel_rows.append(name)
    print(f"Sources: {', '.join(Path(s.partition(':')[2]).name for s in args.sources)}; {args.limit} photos per "
          f"source, seed and bin; seeds {', '.join(map(str, args.seeds))}. Gain: mean PSNR over the blurred input (dB); worse: photos "
          f"below their input; declined: photos the stage left as they were.\n")
    photos = []
    print("| kernel (px) | variant | method | gain (dB) | worse | declined | s / photo |")
    print("|---|---|---|---:|---:|---:|---:|")
    for (lo, hi), variant, max_size in itertools.product(args.bins, args.variants, args.max_sizes):
        pairs = [p for src in args.sources for seed in args.seeds
                 for p in PairSource(src, limit=args.limit, blur="shake", seed=seed, shake_size=(lo, hi),
                                     shake_variant=variant, camera_kernel=variant == "lowlight", max_size=max_size or None)]
        photos_label = f"{variant}, long side <= {max_size} px" if max_size else variant
        inputs = psnr_images([p.blurred for p in pairs], [p.sharp for p in pairs])
        scored: dict[str, tuple[list, float, int, list]] = {}
        for name in (true_kernel_rows if variant != "rotation" else []):
            stage = stages[name]
            outs = []
            for p in pairs:
                out = true_kernel_result(stage, image_to_tensor(p.blurred), p.kernel)
                outs.append(to_uint8(out).permute(1, 2, 0).numpy())
            label = "true kernel" if len(scored) == 0 else f"true kernel, {name}'s final step"
            scored[label] = (outs, 0.0, 0, [None] * len(pairs))
        generated = {}
        for model_name, model in models.items():
            start = time.perf_counter()
            generated[model_name] = [model.deblur(image_to_tensor(p.blurred), deconvolve=False, precision="fp32")
                                     for p in pairs]
            scored[f"generator {model_name}"] = ([to_uint8(g).permute(1, 2, 0).numpy() for g in generated[model_name]],
                                                 (time.perf_counter() - start) / len(pairs), 0, [None] * len(pairs))
        estimates: dict[str, dict] = {}  # stages that differ only in the final step share their kernels
        for name, stage in stages.items():
            outs, kernels, declined, start = [], [], 0, time.perf_counter()
            combined: dict[str, list] = {model_name: [] for model_name in generated}
            shared = estimates.setdefault(estimation[name], {})
            for i, p in enumerate(pairs):
                x = image_to_tensor(p.blurred)
                if i not in shared and min(x.shape[-2:]) >= 4 * MIN_KERNEL:
                    shared[i] = stage.estimate(x)
                out, info = stage.restore(x, shared.get(i))
                declined += out is None
                outs.append(p.blurred if out is None else to_uint8(out).permute(1, 2, 0).numpy())
                kernels.append(info["kernel"].tolist() if "kernel" in info else None)
                for model_name, restored in generated.items():
                    combined[model_name].append(outs[-1] if prefers_deconvolution(x, out, restored[i])
                                                else scored[f"generator {model_name}"][0][i])
            scored[name] = (outs, (time.perf_counter() - start) / len(pairs), declined, kernels)
            for model_name, outs_combined in combined.items():
                scored[f"{name} + {model_name}"] = (outs_combined, scored[name][1] + scored[f"generator {model_name}"][1],
                                                    declined, kernels)
        for name, (outs, seconds, declined, kernels) in scored.items():
            psnr = psnr_images(outs, [p.sharp for p in pairs])
            worse = sum(a < b - 1e-9 for a, b in zip(psnr, inputs))
            for i, (a, b, kernel) in enumerate(zip(psnr, inputs, kernels)):
                photos.append({"bin": f"{lo}-{hi}", "variant": photos_label, "method": name, "photo": i,
                               "gain": a - b, "kernel": kernel})
            print(f"| {lo}-{hi} | {photos_label} | {name} | {np.mean(psnr) - np.mean(inputs):+.2f} | {worse} of {len(pairs)} "
                  f"| {declined} | {seconds:.1f} |", flush=True)
    if args.dump:
        atomic_write_text(Path(args.dump), json.dumps(photos))
    print("\nStages: " + "; ".join(f"`{name}` = `{json.dumps(cfg)}`" for name, cfg in args.stage.items()))
    if len(set(estimation.values())) < len(stages):
        print("\nStages that differ only in the final step (" + ", ".join(FINAL_STEP) + ") share the first one's kernel "
              "estimates: their s / photo is the final step's alone.")
    frame = sorted((DATA / "gopro_real" / "val" / "blur").glob("*.png"))[0]
    with Image.open(frame) as img:
        x = image_to_tensor(np.asarray(img.convert("RGB")))
    print(f"\nCost on a real {x.shape[-1]}x{x.shape[-2]} GoPro frame ({frame.name}), {torch.get_num_threads()} threads, "
          "one run each:\n")
    print("| stage | seconds | declined |\n|---|---:|---|")
    for name, stage in stages.items():
        start = time.perf_counter()
        out, info = stage.restore(x)
        print(f"| {name} | {time.perf_counter() - start:.1f} | {info.get('declined', 'no')} |")
    return 0


if __name__ == "__main__":
    from _results import recorded

    with recorded(parse_args().results):
        status = main()
    raise SystemExit(status)
