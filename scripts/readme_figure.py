"""Redraw the README's before/after picture with the current default model.

    python scripts/readme_figure.py [--image examples/gopro_000017_building_crop.png] [--out docs/images/before_after.jpg]

Left: a real blurred photo (a GOPRO_Large frame, CC BY 4.0, see examples/ATTRIBUTION.md); right:
`DeblurGAN.from_pretrained(DEFAULT_MODEL).deblur(photo)`, at the photo's own pixels (no resampling).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    from deblurgan_hf import DEFAULT_MODEL, DeblurGAN

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=str(REPO / "examples" / "gopro_000017_building_crop.png"))
    parser.add_argument("--out", default=str(REPO / "docs" / "images" / "before_after.jpg"))
    parser.add_argument("--model", default=DEFAULT_MODEL)
    args = parser.parse_args(argv)

    blurred = Image.open(args.image).convert("RGB")
    sharp = DeblurGAN.from_pretrained(args.model).deblur(blurred, precision="fp32")
    gap = 8
    figure = Image.new("RGB", (blurred.width * 2 + gap, blurred.height), "white")
    figure.paste(blurred, (0, 0))
    figure.paste(sharp, (blurred.width + gap, 0))
    draw = ImageDraw.Draw(figure)
    for x, label in ((8, "blurred photo"), (blurred.width + gap + 8, f"deblurred: {Path(args.model).name}")):
        draw.rectangle((x - 4, 6, x + 7 * len(label) + 4, 24), fill="black")
        draw.text((x, 9), label, fill="white")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # JPEG at high quality: a tenth of the PNG's size, and far finer than the blur being removed.
    figure.save(out, quality=92, subsampling=0)
    print(f"wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
