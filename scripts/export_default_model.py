"""Turn a finished training run into the bundled model folder, with a model card measured here.

    python scripts/export_default_model.py --run runs/nafnet_motion_s --out pretrained/nafnet-motion-s \
        --notes configs/nafnet_motion_s.card.md

Loads `<run>/best` (chosen during training by real-pair validation PSNR on centre crops), evaluates
it on all 11 REAL GoPro validation pairs at full 1280x720 in fp32 and bf16, beside the blurred
input and the best unsharp mask, and writes the folder (config.json, model.safetensors, README.md
with the figures in its model-index, a sample figure, the training curves) atomically.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
VAL = f"paired:{DATA / 'gopro_real' / 'val'}"
DATASET_NAME = "GoPro real pairs, GOPR0384_11_05 (11 pairs, 1280x720)"

TRAINING_DATA = """\
- **Urban100** (J.-B. Huang, A. Singh, N. Ahuja, "Single Image Super-Resolution from Transformed
  Self-Exemplars", CVPR 2015; Flickr photos, research use), 70 photos, long side 1024 px, blurred on
  the fly with the project's GoPro-like trajectory synthesis (`deblurgan_hf.blur.trajectory_blur`).
- **CBSD68** (Berkeley Segmentation Dataset, D. Martin et al., ICCV 2001; non-commercial research and
  education), 68 photos, blurred the same way.
- **GOPRO_Large** real pairs (S. Nah, T. H. Kim, K. M. Lee, "Deep Multi-scale Convolutional Neural
  Network for Dynamic Scene Deblurring", CVPR 2017; CC BY 4.0): 9 pairs of the `blur` folder
  (sequences GOPR0384_11_00 and GOPR0396_11_00), half of every epoch's samples.
- Validation (never trained on): the 11 real pairs of sequence GOPR0384_11_05."""


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(REPO))
    from huggingface_hub import EvalResult

    from deblurgan_hf import DeblurGAN
    from deblurgan_hf.evaluation import PairSource, baseline_methods, model_method, run_evaluation, summary_markdown

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="training output_dir (holds best/, recipe.json, metrics.jsonl)")
    parser.add_argument("--checkpoint", default="best", help="exported folder inside the run")
    parser.add_argument("--out", required=True, help="model folder to write (replaced atomically)")
    parser.add_argument("--notes", default=None, help="Markdown appended to the card (levers tried, figures)")
    parser.add_argument("--wall-minutes", type=float, default=None, help="training wall-clock time, for the card")
    args = parser.parse_args(argv)

    run, src = Path(args.run), Path(args.run) / args.checkpoint
    recipe = json.loads((run / "recipe.json").read_text())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = max((r.get("step", 0) for r in records), default=0)
    model = DeblurGAN.from_pretrained(src)

    pairs = PairSource(VAL)
    methods = [model_method(str(src), precision="fp32"), model_method(str(src), precision="bf16")]
    methods[0].name, methods[1].name = "model fp32", "model bf16"
    baselines = baseline_methods(["identity", "unsharp"], pairs, has_kernel=False, log=lambda s: None)
    tmp = Path(args.out).with_name(f".tmp-{Path(args.out).name}")
    shutil.rmtree(tmp, ignore_errors=True)
    eval_dir = tmp.with_name(tmp.name + "-eval")
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
    eval_results = [
        EvalResult(task_type="image-to-image", task_name="Motion deblurring", dataset_type="gopro-real-val",
                   dataset_name=DATASET_NAME, metric_type=kind, metric_name=f"{kind.upper()} (uint8 RGB, full frame, fp32)",
                   metric_value=round(float(summary["model fp32"][kind]), 4 if kind == "ssim" else 3))
        for kind in ("psnr", "ssim")
    ]
    cpu = f", {args.wall_minutes:.0f} minutes wall-clock on a 2-core CPU (2 threads)" if args.wall_minutes else ""
    recipe_md = (
        f"{steps} steps{cpu}. "
        + ", ".join(f"`{k}`: `{json.dumps(recipe[k])}`" for k in (
            "generator", "generator_kwargs", "crop_size", "train_batch_size", "real_fraction", "blur", "content_loss",
            "fft_weight", "optimizer", "learning_rate", "lr_scheduler", "max_train_steps", "mixed_precision", "seed")
            if k in recipe)
        + ". Checkpoint chosen by validation PSNR on 512x512 centre crops of the real validation pairs."
    )
    notes = Path(args.notes).read_text() if args.notes else ""
    extra = (
        "### Full evaluation on the real validation pairs\n\n"
        "`python scripts/export_default_model.py` wrote this table (scored by `deblurgan_hf/metrics`):\n\n"
        + summary_markdown(results) + "\n\n![blur | model fp32 | model bf16 | unsharp | sharp](sample.png)\n\n" + notes
    )
    card = dict(
        model_name=recipe.get("model_name") or Path(args.out).name,
        intended_use=(
            "Removing camera-shake and motion blur from photos (1 to tens of megapixels) on a CPU. "
            "Trained for GoPro-like blur (a moving hand-held camera, 7-13 averaged frames). Not for "
            "defocus blur, not for forensic or evidential use: a restoration is a plausible image, "
            "not recovered truth."
        ),
        training_data=TRAINING_DATA,
        recipe=recipe_md,
        command=f"accelerate launch train_accelerate.py --config configs/nafnet_motion_s.yaml\n"
                f"python scripts/export_default_model.py --run {args.run} --out {args.out}"
                + (f" --notes {args.notes}" if args.notes else ""),
        metrics=metrics,
        eval_results=eval_results,
        extra=extra,
        limitations=(
            "Trained for about an hour on a 2-core CPU, not to convergence; strong non-uniform blur "
            "(fast object motion, large rotations) is only partly removed, and fine texture comes back "
            "smoother than in the sharp frame. The validation sequence (GOPR0384_11_05) comes from the "
            "same recording as one training sequence (GOPR0384_11_00): different frames, similar "
            "scenes, so these figures may be optimistic for other cameras and places. Saturated "
            "highlights and heavy noise are modelled only by the synthesis' simple clipping and noise. "
            "It was trained on strong blur only: on mildly blurred photos it makes things worse (Kodak24 "
            "with uniform DeblurGAN kernels, input 28.01 dB: 26.97 dB after this model, measured by "
            "`python benchmarks/quality.py`), so do not run it on photos that are already nearly sharp."
        ),
    )
    model.save_pretrained(tmp, model_card_kwargs=card)
    shutil.copy2(eval_dir / "crops.png", tmp / "sample.png")
    if (src / "training_curves.png").is_file():
        shutil.copy2(src / "training_curves.png", tmp / "training_curves.png")
    (tmp / "validation_per_image.csv").write_bytes((eval_dir / "per_image.csv").read_bytes())
    out = Path(args.out)
    if out.exists():
        old = out.with_name(f".old-{out.name}")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)
    shutil.rmtree(eval_dir, ignore_errors=True)
    print(summary_markdown(results))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
