"""Data benchmarks: synthetic-pair throughput, and blurred-vs-sharp PSNR of real and synthetic blur.

    python benchmarks/data.py speed [--crops 128 256] [--items 16] [--workers 0]
    python benchmarks/data.py psnr [--sets gopro kodak24 urban100] [--limit 20] [--scale 1.0]

``speed``: training items per second from ``build_train_dataset`` on urban100 (PNG decode, crop with
context, blur synthesis, flips) for each blur mode, in one process with one torch thread (as inside a
DataLoader worker), or with ``--workers`` DataLoader processes; two epochs (cold, then cached decode).
``psnr``: PSNR (dB, uint8) of the real GoPro pairs in ../shared/data/gopro_real/{train,val}, and of the
default trajectory blur (seed = image index) applied to real sharp photos, at full size by default.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"

from deblurgan_hf.blur import BlurSynthesizer  # noqa: E402
from deblurgan_hf.data import build_train_dataset, image_to_tensor  # noqa: E402
from deblurgan_hf.metrics import psnr_torch  # noqa: E402


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of ``a`` against ``b``, (3, H, W) in [0, 1], on uint8 levels."""
    return float(psnr_torch(a[None], b[None]))


def load(path: Path, scale: float) -> torch.Tensor:
    im = Image.open(path).convert("RGB")
    if scale != 1.0:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.BICUBIC)
    return image_to_tensor(im)


def summary(name: str, values: list[float]) -> str:
    v = np.array(values)
    listed = " ".join(f"{x:.2f}" for x in v)
    return f"| {name} | {len(v)} | {v.min():.2f} | {v.mean():.2f} | {v.max():.2f} | {listed} |"


def run_psnr(args) -> None:
    torch.set_num_threads(args.threads)
    print(f"blurred-vs-sharp PSNR (dB), scale {args.scale}; synthetic: BlurSynthesizer('trajectory') defaults, seed = index\n")
    print("| pairs | n | min | mean | max | values |\n|---|---|---|---|---|---|")
    real_all = []
    for split in ("train", "val"):
        values = []
        for f in sorted((DATA / "gopro_real" / split / "blur").glob("*.png")):
            values.append(psnr(load(f, args.scale), load(DATA / "gopro_real" / split / "sharp" / f.name, args.scale)))
        real_all += values
        print(summary(f"real GoPro {split}", values), flush=True)
    print(summary("real GoPro train+val", real_all), flush=True)
    synth = BlurSynthesizer("trajectory")
    sets = {
        "gopro": sorted(DATA.glob("gopro_real/*/sharp/*.png")),
        "kodak24": sorted((DATA / "sharp" / "kodak24").glob("*.png")),
        "urban100": sorted((DATA / "sharp" / "urban100").glob("*.png")),
        "cbsd68": sorted((DATA / "sharp" / "cbsd68").glob("*.png")),
    }
    for name in args.sets:
        values = []
        for i, f in enumerate(sets[name][: args.limit]):
            sharp = load(f, args.scale)
            blurred, _ = synth(sharp, torch.Generator().manual_seed(i))
            values.append(psnr(blurred, sharp))
        label = "synthetic on GoPro sharp frames" if name == "gopro" else f"synthetic on {name}"
        print(summary(label, values), flush=True)


def run_speed(args) -> None:
    torch.set_num_threads(1)
    source = [f"sharp:{DATA / 'sharp' / 'urban100'}"]
    where = "1 process, 1 torch thread" if args.workers == 0 else f"DataLoader num_workers={args.workers}, batch 8"
    print(f"synthetic training pairs per second from urban100 (1024 px PNG photos), {args.items} items, {where}.\n"
          "epoch 0: PNG decoded; epoch 1: decoded images cached, new crops and blur. CPU ms = process time "
          "(the machine is shared, so wall time is noisy).\n")
    print("| mode | crop | epoch 0 pairs/s | epoch 0 CPU ms/pair | epoch 1 pairs/s | epoch 1 CPU ms/pair |\n|---|---|---|---|---|---|")
    for mode in ("trajectory", "kernel"):
        for crop in args.crops:
            ds = build_train_dataset(source, crop_size=crop, blur={"mode": mode}, seed=0)
            loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, range(args.items)), batch_size=8,
                                                 num_workers=args.workers, persistent_workers=args.workers > 0)
            cells = []
            for epoch in (0, 1):
                ds.set_epoch(epoch)
                w0, c0 = time.perf_counter(), time.process_time()
                for _ in loader:
                    pass
                wall, cpu = time.perf_counter() - w0, time.process_time() - c0
                cpu_cell = f"{1000 * cpu / args.items:.0f}" if args.workers == 0 else "-"
                cells += [f"{args.items / wall:.1f}", cpu_cell]
            print(f"| {mode} | {crop} | " + " | ".join(cells) + " |", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("speed", help="synthetic pairs per second")
    sp.add_argument("--crops", type=int, nargs="+", default=[128, 256])
    sp.add_argument("--items", type=int, default=16)
    sp.add_argument("--workers", type=int, default=0)
    pp = sub.add_parser("psnr", help="PSNR distributions of real and synthetic blur")
    pp.add_argument("--sets", nargs="+", default=["gopro", "kodak24", "urban100"],
                    choices=["gopro", "kodak24", "urban100", "cbsd68"])
    pp.add_argument("--limit", type=int, default=None, help="at most this many images per synthetic set")
    pp.add_argument("--scale", type=float, default=1.0, help="resize every image by this factor first")
    pp.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    run_speed(args) if args.command == "speed" else run_psnr(args)


if __name__ == "__main__":
    from _results import recorded

    with recorded(f"data-{sys.argv[1] if len(sys.argv) > 1 else 'help'}", skip_flags=("-h", "--help")):
        main()
