"""Paired deblurring data, in three parts (the layout of BasicSR's ``data/``):

- `sources`: the source-string grammar (``KIND:LOCATION?key=value``), image verification and the
  loaders (`load_pairs` -> a ``datasets.Dataset`` with ``blur`` / ``sharp`` / ``name`` columns);
- `transforms`: `PairedTransform` (the same crop, flips and rotation for both images of a pair);
- `datasets`: the torch training and validation datasets, their builders and the decode cache.

Every public name is importable from ``deblurgan_hf.data`` itself.

Value-range convention (the whole project): images inside are float32 torch tensors of shape (3,H,W)
or (N,3,H,W), RGB, values in [0, 1]. ``uint8``/PIL exist only at the edges (files, Hub datasets).
"""

from ..imaging import IMAGE_EXTENSIONS, image_to_tensor, tensor_to_image
from .datasets import (
    PairedTrainDataset,
    PairedValDataset,
    build_train_dataset,
    build_val_dataset,
    check_enough,
    item_seed,
)
from .sources import GOPRO_BLUR_DIRS, SOURCE_KINDS, SourceSpec, detect_kind, load_pairs, parse_source
from .transforms import PairedTransform

__all__ = [
    "IMAGE_EXTENSIONS",
    "SOURCE_KINDS",
    "GOPRO_BLUR_DIRS",
    "SourceSpec",
    "parse_source",
    "detect_kind",
    "load_pairs",
    "PairedTransform",
    "PairedTrainDataset",
    "PairedValDataset",
    "build_train_dataset",
    "build_val_dataset",
    "check_enough",
    "item_seed",
    "image_to_tensor",
    "tensor_to_image",
]
