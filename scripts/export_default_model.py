"""Turn a finished training run into the bundled model folder, with a model card measured here.

    python scripts/export_default_model.py --run runs/nafnet_motion_s_wide --out deblurgan_hf/pretrained/nafnet-motion-s \
        --notes configs/nafnet_motion_s.card.md --limitations configs/nafnet_motion_s.limitations.md

Loads `<run>/best` (chosen during training by real-pair validation PSNR on centre crops), evaluates
it on all 11 REAL GoPro validation pairs at full 1280x720 in fp32 and bf16, beside the blurred
input and the best unsharp mask, and on Kodak24 with (mostly mild) kernel blur and without blur; writes
the folder (config.json, model.safetensors, README.md with the figures in its model-index, a
sample figure, the training curves) atomically. A run started with `init_from` another run's
export is a later stage: the card lists every stage of the chain, each with its config; a chain
started from an exported model folder (a bundled model) begins with that model's training data,
recipe and commands.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
VAL = f"paired:{DATA / 'gopro_real' / 'val'}"
KODAK = f"sharp:{DATA / 'sharp' / 'kodak24'}"
RECIPE_KEYS = ("init_from", "generator", "generator_kwargs", "crop_size", "train_batch_size", "real_fraction", "blur",
               "content_loss", "fft_weight", "optimizer", "learning_rate", "lr_scheduler", "max_train_steps",
               "mixed_precision", "seed")

REAL_PHOTOS = DATA / "real_blur_only"
SHAKE_SOURCES = [f"sharp:{DATA / 'sharp' / 'kodak24'}", f"sharp:{DATA / 'sharp' / 'cbsd68'}"]
# Credits of the data folders the bundled recipes read, keyed by the end of their path.
DATA_CREDITS = {
    "sharp/urban100": "**Urban100** (J.-B. Huang, A. Singh, N. Ahuja, \"Single Image Super-Resolution from "
                      "Transformed Self-Exemplars\", CVPR 2015; Flickr photos, research use), 70 photos, long side 1024 px",
    "sharp/cbsd68": "**CBSD68** (Berkeley Segmentation Dataset, D. Martin et al., ICCV 2001; non-commercial research "
                    "and education), 68 photos",
    "sharp/bsds432": "**BSDS500** train + test (P. Arbelaez, M. Maire, C. Fowlkes, J. Malik, \"Contour Detection and "
                     "Hierarchical Image Segmentation\", TPAMI 2011; research use), 400 photos, none of CBSD68",
    "sharp/night_and_indoor": "**Deep Photo Style Transfer** example photos (F. Luan, S. Paris, E. Shechtman, K. Bala, "
                              "CVPR 2017; academic and non-commercial use, authors keep their copyrights): night "
                              "skylines, interiors, portraits",
    "gopro_real/train": "**GOPRO_Large** real pairs (S. Nah, T. H. Kim, K. M. Lee, \"Deep Multi-scale Convolutional "
                        "Neural Network for Dynamic Scene Deblurring\", CVPR 2017; CC BY 4.0): 9 pairs of the `blur` "
                        "folder, sequences GOPR0384_11_00 and GOPR0396_11_00",
}


def training_data(stages: list[tuple[Path, dict]]) -> str:
    """Credits of every data source of every stage (synthetic blur for sharp photos, real pairs as they are)."""
    lines, seen = [], set()
    for _, recipe in stages:
        for source in recipe.get("train_sources") or []:
            location = Path(source.partition(":")[2]).as_posix()
            key = next((k for k in DATA_CREDITS if location.endswith(k)), location)
            if key in seen:
                continue
            seen.add(key)
            kind = " (real pairs)" if source.startswith("paired:") else ", blurred on the fly (`deblurgan_hf.blur`)"
            lines.append(f"- {DATA_CREDITS.get(key, f'`{source}`')}{kind}.")
    lines.append("- Validation (never trained on): the 11 real pairs of GOPRO_Large sequence GOPR0384_11_05; "
                 "Kodak24 and CBSD68, the camera-shake benchmark's photos, are not among these sources.")
    return "\n".join(lines)


def origin_and_run_data(origin_card: dict[str, str] | None, origin: Path, stages: list[tuple[Path, dict]]) -> str:
    """The card's Training data: the origin model's (its card's section), then the fine-tune's sources."""
    if origin_card is None:
        return training_data(stages)
    carried = origin_card.get("Training data", "")
    if not stages:
        return carried
    items = ("\n" + carried).split("\n- ")  # bullet items, each with its wrapped lines
    kept = "\n".join("- " + item for item in items[1:] if not item.startswith("Validation"))
    return f"The generator of `{src_name(origin)}` was trained on:\n\n{kept}\n\nThen fine-tuned on:\n\n{training_data(stages)}"


def real_photo_figure(model, folder: Path, out: Path, width: int = 1400) -> list[str]:
    """before | after, one row per real blurred photo (no ground truth), written to ``out``; the names."""
    from PIL import Image, ImageDraw

    from deblurgan_hf.imaging import IMAGE_EXTENSIONS

    rows, names = [], []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS):
        before = Image.open(path).convert("RGB")
        after = model.deblur(before, precision="fp32")
        pair = Image.new("RGB", (2 * before.width + 8, before.height), "white")
        pair.paste(before, (0, 0))
        pair.paste(after, (before.width + 8, 0))
        scale = width / pair.width
        pair = pair.resize((width, round(pair.height * scale)), Image.Resampling.LANCZOS)
        ImageDraw.Draw(pair).text((6, 4), f"{path.name}: blurred | deblurred", fill="yellow")
        rows.append(pair)
        names.append(path.name)
    sheet = Image.new("RGB", (width, sum(r.height for r in rows) + 6 * len(rows)), "white")
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height + 6
    sheet.save(out, optimize=True)
    return names


def _results_helper(name: str):
    # benchmarks/ is not a package: its shared helpers are run from their file
    return runpy.run_path(str(REPO / "benchmarks" / "_results.py"))[name]


def _machine() -> str:
    return _results_helper("machine")()


def training_stages(run: Path) -> list[tuple[Path, dict]]:
    """The chain of runs that made `run`, first stage first: each stage's `init_from` names the previous."""
    stages = []
    while run is not None:
        recipe = json.loads((run / "recipe.json").read_text())
        stages.insert(0, (run, recipe))
        parent = Path(recipe["init_from"]).parent if recipe.get("init_from") else None
        run = parent if parent is not None and (parent / "recipe.json").is_file() else None
    return stages


def src_name(folder: str) -> str:
    """A model folder as the card names it: relative to the repository when inside it."""
    path = Path(folder).resolve()
    return path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else folder


def base_commands(sections: dict[str, str]) -> list[str]:
    """The command lines of a card's Reproduce section (its code block)."""
    block = sections.get("Reproduce", "").split("```")
    return [line for line in (block[1].splitlines()[1:] if len(block) > 2 else []) if line.strip()]


def card_sections(card_file: Path) -> dict[str, str]:
    """The `## ` sections of a model card (README.md), by heading."""
    text = card_file.read_text(encoding="utf-8")
    parts = text.split("\n## ")[1:]
    return {part.partition("\n")[0].strip(): part.partition("\n")[2].strip() for part in parts}


def main(argv: list[str] | None = None) -> int:
    from huggingface_hub import EvalResult, ModelCard

    from deblurgan_hf import PRETRAINED_DIR, DeblurGAN
    from deblurgan_hf.cards import base_model_id, eval_dataset, hub_datasets
    from deblurgan_hf.evaluation import (
        PairSource,
        baseline_methods,
        camera_shake_benchmark,
        camera_shake_csv,
        camera_shake_markdown,
        model_method,
        run_evaluation,
        summary_markdown,
    )
    from deblurgan_hf.files import atomic_write

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    made = parser.add_mutually_exclusive_group(required=True)
    made.add_argument("--run", help="training output_dir (holds best/, recipe.json, metrics.jsonl)")
    made.add_argument("--base-model", help="an exported model folder whose generator is used as it is (no training): "
                                           "its card's training sections are carried over")
    parser.add_argument("--deconvolution", default=None, metavar="JSON",
                        help="add a blind-deconvolution stage with these settings (deblurgan_hf.deconvolution."
                             "BlindDeconvolution fields, e.g. '{}' for the defaults)")
    parser.add_argument("--checkpoint", default="best", help="exported folder inside the run")
    parser.add_argument("--out", required=True, help="model folder to write (replaced atomically)")
    parser.add_argument("--notes", default=None, help="Markdown appended to the card (levers tried, figures)")
    parser.add_argument("--limitations", default=None, help="Markdown for the card's limitations section")
    parser.add_argument("--val", default=VAL, help="the real validation pairs (a data source string)")
    parser.add_argument("--kodak", default=KODAK, help="sharp photos for the mild-blur and no-blur rows")
    parser.add_argument("--shake", nargs="*", default=SHAKE_SOURCES,
                        help="sharp photos for the camera-shake benchmark (data sources); none: skip it")
    parser.add_argument("--shake-limit", type=int, default=None, help="first N photos of each --shake source")
    parser.add_argument("--real-photos", default=str(REAL_PHOTOS),
                        help="folder of real blurred photos (no ground truth) for the before/after figure; '' skips it")
    parser.add_argument("--wall-minutes", type=float, nargs="+", default=None,
                        help="training wall-clock minutes of each stage, first stage first, for the card")
    parser.add_argument("--results", default=None,
                        help="also write the figures to DIR/<out name>.md (default: docs/results for a bundled "
                             "model, i.e. --out under deblurgan_hf/pretrained; nothing for other folders)")
    args = parser.parse_args(argv)

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    at_start, version = _machine(), _results_helper("code_version")()
    if args.run:
        run, src = Path(args.run), Path(args.run) / args.checkpoint
        stages = training_stages(run)
        # a chain that starts from an exported model (init_from a folder that is not a run) carries its card on
        init_from = stages[0][1].get("init_from")
        origin = Path(init_from) if init_from else None
        base = card_sections(origin / "README.md") if origin and (origin / "README.md").is_file() else None
        if args.wall_minutes is not None and len(args.wall_minutes) != len(stages):
            parser.error(f"--wall-minutes: {len(args.wall_minutes)} value(s) for {len(stages)} stage(s) "
                         f"({', '.join(str(r) for r, _ in stages)})")
    else:
        src, stages, origin = Path(args.base_model), [], Path(args.base_model)
        base = card_sections(src / "README.md")
        if args.wall_minutes is not None:
            parser.error("--wall-minutes: the training time is the base model's, already in its card")
    model = DeblurGAN.from_pretrained(src)
    staged_dir = Path(args.out).with_name(f".tmp-{Path(args.out).name}-staged")
    if args.deconvolution is not None:  # the evaluation methods load a folder: save the staged model to one
        try:
            stage = json.loads(args.deconvolution)
            staged = DeblurGAN(model.generator_name, model.generator_kwargs, deconvolution=stage)
        except ValueError as err:
            parser.error(f"--deconvolution: {err}")
        staged.generator.load_state_dict(model.generator.state_dict())
        model, src = staged.eval(), staged_dir
        model.save_pretrained(src)

    pairs = PairSource(args.val)
    methods = [model_method(str(src), precision="fp32"), model_method(str(src), precision="bf16")]
    methods[0].name, methods[1].name = "model fp32", "model bf16"
    baselines = baseline_methods(["identity", "unsharp"], pairs, has_kernel=False, log=lambda s: None)
    eval_dir = Path(args.out).with_name(f".tmp-{Path(args.out).name}-eval")
    results = run_evaluation(pairs, methods + baselines, out_dir=eval_dir, progress=True)
    by_name = {r.name: r for r in results}
    fp32, bf16, ident, unsharp = (by_name[n] for n in ("model fp32", "model bf16", "identity", "unsharp"))
    worse = [n for n, p, q in zip(fp32.images, fp32.psnr, ident.psnr) if p < q]
    summary = {r.name: r.summary() for r in results}
    metrics = {
        "PSNR, blurred input (dB)": f"{summary['identity']['psnr']:.2f}",
        "PSNR, this model fp32 (dB)": f"{summary['model fp32']['psnr']:.2f}",
        "PSNR, this model bf16 (dB)": f"{summary['model bf16']['psnr']:.2f}",
        f"PSNR, best unsharp mask ({unsharp.setting}) (dB)": f"{summary['unsharp']['psnr']:.2f}",
        "SSIM, blurred input": f"{summary['identity']['ssim']:.4f}",
        "SSIM, this model fp32": f"{summary['model fp32']['ssim']:.4f}",
        "images made worse (PSNR below the input)": f"{len(worse)} of {len(fp32.images)} {worse if worse else ''}".strip(),
        "seconds per 1280x720 image, fp32 / bf16 (in this evaluation run)":
            f"{summary['model fp32']['s_per_image']:.2f} / {summary['model bf16']['s_per_image']:.2f}",
    }
    kodak_tables = []
    for label, blur in (("Kodak24, DeblurGAN kernel blur (seed 0; mostly milder than GoPro's)", "kernel"),
                        ("Kodak24 sharp photos, no blur (does it leave sharp photos alone?)", "none")):
        kodak = PairSource(args.kodak, blur=blur, seed=0)
        names = ["identity", "unsharp"] if blur == "kernel" else ["unsharp"]
        kodak_results = run_evaluation(kodak, [methods[0]] + baseline_methods(names, kodak, has_kernel=False, log=lambda s: None),
                                       progress=True)
        kodak_tables.append(f"**{label}**, {len(kodak)} images:\n\n{summary_markdown(kodak_results)}")
        summary_k = {r.name: r.summary() for r in kodak_results}
        key = "Kodak24 kernel blur" if blur == "kernel" else "Kodak24 sharp input"
        metrics[f"PSNR on {key}, this model fp32 (dB)"] = f"{summary_k['model fp32']['psnr']:.2f}"
        if blur == "kernel":
            metrics[f"PSNR on {key}, blurred input (dB)"] = f"{summary_k['identity']['psnr']:.2f}"
    shake_md = ""
    if args.shake:
        shake_rows = camera_shake_benchmark([methods[0]], args.shake, limit=args.shake_limit, progress=True)
        for r in shake_rows:
            if r["method"] == "model fp32":
                metrics[f"camera shake {r['kernel_px']} px, {r['variant']}: PSNR gain over the input (dB), images made worse"] = \
                    f"{r['gain_db']:+.2f}, {r['worse']} of {r['images']}"
        shake_dirs = [Path(src.partition(":")[2]) for src in args.shake]
        sources = ", ".join(d.name for d in shake_dirs)
        trained = {Path(src.partition(":")[2]).resolve() for _, recipe in stages for src in recipe.get("train_sources") or []}
        # the origin model's sources are known by their credits in its card
        credited = [key for key, credit in DATA_CREDITS.items()
                    if base is not None and credit.split("**")[1] in base.get("Training data", "")]
        seen = [d.name for d in shake_dirs if d.resolve() in trained or any(d.as_posix().endswith(k) for k in credited)]
        status = f"of which {', '.join(seen)} WAS in the training data" if seen else "never trained on"
        limited = f"the first {args.shake_limit} of each, " if args.shake_limit is not None else ""
        shake_md = ("### Camera shake\n\n"
                    f"{sources} ({limited}{shake_rows[0]['images']} photos per row, {status}), each blurred by a "
                    "Boracchi-Foi camera-shake kernel (as DeblurGAN) whose support falls in the bin: valid convolution, "
                    "kernel centred on its centre of mass, 1% Gaussian noise, 8 bits; `rotation` adds a roll about the "
                    "optical axis (spatially varying), `lowlight` blurs in linear light with saturated highlights and "
                    "2-3% noise. Wiener and Richardson-Lucy are given the true kernel (uniform variant only). Per-image "
                    "scores: `camera_shake_per_image.csv`.\n\n" + camera_shake_markdown(shake_rows) + "\n")
    val_dataset = eval_dataset([args.val])
    eval_results = [
        EvalResult(task_type="image-to-image", task_name="Motion deblurring", dataset_type=val_dataset.id,
                   dataset_name=f"{val_dataset.name or val_dataset.id}, full frames", dataset_split=val_dataset.split,
                   metric_type=kind, metric_name=f"{kind.upper()} (uint8 RGB, full frame, fp32)",
                   metric_value=round(float(summary["model fp32"][kind]), 4 if kind == "ssim" else 3))
        for kind in ("psnr", "ssim")
    ]
    recipe_parts = []
    for i, (stage_run, recipe) in enumerate(stages):
        records = [json.loads(line) for line in (stage_run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        steps = max((r.get("step", 0) for r in records), default=0)
        cpu = f", {args.wall_minutes[i]:.0f} minutes wall-clock on a 2-core CPU (2 threads)" if args.wall_minutes else ""
        # a later stage takes its network from init_from; its own generator options are unused
        keys = [k for k in RECIPE_KEYS if recipe.get(k) is not None
                and not (recipe.get("init_from") and k in ("generator", "generator_kwargs"))]
        settings = ", ".join(f"`{k}`: `{json.dumps(recipe[k])}`" for k in keys)
        stage = f"Stage {i + 1} (`{recipe['config']}`): " if len(stages) > 1 else ""
        recipe_parts.append(f"{stage}{steps} steps{cpu}. {settings}.")
    recipe_md = ("\n\n".join(recipe_parts) + "\n\nEach stage's checkpoint chosen by validation PSNR on 512x512 "
                 "centre crops of the real validation pairs.")
    if base is not None and not stages:
        recipe_md = f"The generator of `{src_name(origin)}`, unchanged:\n\n{base.get('Training recipe', '')}"
    elif base is not None:
        recipe_md = (f"Fine-tuned from the generator of `{src_name(origin)}`, which was made so:\n\n"
                     f"{base.get('Training recipe', '')}\n\nThen:\n\n{recipe_md}")
    if model.deconvolution is not None:
        recipe_md += ("\n\nBlind-deconvolution stage (`deblurgan_hf/deconvolution.py`, no trained weights), settings "
                      f"`{json.dumps(model.deconvolution.to_config())}`: one kernel is estimated per photo and the "
                      "photo deconvolved; `deblur` keeps whichever of that and the generator's output changed the "
                      "photo more (`deconvolve=False`: the generator only).")
    notes = Path(args.notes).read_text() if args.notes else ""
    extra = (
        "### Full evaluation on the real validation pairs\n\n"
        "`python scripts/export_default_model.py` wrote this table (scored by `deblurgan_hf/metrics`):\n\n"
        + summary_markdown(results) + "\n\n![blur | model fp32 | model bf16 | unsharp | sharp](sample.png)\n\n"
        + "### Mild blur and sharp photos\n\nThe same run also scored these (fp32):\n\n"
        + "\n\n".join(kodak_tables) + "\n\n" + shake_md
        + ("### Real shaken photos (no ground truth)\n\n![blurred | deblurred](real_photos.png)\n\n"
           "Real photos from cameras other than the GoPro (Lai et al., CVPR 2016; Tao et al., CVPR 2018; research "
           "test images), deblurred in fp32 by this model.\n\n" if args.real_photos else "")
        + notes
    )
    datasets = hub_datasets([s for _, recipe in stages for s in recipe.get("train_sources") or []])
    if base is not None:
        datasets += [d for d in ModelCard.load(origin / "README.md").data.datasets or [] if d not in datasets]
    card = dict(
        model_name=(stages[-1][1].get("model_name") if stages else None) or Path(args.out).name,
        intended_use=(
            "Removing camera shake and motion blur from photos (1 to tens of megapixels) on a CPU; what "
            "blur it was trained for is in the recipe and the tables below. Not for defocus blur, not for "
            "forensic or evidential use: a restoration is a plausible image, not recovered truth."
        ),
        training_data=origin_and_run_data(base, origin, stages),
        recipe=recipe_md,
        command=("" if base is None else "".join(line + "\n" for line in base_commands(base)))
                + "".join(f"accelerate launch train_accelerate.py --config {recipe['config']}\n" for _, recipe in stages)
                + "python scripts/export_default_model.py "
                + (f"--run {args.run}" if args.run else f"--base-model {src_name(args.base_model)}")
                + (f" --deconvolution '{args.deconvolution}'" if args.deconvolution is not None else "")
                + f" --out {args.out}"
                + (f" --notes {args.notes}" if args.notes else "")
                + (f" --limitations {args.limitations}" if args.limitations else "")
                + (" --wall-minutes " + " ".join(f"{m:g}" for m in args.wall_minutes) if args.wall_minutes else "")
                + (f" --shake-limit {args.shake_limit}" if args.shake_limit is not None else ""),
        metrics=metrics,
        eval_results=eval_results,
        datasets=datasets,
        base_model=base_model_id(stages[0][1].get("init_from") if stages else args.base_model),
        extra=extra,
        limitations=Path(args.limitations).read_text().strip() if args.limitations else None,
    )
    out = Path(args.out)
    with atomic_write(out) as tmp:  # the old model folder is replaced only by a complete new one
        model.save_pretrained(tmp, model_card_kwargs=card)
        shutil.copy2(eval_dir / "crops.png", tmp / "sample.png")
        if args.shake:
            (tmp / "camera_shake_per_image.csv").write_text(camera_shake_csv(shake_rows))
        if args.real_photos:
            real_photo_figure(model, Path(args.real_photos), tmp / "real_photos.png")
        if (src / "training_curves.png").is_file():
            shutil.copy2(src / "training_curves.png", tmp / "training_curves.png")
        (tmp / "validation_per_image.csv").write_bytes((eval_dir / "per_image.csv").read_bytes())
    shutil.rmtree(eval_dir, ignore_errors=True)
    shutil.rmtree(staged_dir, ignore_errors=True)
    print(summary_markdown(results))
    print(f"\nwrote {out}")
    results_dir = args.results
    if results_dir is None and out.resolve().parent == PRETRAINED_DIR.resolve():
        results_dir = str(REPO / "docs" / "results")
    if results_dir:
        # The bundled model's figures in the docs are this file, so they are never typed twice.
        header = _results_helper("header")
        shown = "\n".join(f"| {name} | {value} |" for name, value in metrics.items())
        path = Path(results_dir) / f"{out.name}.md"
        figures = os.path.relpath(out.resolve(), path.parent.resolve())
        body = extra[: len(extra) - len(notes)].rstrip()
        for name in ("sample.png", "real_photos.png"):  # the card's figures, seen from the results file
            body = body.replace(f"]({name})", f"]({figures}/{name})")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header(card["command"].splitlines()[-1], started, at_start, version)
                        + f"# {card['model_name']}\n\n| metric | value |\n|---|---|\n{shown}\n\n"
                        + body + "\n", encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
