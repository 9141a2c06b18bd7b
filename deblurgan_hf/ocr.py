"""Task-level check: does deblurring help a downstream reader? Tesseract's character error rate
(CER) on rendered text, sharp, blurred with the project's synthesis, and deblurred.

DeblurGAN judged deblurring by object detection on the result; text is the everyday case (a
photographed page, a sign). Pages of text are rendered with PIL, each blurred with its own
seeded DeblurGAN trajectory kernel (`BlurSynthesizer("kernel")`), and read by Tesseract
(Debian package `tesseract-ocr`) through `pytesseract`.

    python -m deblurgan_hf.ocr --model deblurgan_hf/pretrained/nafnet-motion-s
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ._extras import needs
from .files import atomic_write_bytes
from .imaging import PRECISIONS, to_uint8

__all__ = ["DEFAULT_LINES", "cer", "levenshtein", "render_text", "blur_page", "read_text", "ocr_check", "main"]

# Pangrams (every letter), digits and punctuation, plain words Tesseract's dictionary knows.
DEFAULT_LINES: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "Pack my box with five dozen liquor jugs: 1234567890.",
    "Sphinx of black quartz, judge my vow!",
    "How vexingly quick daft zebras jump (42 times).",
    "Invoice 2024-118 was paid on March 7 at 09:45.",
)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions), two-row dynamic programming.

    Written here because no installed library provides it (jiwer / rapidfuzz are not
    dependencies, and evaluate's `cer` module needs jiwer and a Hub download).
    """
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _normalise(text: str) -> str:
    # Line breaks and blank lines are layout, not characters read: compare single-spaced text.
    return " ".join(text.split())


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate: edit distance / reference length, on whitespace-normalised text."""
    ref, hyp = _normalise(reference), _normalise(hypothesis)
    if not ref:
        raise ValueError("cer needs a non-empty reference text")
    return levenshtein(ref, hyp) / len(ref)


def _font(font: str | Path | None, size: int) -> ImageFont.FreeTypeFont:
    if font is None:
        # Pillow's bundled scalable font (Aileron); Tesseract reads it as well as DejaVu Sans, no package needed.
        return ImageFont.load_default(size=size)
    path = Path(font)
    if not path.is_file():
        raise FileNotFoundError(f"font file {path} does not exist (give a .ttf/.otf path, or None for Pillow's default)")
    return ImageFont.truetype(str(path), size=size)


def render_text(lines: tuple[str, ...] | list[str], *, font: str | Path | None = None, font_size: int = 18) -> Image.Image:
    """Black text on white, one line per entry, with a margin of one text height.

    Args:
        lines: the text lines.
        font: a TrueType/OpenType file, or None for Pillow's bundled font.
        font_size: text height in pixels.
    """
    if not lines or not any(line.strip() for line in lines):
        raise ValueError("render_text needs at least one non-empty line")
    f = _font(font, font_size)
    pitch = round(font_size * 1.6)
    width = max(int(np.ceil(f.getlength(line))) for line in lines) + 2 * font_size
    height = pitch * len(lines) + 2 * font_size
    page = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(page)
    for i, line in enumerate(lines):
        draw.text((font_size, font_size + i * pitch), line, fill="black", font=f)
    return page


def blur_page(page: Image.Image, *, seed: int, kernel_size: int = 21, noise: float = 0.0) -> tuple[Image.Image, np.ndarray]:
    """Blur a page with one seeded DeblurGAN trajectory kernel (full exposure, length 0.6-1 x size).

    Returns:
        The blurred page (uint8 RGB, same size) and the kernel.
    """
    import torch

    from .blur import BlurSynthesizer

    synth = BlurSynthesizer("kernel", size=kernel_size, max_len=(0.6 * kernel_size, float(kernel_size)),
                            exposure=(1.0,), noise=(noise, noise))
    x = torch.from_numpy(np.asarray(page.convert("RGB")).copy()).permute(2, 0, 1).float().div(255.0)
    blurred, info = synth(x, torch.Generator().manual_seed(seed))
    arr = to_uint8(blurred).permute(1, 2, 0).numpy()
    return Image.fromarray(arr), info["kernel"][0].numpy()


def read_text(image: Image.Image, *, psm: int = 6) -> str:
    """Tesseract's reading of an image (English; page segmentation mode 6: one block of text)."""
    with needs("eval"):
        import pytesseract

    if shutil.which(pytesseract.pytesseract.tesseract_cmd) is None:
        raise FileNotFoundError("the `tesseract` program is not installed: apt-get install tesseract-ocr")
    return pytesseract.image_to_string(image, lang="eng", config=f"--psm {psm}")


def ocr_check(
    model: Any = None,
    *,
    lines: tuple[str, ...] | list[str] = DEFAULT_LINES,
    pages: int = 3,
    seed: int = 0,
    font: str | Path | None = None,
    font_size: int = 18,
    kernel_size: int = 21,
    noise: float = 0.0,
    tile: int | None = None,
    precision: str = "auto",
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Tesseract CER on sharp, blurred and (given a model) deblurred renderings of `lines`.

    Each of `pages` copies of the text is blurred with its own kernel (seeds `seed`, `seed + 1`,
    ...); a CER is total edits / total reference characters over the pages.

    Args:
        model: a `DeblurGAN`, a path or Hub id to load one from, or None (no deblurred column).
        lines: text lines of each page.
        pages: pages, each with a different blur kernel.
        seed: seed of the first page's kernel.
        font: TrueType file, or None for Pillow's bundled font.
        font_size: text height in pixels (blur is in pixels: smaller text suffers more).
        kernel_size: blur kernel side in pixels.
        noise: Gaussian noise std added after blurring (0..1 scale).
        tile, precision: passed to `model.deblur`.
        out_dir: if given, save each page's images (PNG) and `ocr.json` there.

    Returns:
        `{"cer": {"sharp": .., "blurred": .., "deblurred": ..}, "per_page": [...], "texts": {...}, ...}`.
    """
    if pages < 1:
        raise ValueError(f"pages must be >= 1, got {pages}")
    if isinstance(model, (str, Path)):
        from . import DeblurGAN

        model = DeblurGAN.from_pretrained(str(model))
    reference = "\n".join(lines)
    sharp = render_text(lines, font=font, font_size=font_size)
    sharp_text = read_text(sharp)  # the same sharp page every time: read it once
    conditions = ["sharp", "blurred"] + (["deblurred"] if model is not None else [])
    edits = dict.fromkeys(conditions, 0)
    per_page, texts = [], {c: [] for c in conditions}
    n_ref = len(_normalise(reference))
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    for page in range(pages):
        blurred, _ = blur_page(sharp, seed=seed + page, kernel_size=kernel_size, noise=noise)
        images = {"sharp": sharp, "blurred": blurred}
        if model is not None:
            images["deblurred"] = model.deblur(blurred, tile=tile, precision=precision)
        row = {"page": page, "seed": seed + page}
        for c in conditions:
            text = sharp_text if c == "sharp" else read_text(images[c])
            texts[c].append(text)
            e = levenshtein(_normalise(reference), _normalise(text))
            edits[c] += e
            row[c] = e / n_ref
            if out is not None:
                atomic_write_bytes(out / f"page{page}_{c}.png", _png(images[c]))
        per_page.append(row)
    result = {
        "cer": {c: edits[c] / (n_ref * pages) for c in conditions},
        "per_page": per_page,
        "texts": texts,
        "reference": reference,
        "settings": {"pages": pages, "seed": seed, "font": "Pillow default (Aileron)" if font is None else str(font),
                     "font_size": font_size, "kernel_size": kernel_size, "noise": noise},
    }
    if out is not None:
        atomic_write_bytes(out / "ocr.json", json.dumps(result, indent=2).encode())
    return result


def main(argv: list[str] | None = None) -> int:
    """`deblurgan evaluate-ocr`-style entry point; prints the three error rates as a table."""
    parser = argparse.ArgumentParser(prog="deblurgan evaluate-ocr", description="Tesseract CER on sharp, blurred and deblurred text.")
    parser.add_argument("--model", default=None, help="save_pretrained folder or Hub id (default: no model, sharp and blurred only)")
    parser.add_argument("--pages", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--font", default=None, help="TrueType font file (default: Pillow's bundled font)")
    parser.add_argument("--font-size", type=int, default=18)
    parser.add_argument("--kernel-size", type=int, default=21)
    parser.add_argument("--noise", type=float, default=0.0)
    parser.add_argument("--precision", choices=PRECISIONS, default="auto")
    parser.add_argument("--out", default=None, help="save the page images and ocr.json here")
    args = parser.parse_args(argv)
    try:
        result = ocr_check(args.model, pages=args.pages, seed=args.seed, font=args.font, font_size=args.font_size,
                           kernel_size=args.kernel_size, noise=args.noise, precision=args.precision, out_dir=args.out)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("| image | Tesseract CER |\n|---|---:|")
    for c, v in result["cer"].items():
        print(f"| {c} | {v:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
