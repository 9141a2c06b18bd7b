"""Quality of the bundled model(s) beside the classical baselines, in one run: prints Markdown tables.

    python benchmarks/quality.py [--models PATH_OR_ID ...] [--no-default] [--limit N] [--ocr] [--out DIR]

Two sets, full images, uint8 RGB, scored by the project's PSNR / SSIM (`deblurgan_hf.metrics`):
- `gopro_real/val`: the 11 REAL GoPro pairs (1280x720, camera-shake blur); identity and unsharp
  masking (best of its grid on this set) beside the models.
- Kodak24 (500x500) with fixed-seed synthetic kernel blur (seed 0, the project's DeblurGAN
  trajectory kernels); the true kernels are known, so also non-blind Richardson-Lucy and
  unsupervised Wiener.
- Kodak24 sharp, no blur: the input is the sharp photo itself; a model that leaves sharp photos
  alone scores high (identity is infinite), one that over-sharpens scores low.
- Camera shake (`--sets shake`): Kodak24 + CBSD68 (both kept out of training) blurred by
  Boracchi-Foi camera-shake kernels binned 7-15, 15-31 and 31-75 px, valid convolution, kernel
  centred, 1% noise; uniform, camera-roll and low-light variants; non-blind Wiener and
  Richardson-Lucy given the true kernel as references (`evaluation.camera_shake_benchmark`).
With `--ocr`, also Tesseract's character error rate on sharp, blurred and deblurred text.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
# label -> (key for --sets, source, blur for sharp: sources)
SETS = {
    "gopro_real/val (real pairs)": ("gopro", f"paired:{DATA / 'gopro_real' / 'val'}", None),
    "Kodak24 + synthetic kernel blur (seed 0)": ("kodak", f"sharp:{DATA / 'sharp' / 'kodak24'}", "kernel"),
    "Kodak24 sharp, no blur": ("kodak-sharp", f"sharp:{DATA / 'sharp' / 'kodak24'}", "none"),
    "Camera shake, Kodak24 + CBSD68 (seed 0)": ("shake", None, "shake"),
}
SHAKE_SOURCES = [f"sharp:{DATA / 'sharp' / 'kodak24'}", f"sharp:{DATA / 'sharp' / 'cbsd68'}"]


def main(argv: list[str] | None = None) -> int:
    from deblurgan_hf import DEFAULT_MODEL
    from deblurgan_hf.baselines import BASELINES, KERNEL_BASELINES
    from deblurgan_hf.evaluation import (
        PairSource,
        baseline_methods,
        camera_shake_benchmark,
        camera_shake_markdown,
        model_methods,
        run_evaluation,
        summary_markdown,
    )
    from deblurgan_hf.imaging import PRECISIONS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=[], help="more models (folders or Hub ids) beside the bundled one")
    parser.add_argument("--no-default", action="store_true", help="leave out the bundled DEFAULT_MODEL")
    parser.add_argument("--limit", type=int, default=None, help="first N images of each set (quick check)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto")
    keys = [key for key, _, _ in SETS.values()]
    parser.add_argument("--sets", nargs="*", choices=keys, default=keys)
    parser.add_argument("--ocr", action="store_true", help="also the Tesseract CER check for each model")
    parser.add_argument("--out", default=None, help="write each set's CSV, summary and crops figure under DIR")
    args = parser.parse_args(argv)

    models = list(args.models)
    if not args.no_default:
        if Path(DEFAULT_MODEL).is_dir():
            models.insert(0, DEFAULT_MODEL)
        else:
            print(f"(no bundled model at {DEFAULT_MODEL} yet: baselines only)\n")
    methods = model_methods(models, precision=args.precision)
    for label, (key, source, blur) in SETS.items():
        if key not in args.sets:
            continue
        if blur == "shake":
            rows = camera_shake_benchmark(methods, SHAKE_SOURCES, limit=args.limit)
            print(f"### {label}: {rows[0]['images']} images per row\n")
            print(camera_shake_markdown(rows))
            continue
        pairs = PairSource(source, limit=args.limit, blur=blur or "kernel", seed=0)
        names = [n for n in BASELINES if pairs.has_kernel or n not in KERNEL_BASELINES]
        if blur == "none":
            names = [n for n in names if n != "identity"]  # input == target: infinite PSNR
        baselines = baseline_methods(names, pairs, has_kernel=pairs.has_kernel, log=lambda s: None)
        out = None if args.out is None else Path(args.out) / key
        results = run_evaluation(pairs, methods + baselines, out_dir=out, progress=False)
        print(f"### {label}: {len(pairs)} images\n")
        print(summary_markdown(results))
    if args.ocr:
        from deblurgan_hf.ocr import ocr_check

        print("### Tesseract CER on rendered text (3 pages, kernel blur 21 px, seed 0)\n")
        print("| model | sharp | blurred | deblurred |\n|---|---:|---:|---:|")
        for m in models or [None]:
            r = ocr_check(m, precision=args.precision)["cer"]
            name = Path(m).name if m else "(no model)"
            print(f"| {name} | {r['sharp']:.3f} | {r['blurred']:.3f} | {r.get('deblurred', float('nan')):.3f} |")
    return 0


if __name__ == "__main__":
    from _results import recorded

    with recorded("quality", skip_flags=("-h", "--help")):
        code = main()
    sys.exit(code)
