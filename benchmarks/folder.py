"""Images per second of `deblurgan deblur DIR` on the 20 real 1280x720 GoPro frames, before and after
threaded I/O: one image after another (decode, deblur, write PNG; the CLI before issue 12) against
`cli.deblur_files` (decoding ahead and writing behind in threads while the model runs; the CLI now).

Both run in this process on the same warm model, in alternating order, `--rounds` times each;
outputs go to a temporary folder. Prints a Markdown table, written to docs/results/folder.md.

    python benchmarks/folder.py [--model PATH_OR_ID] [--rounds 3] [--precision auto] [--io-threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FRAMES = REPO.parent / "shared" / "data" / "gopro_blur_only"


def one_after_another(todo, deblur) -> None:
    """The CLI's loop before threaded I/O."""
    from deblurgan_hf.cli import save_atomic
    from deblurgan_hf.inference import open_image

    for src, dst in todo:
        save_atomic(deblur(open_image(src)), dst)


def threaded(todo, deblur, io_threads: int) -> None:
    from deblurgan_hf.cli import deblur_files

    errors = []
    deblur_files(todo, deblur, on_done=lambda src, err: err and errors.append((src, err)),
                 read_ahead=io_threads, writers=io_threads)
    assert not errors, errors


def main() -> None:
    import torch

    from deblurgan_hf import DEFAULT_MODEL, DeblurGAN
    from deblurgan_hf.inference import open_image, resolve_precision

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the folder per mode")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--io-threads", type=int, default=2)
    args = parser.parse_args()
    files = sorted(FRAMES.glob("*.png"))
    if len(files) != 20:
        raise SystemExit(f"{FRAMES}: expected the 20 real GoPro frames, found {len(files)}")
    net = DeblurGAN.from_pretrained(args.model)

    def deblur(image):
        return net.deblur(image, precision=args.precision)

    deblur(open_image(files[0]))  # warm-up: oneDNN primitives for this size
    modes = {"one after another (before)": lambda todo: one_after_another(todo, deblur),
             f"threaded I/O, {args.io_threads} + {args.io_threads} threads (now)":
                 lambda todo: threaded(todo, deblur, args.io_threads)}
    seconds: dict[str, list[float]] = {name: [] for name in modes}
    with tempfile.TemporaryDirectory(prefix="deblurgan-folder-bench-") as out:
        for round_ in range(args.rounds):
            order = list(modes) if round_ % 2 == 0 else list(modes)[::-1]
            for name in order:
                todo = [(f, Path(out) / f"mode{list(modes).index(name)}" / f"{f.stem}.png") for f in files]
                start = time.perf_counter()
                modes[name](todo)
                seconds[name].append(time.perf_counter() - start)
    print(f"{len(files)} real 1280x720 GoPro frames ({FRAMES.name}), PNG in and out, model {Path(args.model).name}, "
          f"precision {args.precision} ({resolve_precision(args.precision, net)}), {torch.get_num_threads()} torch threads, "
          f"{os.cpu_count()} cores; median of {args.rounds} passes per mode\n")
    print("| mode | seconds per pass | images / s |")
    print("|---|---:|---:|")
    rates = {}
    for name, times in seconds.items():
        rates[name] = len(files) / statistics.median(times)
        print(f"| {name} | {statistics.median(times):.2f} | {rates[name]:.2f} |")
    before, after = rates.values()
    print(f"\nThreaded I/O: {after / before:.2f}x the images per second of one after another.")


if __name__ == "__main__":
    from _results import recorded

    with recorded("folder", skip_flags=("-h", "--help")):
        main()
