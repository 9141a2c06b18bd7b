"""The `deblurgan` command: `deblurgan deblur ...` over files and folders, `deblurgan evaluate ...`,
`deblurgan export ...`."""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .files import atomic_write
from .imaging import IMAGE_EXTENSIONS, PRECISIONS


def collect_inputs(inputs: list[str], recursive: bool) -> list[tuple[Path, Path]]:
    """(input file, output path relative to OUTDIR) for every image named or found in a folder."""
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
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
    from .inference import png_ready

    with atomic_write(path) as tmp:
        png_ready(image).save(tmp, format="PNG")  # float TIFFs as 16-bit PNG, CMYK and LAB as RGB


_TEMP_NAME = re.compile(r"^\..+\.tmp-(\d+)$")  # files.atomic_write's temp names: .NAME.tmp-PID


def remove_stale_temps(outdir: Path) -> list[Path]:
    """Delete temp files that killed runs left in `outdir` (their PID is gone); returns them.

    Temp files of a run still going (its PID is alive) are left alone."""
    removed = []
    for path in outdir.rglob(".*.tmp-*") if outdir.is_dir() else ():
        match = _TEMP_NAME.match(path.name)
        if match and path.is_file() and not _process_alive(int(match[1])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def check_writable(outdir: Path) -> None:
    """Fail before the model loads when OUTDIR cannot take files (a file in the way, no permission, full disk)."""
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=outdir):
            pass
    except OSError as err:
        raise ValueError(f"-o {outdir}: cannot write there ({err.strerror or err})") from None


def check_tiling(tile: int | None, overlap: int) -> None:
    if tile not in (None, 0) and tile < 2 * overlap + 16:
        raise ValueError(f"--tile {tile}: must be 0 (never tile) or at least 2 x --overlap + 16 = {2 * overlap + 16}")


def _count(low: int) -> Callable[[str], int]:
    """argparse type: an integer >= `low` (argparse then exits 2 with the flag's name, like any usage error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} must be {low} or more")
        return value

    return parse


def pick_device(name: str) -> str:
    """--device value -> a torch device name; "auto" is CUDA, else Apple MPS, else the CPU."""
    import torch

    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if name == "auto":
        return next(d for d in ("cuda", "mps", "cpu") if available[d])
    if name not in available:
        raise ValueError(f"--device {name!r}: allowed values are auto, {', '.join(available)}")
    if not available[name]:
        raise ValueError(f"--device {name}: no {name.upper()} device here (torch sees none); use --device cpu or auto")
    return name


def deblur_files(
    todo: list[tuple[Path, Path]],
    deblur: Callable[[Any], Any],
    *,
    on_done: Callable[[Path, str | None], None],
    read_ahead: int = 2,
    writers: int = 2,
) -> None:
    """Decode ahead and encode behind in threads while `deblur` runs here, one image at a time.

    PIL releases the GIL while it decodes and compresses, so the model (which also runs outside
    the GIL) is not kept waiting on files. `on_done(src, error or None)` is called once per file,
    in order of completion; unreadable inputs and unwritable outputs (ValueError, OSError) are
    reported there and the others go on. At most `read_ahead` decoded inputs and 2 x `writers`
    results wait in memory at any time.
    """
    from .inference import open_image

    queue = iter(todo)
    decoding: collections.deque[tuple[Path, Path, Future]] = collections.deque()
    encoding: collections.deque[tuple[Path, Future]] = collections.deque()
    read_pool = ThreadPoolExecutor(max_workers=read_ahead, thread_name_prefix="decode")
    write_pool = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="encode")

    def decode_next() -> None:
        for src, dst in queue:
            decoding.append((src, dst, read_pool.submit(open_image, src)))
            return

    def finish_writes(wait_for_one: bool) -> None:
        while encoding and (wait_for_one or encoding[0][1].done()):
            src, future = encoding.popleft()
            error = future.exception()
            if error is not None and not isinstance(error, (ValueError, OSError)):
                raise error
            on_done(src, None if error is None else str(error))
            wait_for_one = False

    try:
        for _ in range(read_ahead):
            decode_next()
        while decoding:
            src, dst, future = decoding.popleft()
            decode_next()
            try:
                result = deblur(future.result())
            except (ValueError, OSError) as err:
                on_done(src, str(err))
                continue
            encoding.append((src, write_pool.submit(save_atomic, result, dst)))
            del result
            finish_writes(wait_for_one=len(encoding) > 2 * writers)
        while encoding:
            finish_writes(wait_for_one=True)
    finally:
        # On an error or Ctrl-C: drop queued work; writes already running finish (atomically).
        read_pool.shutdown(wait=True, cancel_futures=True)
        write_pool.shutdown(wait=True, cancel_futures=True)


def is_video_run(inputs: list[str], output: str) -> bool:
    """True when an input is a video file or -o names one (by suffix). The suffix lists live in
    deblurgan_hf.video, which needs PyAV: runs on images into a plain folder do not import it."""
    paths = [Path(p) for p in [*inputs, output]]
    if all(not p.suffix or p.is_dir() or p.suffix.lower() in IMAGE_EXTENSIONS for p in paths):
        return False
    from . import video

    return any(p.suffix.lower() in (*video.VIDEO_EXTENSIONS, *video.OUTPUT_FORMATS) for p in paths)


VIDEO_ONLY_OPTIONS = ("start", "duration", "lossless", "crf", "batch")


def cmd_deblur_video(args: argparse.Namespace) -> int:
    """`deblurgan deblur clip.mp4 -o sharp.mp4`: one clip, streamed through the model in batches."""
    import torch
    from tqdm import tqdm

    from . import DEFAULT_MODEL, DeblurGAN
    from .video import DEFAULT_BATCH, DEFAULT_CRF, check_output, check_window, deblur_video, probe

    if len(args.inputs) != 1 or Path(args.inputs[0]).is_dir():
        raise ValueError(f"{' '.join(args.inputs)}: a video is deblurred on its own: give one video file and -o FILE.mp4")
    src, dst = Path(args.inputs[0]), Path(args.output)
    check_output(dst)
    if args.crf is not None and args.crf > 51:
        raise ValueError(f"--crf {args.crf}: allowed values are 0 (lossless) to 51 (worst)")
    if dst.resolve() == src.resolve():
        raise ValueError(f"-o {dst}: the same file as the input; choose another name")
    check_writable(dst.parent)
    info = probe(src)  # a bad file or window is refused before the model loads
    check_window(info, args.start or 0.0, args.duration)
    if dst.exists() and not args.overwrite:
        print(f"{dst} is already there, kept (--overwrite to redo)")
        return 0
    model = DeblurGAN.from_pretrained(args.model or DEFAULT_MODEL).to(pick_device(args.device))

    def deblur(batch: torch.Tensor) -> torch.Tensor:
        # the generator only: a kernel estimate per frame costs seconds and would flicker
        return model.deblur(batch, tile=args.tile, overlap=args.overlap, precision=args.precision, compile=args.compile,
                            deconvolve=False)

    with tqdm(total=None, desc="deblurring", unit="frame") as bar:
        def progress(done: int, expected: int) -> None:
            bar.total = expected
            bar.update(done - bar.n)

        frames = deblur_video(deblur, src, dst, start=args.start or 0.0, duration=args.duration,
                              lossless=args.lossless, crf=DEFAULT_CRF if args.crf is None else args.crf,
                              batch_size=args.batch or DEFAULT_BATCH, progress=progress)
    audio = f", {info.audio} audio copied" if info.audio else ""
    print(f"{frames} frames deblurred into {dst} ({info.width}x{info.height} at {float(info.rate):.3g} fps{audio})")
    return 0


def cmd_deblur(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from . import DEFAULT_MODEL, DeblurGAN

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.io_threads < 1:
        raise ValueError(f"--io-threads {args.io_threads}: must be at least 1")
    check_tiling(args.tile, args.overlap)
    device = pick_device(args.device)
    if is_video_run(args.inputs, args.output):
        return cmd_deblur_video(args)
    given = [f"--{name}" for name in VIDEO_ONLY_OPTIONS if getattr(args, name) not in (None, False)]
    if given:
        raise ValueError(f"{', '.join(given)}: for a video input only (deblurgan deblur clip.mp4 -o sharp.mp4)")
    jobs = collect_inputs(args.inputs, args.recursive)
    if not jobs:
        print(f"no images found in {' '.join(args.inputs)} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})", file=sys.stderr)
        return 1
    outdir = Path(args.output)
    check_writable(outdir)
    remove_stale_temps(outdir)
    todo = [(src, outdir / rel) for src, rel in jobs if args.overwrite or not (outdir / rel).exists()]
    skipped = len(jobs) - len(todo)
    model = DeblurGAN.from_pretrained(args.model or DEFAULT_MODEL).to(device)
    failed: list[tuple[Path, str]] = []
    bar = tqdm(total=len(todo), desc="deblurring", unit="img")

    def on_done(src: Path, error: str | None) -> None:
        if error is not None:
            failed.append((src, error))
            tqdm.write(f"FAILED {src}: {error}", file=sys.stderr)
        bar.update()

    def deblur(image: Any) -> Any:
        return model.deblur(image, tile=args.tile, overlap=args.overlap, precision=args.precision, compile=args.compile)

    with bar:
        deblur_files(todo, deblur, on_done=on_done, read_ahead=args.io_threads, writers=args.io_threads)
    done = len(todo) - len(failed)
    print(f"{done} deblurred into {outdir}, {skipped} kept (already there; --overwrite to redo), {len(failed)} failed")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="deblurgan", description="Blind motion deblurring (deblurgan-hf).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    deblur = sub.add_parser("deblur", help="deblur image files and folders into OUTDIR as PNG, or a video into a video")
    deblur.add_argument("inputs", nargs="+", help="image files and/or folders, or one video file")
    deblur.add_argument("-o", "--output", required=True, help="output folder (created if needed), or FILE.mp4 for a video")
    deblur.add_argument("--model", default=None, help="model folder or Hub repo id (default: the bundled model)")
    deblur.add_argument("--tile", type=_count(0), default=None,
                        help="tile size in pixels, at least 2 x overlap + 16 (default: by image size; 0: never tile)")
    deblur.add_argument("--overlap", type=_count(0), default=32, help="tile overlap in pixels")
    deblur.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="auto: bf16 where the device has native bf16 and it was measured accurate, else fp32; fp16: GPU only")
    deblur.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                        help="where the model runs (default auto: CUDA, else Apple MPS, else the CPU)")
    deblur.add_argument("--compile", action="store_true",
                        help="torch.compile the model: the first image of each size compiles (a minute or more on a CPU, "
                             "cached on disk for later runs), the others run faster")
    deblur.add_argument("--threads", type=_count(0), default=0, help="torch threads (default: the machine's cores)")
    deblur.add_argument("--io-threads", type=int, default=2,
                        help="threads decoding inputs ahead and, as many again, encoding outputs behind the model (default 2)")
    deblur.add_argument("--recursive", action="store_true", help="descend into sub-folders (kept in OUTDIR)")
    deblur.add_argument("--overwrite", action="store_true", help="redo images whose output exists")
    video = deblur.add_argument_group("video", "one clip in, -o FILE (.mp4, .mov, .mkv) out; frame rate, size, "
                                      "rotation and audio are kept")
    video.add_argument("--start", type=float, default=None, metavar="SECONDS", help="begin this far into the clip")
    video.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="deblur this much (default: to the end)")
    video.add_argument("--crf", type=_count(0), default=None,
                       help="H.264 quality, 0 (lossless YUV) to 51 (worst); default 18, near-transparent")
    video.add_argument("--lossless", action="store_true", help="lossless RGB H.264 (large files; few players play it)")
    video.add_argument("--batch", type=_count(1), default=None, help="frames per model call (default 4)")
    deblur.set_defaults(func=cmd_deblur)

    # Parsed by their own modules (see main); listed here so `deblurgan --help` shows them.
    sub.add_parser("evaluate", help="PSNR/SSIM of models and baselines on paired data", add_help=False)
    sub.add_parser("evaluate-ocr", help="OCR character error rate on sharp, blurred and deblurred text", add_help=False)
    sub.add_parser("export", help="export a model's generator as ONNX (deblurgan export --help)", add_help=False)
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
        if argv[:1] == ["export"]:
            from .export import main as export_main

            return export_main(argv[1:])
    except ModuleNotFoundError as err:
        from ._extras import extras_providing

        if not extras_providing(err.name or ""):
            raise
        print(f"deblurgan {argv[0]}: error: {err}", file=sys.stderr)  # the message names the extra
        return 2
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ModuleNotFoundError as err:  # e.g. PyAV for a video
        from ._extras import extras_providing

        if not extras_providing(err.name or ""):
            raise
        print(f"deblurgan {args.command}: error: {err}", file=sys.stderr)  # the message names the extra
        return 2
    except (ValueError, FileNotFoundError) as err:
        print(f"deblurgan {args.command}: error: {err}", file=sys.stderr)
        return 2
    except ConnectionError as err:  # the Hub cannot be reached (the message says what to do)
        print(f"deblurgan {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Outputs are written to temp names and renamed, so what is there is complete.
        print(f"deblurgan {args.command}: interrupted; the outputs written so far are complete", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
