"""The training and validation datasets (torch), their builders, and the decode cache.

Value-range convention (the whole project): images inside are float32 torch tensors of shape (3,H,W)
or (N,3,H,W), RGB, values in [0, 1]. ``uint8``/PIL exist only at the edges (files, Hub datasets).

Determinism: a training item depends only on (seed, epoch, index): its crop, flips and synthetic blur
come from a ``torch.Generator`` seeded from that triple, so resumed runs and any number of DataLoader
workers see the same samples. Call ``dataset.set_epoch(epoch)`` before ``iter(loader)`` each epoch; the
epoch lives in shared memory, so persistent DataLoader workers see it too.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image as PILImage

from .._extras import needs
from ..blur import BlurSynthesizer
from ..imaging import image_to_tensor
from .sources import load_pairs
from .transforms import PairedTransform

__all__ = [
    "PairedTrainDataset",
    "PairedValDataset",
    "build_train_dataset",
    "build_val_dataset",
    "check_enough",
    "item_seed",
]


def _load_rgb(value: dict | PILImage.Image | str) -> np.ndarray:
    """Decode an Image-column value (``{"path", "bytes"}`` with decode=False) to an (H,W,3) uint8 array."""
    if isinstance(value, PILImage.Image):
        return np.asarray(value.convert("RGB"))
    if isinstance(value, dict):
        value = io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"]
    with PILImage.open(value) as im:
        return np.asarray(im.convert("RGB"))


def item_seed(*keys: int | str) -> int:
    """A 63-bit seed from a tuple of keys, identical in every process (unlike ``hash``).

    Integer-like keys (numpy, 0-d tensors) count as Python ints: ``ds[np.int64(3)]`` is ``ds[3]``.
    """
    keys = tuple(k if isinstance(k, str) else int(k) for k in keys)
    digest = hashlib.blake2b(repr(keys).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


@dataclass
class _Part:
    label: str
    ds: object  # datasets.Dataset with decode=False image columns
    paired: bool
    sizes: list[tuple[int, int]]  # (width, height) per row


def _image_sizes(ds, column: str) -> list[tuple[int, int]]:
    sizes = []
    for v in ds[column]:
        src = io.BytesIO(v["bytes"]) if v.get("bytes") else v["path"]
        with PILImage.open(src) as im:
            sizes.append(im.size)
    return sizes


def _load_part(source: str, split: str | None, verify: bool = True) -> _Part:
    with needs("train", "eval"):
        import datasets

    ds = load_pairs(source, split=split, verify=verify)
    paired = "blur" in ds.column_names
    for col in ("blur", "sharp") if paired else ("sharp",):
        ds = ds.cast_column(col, datasets.Image(decode=False))
    return _Part(os.fspath(source), ds, paired, _image_sizes(ds, "sharp"))


class _DecodeCache:
    """Per-process LRU of decoded uint8 images, bounded in bytes.

    PNG decoding of a 1024-pixel photo costs about as much as synthesising its blurred crop; the
    training sets here (a few hundred MB decoded) fit, so each worker decodes each image once (with
    ``persistent_workers=True``; otherwise once per epoch).
    """

    def __init__(self, max_bytes: int):
        self.max_bytes, self.bytes, self.items = max_bytes, 0, OrderedDict()

    def get(self, key: tuple, value: dict) -> np.ndarray:
        arr = self.items.get(key)
        if arr is not None:
            self.items.move_to_end(key)
            return arr
        arr = _load_rgb(value)
        if arr.nbytes <= self.max_bytes:
            self.items[key] = arr
            self.bytes += arr.nbytes
            while self.bytes > self.max_bytes:
                self.bytes -= self.items.popitem(last=False)[1].nbytes
        return arr

    def __getstate__(self) -> dict:  # workers start with an empty cache, not a pickled copy
        return {"max_bytes": self.max_bytes}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["max_bytes"])


class _SyntheticMixin:
    synth: BlurSynthesizer

    def _synthesize(self, sharp: np.ndarray, box: tuple[int, int, int, int] | None, generator: torch.Generator):
        """Blur a sharp (H,W,3) uint8 image, or the box (top, left, h, w) of it, as the full frame.

        The box is cut with a margin of context (so its blur does not see the crop border) and only the
        box is rendered, with motion relative to the full frame (diagonal and centre). Returns the
        blurred and sharp (3,h,w) tensors and the synthesizer's info (``kernel`` in kernel mode).
        """
        fh, fw = sharp.shape[:2]
        top, left, bh, bw = box if box is not None else (0, 0, fh, fw)
        diag = math.hypot(fh, fw)
        synth = self.synth.pick(generator)
        paths = synth.sample_paths(1, generator)
        m = synth.margin(diag, paths)
        t0, l0 = max(top - m, 0), max(left - m, 0)
        t1, l1 = min(top + bh + m, fh), min(left + bw + m, fw)
        region = image_to_tensor(sharp[t0:t1, l0:l1])
        centre = torch.tensor([(fw - 1) / 2 - l0, (fh - 1) / 2 - t0])
        out_box = (top - t0, left - l0, bh, bw)
        if synth.mode == "kernel":
            blurred, info = synth(region, generator, output_box=out_box)
        else:
            blurred, info = synth(region, generator, frame_diag=diag, center=centre, paths=paths, output_box=out_box)
        return blurred, region[:, top - t0 : top - t0 + bh, left - l0 : left - l0 + bw].contiguous(), info


class PairedTrainDataset(_SyntheticMixin, torch.utils.data.Dataset):
    """Random paired crops from real pairs and sharp-only sources (blur synthesised per item).

    An item depends only on (seed, epoch, index). With ``real_fraction`` the epoch has a fixed length
    (all rows of all sources) split into ``round(real_fraction * length)`` real slots and synthetic
    slots; each kind cycles through its rows, starting at an epoch-dependent offset.
    """

    def __init__(self, parts: list[_Part], *, crop_size: int, blur: dict | None, real_fraction: float | None, seed: int,
                 flips: bool = True, rot90: bool = True, cache_bytes: int = 1 << 30):
        self.parts, self.seed = parts, seed
        # in shared memory, so set_epoch reaches DataLoader workers even with persistent_workers=True
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self.cache = _DecodeCache(cache_bytes)
        self.crop_size = crop_size
        self.transform = PairedTransform(crop_size, flips=flips, rot90=rot90)
        self.synth = BlurSynthesizer.from_config(blur)
        self.real_rows = [(p, r) for p, part in enumerate(parts) if part.paired for r in range(len(part.ds))]
        self.synth_rows = [(p, r) for p, part in enumerate(parts) if not part.paired for r in range(len(part.ds))]
        self.length = len(self.real_rows) + len(self.synth_rows)
        if real_fraction is None:
            self.n_real = len(self.real_rows)
        else:
            if not 0 <= real_fraction <= 1:
                raise ValueError(f"real_fraction must be in [0, 1], got {real_fraction}")
            if real_fraction > 0 and not self.real_rows:
                raise ValueError(f"real_fraction={real_fraction} but no source has real pairs (blur + sharp)")
            if real_fraction < 1 and not self.synth_rows:
                raise ValueError(f"real_fraction={real_fraction} but no sharp-only source to synthesise from")
            self.n_real = int(round(real_fraction * self.length))
        self.real_fraction = real_fraction

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (new crops and blur, and the real/synthetic row offsets).

        Call it before ``iter(loader)``; workers (also persistent ones) read it from shared memory.
        """
        self._epoch.fill_(int(epoch))

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    def __len__(self) -> int:
        return self.length

    def row(self, index: int, epoch: int | None = None) -> tuple[int, int]:
        """(part, row) that item ``index`` of ``epoch`` (default: the current one) reads."""
        epoch = self.epoch if epoch is None else epoch
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of {self.length} items")
        if self.real_fraction is None:
            rows = self.real_rows + self.synth_rows
            return rows[index]
        if index < self.n_real:
            return self.real_rows[(index + epoch * self.n_real) % len(self.real_rows)]
        n_syn = self.length - self.n_real
        return self.synth_rows[(index - self.n_real + epoch * n_syn) % len(self.synth_rows)]

    def __getitem__(self, index: int) -> dict:
        index, epoch = int(index), self.epoch
        p, r = self.row(index, epoch)
        part = self.parts[p]
        g = torch.Generator().manual_seed(item_seed(self.seed, epoch, index))
        row = part.ds[r]
        sharp = self.cache.get((p, r, "sharp"), row["sharp"])
        h, w = sharp.shape[:2]
        top, left = self.transform.sample_crop(h, w, g)
        c = self.crop_size
        if part.paired:
            blur = self.cache.get((p, r, "blur"), row["blur"])
            if blur.shape != sharp.shape:
                raise ValueError(f"{part.label} row {r} ({row['name']}): blur {blur.shape} != sharp {sharp.shape}")
            b = image_to_tensor(blur[top : top + c, left : left + c])
            s = image_to_tensor(sharp[top : top + c, left : left + c])
        else:
            b, s, _ = self._synthesize(sharp, (top, left, c, c), g)
        geometry = self.transform.sample_geometry(g)
        return {"blur": self.transform.apply_geometry(b, geometry), "sharp": self.transform.apply_geometry(s, geometry),
                "name": row["name"]}


class PairedValDataset(_SyntheticMixin, torch.utils.data.Dataset):
    """Full images (or centre crops) of real pairs, and synthetic pairs fixed by (seed, index)."""

    def __init__(self, parts: list[_Part], *, blur: dict | None, seed: int, max_size: int | None, center_crop: int | None,
                 cache_bytes: int = 1 << 30):
        self.parts, self.seed, self.max_size, self.center_crop = parts, seed, max_size, center_crop
        self.cache = _DecodeCache(cache_bytes)
        self.synth = BlurSynthesizer.from_config(blur)
        self.rows = [(p, r) for p, part in enumerate(parts) for r in range(len(part.ds))]

    def __len__(self) -> int:
        return len(self.rows)

    def _resize(self, arr: np.ndarray) -> np.ndarray:
        h, w = arr.shape[:2]
        if self.max_size is None or max(h, w) <= self.max_size:
            return arr
        scale = self.max_size / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        return np.asarray(PILImage.fromarray(arr).resize(size, PILImage.Resampling.BICUBIC, reducing_gap=None))

    def _box(self, h: int, w: int) -> tuple[int, int, int, int] | None:
        c = self.center_crop
        if c is None:
            return None
        ch, cw = min(c, h), min(c, w)
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def _row(self, index: int) -> tuple[int, int, dict]:
        index = int(index)
        if not 0 <= index < len(self.rows):
            raise IndexError(f"index {index} out of range for a dataset of {len(self.rows)} items")
        p, r = self.rows[index]
        return p, r, self.parts[p].ds[r]

    def sharp_image(self, index: int) -> tuple[np.ndarray, str]:
        """The sharp (H,W,3) uint8 image of item ``index`` (after ``max_size``) and its name."""
        p, r, row = self._row(index)
        return self._resize(self.cache.get((p, r, "sharp"), row["sharp"])), row["name"]

    def pair(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str, dict]:
        """Item ``index`` as (blur, sharp, name, info): info is the synthesizer's (``kernel`` in
        kernel mode) for a synthetic pair, empty for a real one."""
        index = int(index)
        p, r, row = self._row(index)
        sharp, name = self.sharp_image(index)
        h, w = sharp.shape[:2]
        box = self._box(h, w)
        if self.parts[p].paired:
            blur = self._resize(self.cache.get((p, r, "blur"), row["blur"]))
            top, left, bh, bw = box or (0, 0, h, w)
            b = image_to_tensor(blur[top : top + bh, left : left + bw])
            s = image_to_tensor(sharp[top : top + bh, left : left + bw])
            return b, s, name, {}
        g = torch.Generator().manual_seed(item_seed(self.seed, "val", index))
        b, s, info = self._synthesize(sharp, box, g)
        return b, s, name, info

    def __getitem__(self, index: int) -> dict:
        b, s, name, _ = self.pair(index)
        return {"blur": b, "sharp": s, "name": name}


def _check_blur(blur: dict | None) -> None:
    if BlurSynthesizer.from_config(blur).shrinks:
        raise ValueError(f"blur {blur!r}: valid convolution shrinks the image, so crops would not pair up; "
                         "it is for evaluation (evaluation.PairSource), not for datasets")


def _build_parts(sources: list[str], split: str | None) -> list[_Part]:
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    if not sources:
        raise ValueError("no data sources given; pass e.g. ['sharp:../shared/data/sharp/urban100']")
    return [_load_part(s, split) for s in sources]


def build_train_dataset(
    sources: list[str],
    *,
    crop_size: int,
    blur: dict | None = None,
    real_fraction: float | None = None,
    seed: int = 0,
    min_size: int | None = None,
) -> torch.utils.data.Dataset:
    """The training dataset: random paired crops, synthetic blur for sharp-only sources.

    Args:
        sources: source strings (see module docstring); ``?split=`` selects hub/disk/gopro splits (default train).
        crop_size: side of the square training crops.
        blur: `BlurSynthesizer` config, e.g. ``{"mode": "trajectory"}`` or ``{"mode": "kernel", "size": 31}``.
        real_fraction: share of real pairs per epoch (DeblurGAN: 1/3); ``None``: every row once per epoch.
        seed: with the epoch and the index, fixes each item's crop, flips and blur.
        min_size: drop images whose shorter side is below this (a warning names them; must be >=
            crop_size); ``None``: an image smaller than the crop is an error.

    Returns:
        `PairedTrainDataset`; items ``{"blur": (3,c,c), "sharp": (3,c,c), "name": str}``, with ``set_epoch``.
    """
    if crop_size < 1:
        raise ValueError(f"crop_size must be >= 1, got {crop_size}")
    if min_size is not None and min_size < crop_size:
        raise ValueError(f"min_size ({min_size}) must be >= crop_size ({crop_size})")
    _check_blur(blur)  # bad blur settings fail here, before loading data
    parts = _build_parts(sources, None)
    limit = crop_size if min_size is None else min_size
    for part in parts:
        small = [i for i, (w, h) in enumerate(part.sizes) if min(w, h) < limit]
        if not small:
            continue
        names = [part.ds[i]["name"] for i in small]
        w, h = part.sizes[small[0]]
        if min_size is None:
            raise ValueError(f"{part.label}: image {names[0]!r} is {w}x{h}, smaller than crop_size {crop_size}"
                             f"{f' ({len(small)} such images)' if len(small) > 1 else ''}; lower crop_size or pass "
                             "min_size to skip small images")
        warnings.warn(f"{part.label}: skipping {len(small)} of {len(part.ds)} image(s) smaller than min_size "
                      f"{min_size}: {names[:5]}", stacklevel=2)
        small_set = set(small)
        keep = [i for i in range(len(part.ds)) if i not in small_set]
        part.ds = part.ds.select(keep)
        part.sizes = [part.sizes[i] for i in keep]
    parts = [p for p in parts if len(p.ds)]
    if not parts:
        raise ValueError(f"every image of {list(sources)} is smaller than min_size {min_size}")
    return PairedTrainDataset(parts, crop_size=crop_size, blur=blur, real_fraction=real_fraction, seed=seed)


def build_val_dataset(
    sources: list[str],
    *,
    blur: dict | None = None,
    seed: int = 0,
    max_size: int | None = None,
    center_crop: int | None = None,
) -> torch.utils.data.Dataset:
    """The validation dataset: every row once, synthetic pairs identical on every call for a seed.

    Args:
        sources: source strings; hub/disk/gopro default to the ``test`` split here (``?split=`` wins).
        blur: `BlurSynthesizer` config for sharp-only sources.
        seed: fixes the synthetic blur of each index.
        max_size: downscale (bicubic, antialiased, both images) so the longer side is at most this.
        center_crop: cut a centred square of this side (after ``max_size``); ``None``: full images.

    Returns:
        `PairedValDataset`; items ``{"blur": (3,h,w), "sharp": (3,h,w), "name": str}``.
    """
    _check_blur(blur)
    if max_size is not None and max_size < 1:
        raise ValueError(f"max_size must be >= 1, got {max_size}")
    if center_crop is not None and center_crop < 1:
        raise ValueError(f"center_crop must be >= 1, got {center_crop}")
    parts = _build_parts(sources, "test")
    return PairedValDataset(parts, blur=blur, seed=seed, max_size=max_size, center_crop=center_crop)


def check_enough(dataset: torch.utils.data.Dataset, batch_size: int) -> None:
    """Raise ValueError if ``dataset`` has fewer items than one batch (call before training starts)."""
    n = len(dataset)
    if n < batch_size:
        raise ValueError(f"dataset has {n} item(s), fewer than one batch of {batch_size}; add data or lower the batch size")
