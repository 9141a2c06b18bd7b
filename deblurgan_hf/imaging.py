"""The conventions every module shares for images: file extensions, precisions, uint8 <-> float."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

__all__ = ["IMAGE_EXTENSIONS", "PRECISIONS", "to_uint8", "image_to_tensor", "tensor_to_image"]

# Lower-case suffixes of the image files folders are read from (Pillow decodes all of them).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Inference precisions; "auto" picks per model and device (see inference.resolve_precision).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def to_uint8(x: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Float values in [0, 1] -> uint8 levels 0..255: clipped, scaled by 255, rounded half to even.

    A tensor stays a tensor (same device and layout, detached), an array stays an array. The
    arithmetic happens in the input's float dtype, so results match the code this replaced.
    """
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            raise TypeError(f"to_uint8 takes float values in [0, 1], got a {x.dtype} tensor")
        return (x.detach().clamp(0, 1) * 255).round().to(torch.uint8)
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"to_uint8 takes float values in [0, 1], got a {x.dtype} array")
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)


def image_to_tensor(image: np.ndarray | Image.Image) -> torch.Tensor:
    """(H,W,3) uint8 array or PIL image -> (3,H,W) float32 in [0, 1]."""
    arr = np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else image
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an (H,W,3) uint8 array or a PIL image, got {arr.dtype} array of shape {arr.shape}")
    return torch.from_numpy(np.array(arr, dtype=np.float32)).div_(255).permute(2, 0, 1).contiguous()


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """(3,H,W) float in [0, 1] -> PIL RGB image (rounded to uint8)."""
    return Image.fromarray(to_uint8(tensor).permute(1, 2, 0).cpu().numpy())
