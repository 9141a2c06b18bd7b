"""The `deblurgan` command: `deblurgan deblur ...` over files and folders, `deblurgan evaluate ...`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def collect_inputs(inputs: list[str], recursive: bool) -> list[tuple[Path, Path]]:
    """(input file, output path relative to OUTDIR) for every image named or found in a folder."""
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            found += [(f, f.relative_to(path).with_suffix(".png")) for f in files]
        elif path.is_file():
            found.append((path, Path(path.name).with_suffix(".png")))
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    clashes: dict[Path, list[Path]] = {}
    for src, rel in found:
        clashes.setdefault(rel, []).append(src)
    dupes = {rel: srcs for rel, srcs in clashes.items() if len(srcs) > 1}
    if dupes:
        rel, srcs = next(iter(dupes.items()))
        raise ValueError(f"{', '.join(map(str, srcs))} would all be written to {rel}; deblur them in separate runs")
    return found


def save_atomic(image, path: Path) -> None:
    """Write a PNG to a temporary name in the same folder, then rename: never a half-written output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def cmd_deblur(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from . import DEFAULT_MODEL, DeblurGAN
    from .inference import open_image

    if args.threads:
        torch.set_num_threads(args.threads)
    jobs = collect_inputs(args.inputs, args.recursive)
    if not jobs:
        print(f"no images found in {' '.join(args.inputs)} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})", file=sys.stderr)
        return 1
    outdir = Path(args.output)
    todo = [(src, outdir / rel) for src, rel in jobs if args.overwrite or not (outdir / rel).exists()]
    skipped = len(jobs) - len(todo)
    model = DeblurGAN.from_pretrained(args.model or DEFAULT_MODEL)
    failed: list[tuple[Path, str]] = []
    for src, dst in tqdm(todo, desc="deblurring", unit="img"):
        try:
            image = open_image(src)
            result = model.deblur(image, tile=args.tile, overlap=args.overlap, precision=args.precision)
            save_atomic(result, dst)
        except (ValueError, OSError) as err:
            failed.append((src, str(err)))
            tqdm.write(f"FAILED {src}: {err}", file=sys.stderr)
    done = len(todo) - len(failed)
    print(f"{done} deblurred into {outdir}, {skipped} kept (already there; --overwrite to redo), {len(failed)} failed")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="deblurgan", description="Blind motion deblurring (deblurgan-hf).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    deblur = sub.add_parser("deblur", help="deblur image files and folders into OUTDIR as PNG")
    deblur.add_argument("inputs", nargs="+", help="image files and/or folders")
    deblur.add_argument("-o", "--output", required=True, help="output folder (created if needed)")
    deblur.add_argument("--model", default=None, help="model folder or Hub repo id (default: the bundled model)")
    deblur.add_argument("--tile", type=int, default=None, help="tile size in pixels (default: by image size; 0: never tile)")
    deblur.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels")
    deblur.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    deblur.add_argument("--threads", type=int, default=0, help="torch threads (default: the machine's cores)")
    deblur.add_argument("--recursive", action="store_true", help="descend into sub-folders (kept in OUTDIR)")
    deblur.add_argument("--overwrite", action="store_true", help="redo images whose output exists")
    deblur.set_defaults(func=cmd_deblur)

    # Parsed by their own modules (see main); listed here so `deblurgan --help` shows them.
    sub.add_parser("evaluate", help="PSNR/SSIM of models and baselines on paired data", add_help=False)
    sub.add_parser("evaluate-ocr", help="OCR character error rate on sharp, blurred and deblurred text", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["evaluate"]:
            from .evaluation import main as evaluate_main

            return evaluate_main(argv[1:])
        if argv[:1] == ["evaluate-ocr"]:
            from .ocr import main as ocr_main

            return ocr_main(argv[1:])
    except ModuleNotFoundError as err:
        from ._extras import extras_providing

        if not extras_providing(err.name or ""):
            raise
        print(f"deblurgan {argv[0]}: error: {err}", file=sys.stderr)  # the message names the extra
        return 2
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"deblurgan {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
