"""Save a PNG grid of what a model learns from: random kernels and sharp/blurred training crops.

    python scripts/visualize_blur.py --out blur_grid.png
    python scripts/visualize_blur.py --source sharp:../shared/data/sharp/cbsd68 --crop 128 --n 8 \\
        --blur '{"length": [0.04, 0.08], "space": "linear"}' --real ../shared/data/gopro_real/train

Rows: DeblurGAN kernels (kernel mode, brightest tap white); then for each blur mode, ``n`` training
items from `build_train_dataset` (exactly what training sees) as sharp | blurred pairs; then, with
``--real``, crops of real GoPro pairs for comparison. Each row is labelled.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]

from deblurgan_hf.blur import BlurSynthesizer  # noqa: E402
from deblurgan_hf.data import build_train_dataset, tensor_to_image  # noqa: E402
from deblurgan_hf.files import atomic_write  # noqa: E402

DEFAULT_SOURCE = f"sharp:{REPO.parent / 'shared' / 'data' / 'sharp' / 'urban100'}"
LABEL_H = 18
GAP = 4


def kernel_tiles(n: int, size: int, tile: int, seed: int, params: dict) -> list[torch.Tensor]:
    synth = BlurSynthesizer("kernel", **{"size": 31, **params})
    _, info = synth(torch.zeros(n, 3, 64, 64), torch.Generator().manual_seed(seed))
    tiles = []
    for k in info["kernel"]:
        k = (k / k.max()).expand(3, -1, -1)
        tiles.append(F.interpolate(k[None], size=(tile, tile), mode="nearest")[0])
    return tiles


def item_tiles(source: list[str], mode: str, params: dict, n: int, crop: int, seed: int) -> list[torch.Tensor]:
    ds = build_train_dataset(source, crop_size=crop, blur={"mode": mode, **params}, seed=seed)
    step = max(1, len(ds) // n)
    tiles = []
    for i in range(0, step * n, step):
        item = ds[i % len(ds)]
        tiles += [item["sharp"], item["blur"]]
    return tiles


def compose(rows: list[tuple[str, list[torch.Tensor]]], tile: int) -> Image.Image:
    width = max(len(t) for _, t in rows) * (tile + GAP) + GAP
    height = len(rows) * (tile + LABEL_H + GAP) + GAP
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    y = GAP
    for label, tiles in rows:
        draw.text((GAP, y + 3), label, fill=(0, 0, 0))
        y += LABEL_H
        for j, t in enumerate(tiles):
            canvas.paste(tensor_to_image(t), (GAP + j * (tile + GAP), y))
        y += tile + GAP
    return canvas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", nargs="+", default=[DEFAULT_SOURCE], help="sharp-only source(s) to blur")
    parser.add_argument("--modes", nargs="+", default=["trajectory", "kernel"], choices=BlurSynthesizer.MODES)
    parser.add_argument("--blur", type=json.loads, default={}, help="JSON dict of blur parameters for every mode")
    parser.add_argument("--kernel", type=json.loads, default={}, help="JSON dict of kernel-mode parameters")
    parser.add_argument("--real", default=None, help="a real paired source to show beside (e.g. gopro_real/train)")
    parser.add_argument("--n", type=int, default=6, help="pairs (and kernels) per row")
    parser.add_argument("--crop", type=int, default=192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("blur_grid.png"))
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    rows = [(f"DeblurGAN kernels (kernel mode, {args.kernel or 'defaults'})",
             kernel_tiles(2 * args.n, 31, args.crop, args.seed, args.kernel))]
    for mode in args.modes:
        params = {**args.blur, **(args.kernel if mode == "kernel" else {})}
        params = {k: v for k, v in params.items() if mode == "trajectory" or k in BlurSynthesizer.KERNEL_KEYS}
        rows.append((f"{mode} blur: sharp | blurred  ({params or 'defaults'})",
                     item_tiles(args.source, mode, params, args.n, args.crop, args.seed)))
    if args.real:
        ds = build_train_dataset([args.real], crop_size=args.crop, seed=args.seed)
        tiles = []
        for i in range(min(args.n, len(ds))):
            tiles += [ds[i]["sharp"], ds[i]["blur"]]
        rows.append((f"real pairs ({args.real}): sharp | blurred", tiles))
    grid = compose(rows, args.crop)
    with atomic_write(args.out) as tmp:
        grid.save(tmp, format="PNG")
    print(f"saved {args.out} ({grid.width}x{grid.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
