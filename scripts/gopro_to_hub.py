"""Turn GOPRO_Large folders into a Hugging Face dataset (train/test splits) with a dataset card.

    python scripts/gopro_to_hub.py /data/GOPRO_Large --save_to_disk data/gopro_hf
    python scripts/gopro_to_hub.py /data/GOPRO_Large --push_to_hub user/gopro-large [--private]

Columns: ``blur`` and ``sharp`` (Image, PNG bytes embedded) and ``name`` (``<SEQ>-<frame>``). ``--blur``
picks GOPRO_Large's ``blur`` folder (sRGB average of 7-13 frames; the one papers report on; default)
or ``blur_gamma`` (averaged in linear light). Load the result with
``deblurgan_hf.data.load_pairs("hub:user/gopro-large?split=test")`` or ``"disk:data/gopro_hf?split=test"``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deblurgan_hf.data import GOPRO_BLUR_DIRS, load_pairs
from deblurgan_hf.files import atomic_write

CITATION = """@InProceedings{Nah_2017_CVPR,
  author    = {Nah, Seungjun and Kim, Tae Hyun and Lee, Kyoung Mu},
  title     = {Deep Multi-Scale Convolutional Neural Network for Dynamic Scene Deblurring},
  booktitle = {Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  month     = {July},
  year      = {2017}
}"""


def dataset_card(splits: dict[str, int], blur: str, repo_id: str = "USER/NAME") -> str:
    """The README.md (dataset card) of the converted dataset."""
    rows = "\n".join(f"| {name} | {n} |" for name, n in splits.items())
    how = ("the sRGB values of 7 to 13 consecutive 240-fps frames averaged directly (the `blur` folder, "
           "which published results use)" if blur == "blur" else
           "7 to 13 consecutive 240-fps frames averaged in linear light (the `blur_gamma` folder)")
    return f"""---
license: cc-by-4.0
task_categories:
- image-to-image
tags:
- deblurring
- motion-blur
- gopro
pretty_name: GOPRO_Large ({blur})
---

# GOPRO_Large ({blur})

Paired blurred/sharp 1280x720 frames from the GOPRO_Large dataset of Nah, Kim and Lee (CVPR 2017),
converted to a Hugging Face dataset by `scripts/gopro_to_hub.py` of deblurgan-hf.
Each blurred frame is {how}; `sharp` is the middle frame.

| split | pairs |
|---|---|
{rows}

Columns: `blur` (image), `sharp` (image), `name` (`<sequence>-<frame>`).

```python
from deblurgan_hf.data import load_pairs
test = load_pairs("hub:{repo_id}?split=test")
```

## License

GOPRO_Large is released by its authors under the Creative Commons Attribution 4.0 International
license (CC BY 4.0). Attribute the authors wherever its images appear.

## Citation

```bibtex
{CITATION}
```
"""


def convert(root: Path, blur: str = "blur", splits: tuple[str, ...] = ("train", "test"), verify: bool = True):
    """GOPRO_Large folder -> ``datasets.DatasetDict`` (splits that exist; at least one)."""
    import datasets

    found = [s for s in splits if (root / s).is_dir()]
    if not found:
        raise FileNotFoundError(f"{root} has none of the split folders {list(splits)} (found {sorted(p.name for p in root.iterdir())})"
                                if root.is_dir() else f"GOPRO_Large folder {root} not found")
    return datasets.DatasetDict({s: load_pairs(f"gopro:{root}?split={s}&blur={blur}", verify=verify) for s in found})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="GOPRO_Large folder (with train/ and/or test/)")
    parser.add_argument("--blur", choices=GOPRO_BLUR_DIRS, default="blur", help="which blurred folder (default: blur)")
    out = parser.add_mutually_exclusive_group(required=True)
    out.add_argument("--push_to_hub", metavar="USER/NAME", help="push to this Hub dataset repo")
    out.add_argument("--save_to_disk", metavar="DIR", type=Path, help="save with DatasetDict.save_to_disk")
    parser.add_argument("--private", action="store_true", help="create the Hub repo private")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --save_to_disk folder")
    parser.add_argument("--no_verify", action="store_true", help="skip opening every image before converting")
    args = parser.parse_args(argv)

    dd = convert(args.root, args.blur, verify=not args.no_verify)
    card = dataset_card({s: len(d) for s, d in dd.items()}, args.blur, args.push_to_hub or "USER/NAME")
    if args.save_to_disk:
        dest = args.save_to_disk
        if dest.exists() and not args.overwrite:
            parser.error(f"{dest} exists; pass --overwrite to replace it")
        with atomic_write(dest) as tmp:  # never a half-written dataset
            dd.save_to_disk(str(tmp))  # embeds the PNG bytes: the folder is self-contained
            (tmp / "README.md").write_text(card)
        print(f"saved {', '.join(f'{s}: {len(d)} pairs' for s, d in dd.items())} to {dest}")
    else:
        from huggingface_hub import DatasetCard

        dd.push_to_hub(args.push_to_hub, private=args.private)
        # push_to_hub wrote a README whose YAML lists the configs, splits and features: keep those
        pushed = DatasetCard.load(args.push_to_hub, repo_type="dataset")
        new = DatasetCard(card)
        for key in ("configs", "dataset_info"):
            if pushed.data.get(key) is not None:
                new.data[key] = pushed.data.get(key)
        new.push_to_hub(args.push_to_hub, repo_type="dataset")
        print(f"pushed {', '.join(f'{s}: {len(d)} pairs' for s, d in dd.items())} to {args.push_to_hub}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
