"""Paired transforms: the same random crop, flips and rotation for both images of a pair."""

from __future__ import annotations

import torch

__all__ = ["PairedTransform"]


class PairedTransform:
    """The same random crop, flips and 90-degree rotation applied to every image of a pair.

    Args:
        crop_size: side of the square crop (``None``: no crop).
        flips: random horizontal and vertical flips.
        rot90: random rotation by a multiple of 90 degrees (only for square crops).
    """

    def __init__(self, crop_size: int | None, flips: bool = True, rot90: bool = True):
        if crop_size is not None and crop_size < 1:
            raise ValueError(f"crop_size must be >= 1, got {crop_size}")
        self.crop_size, self.flips, self.rot90 = crop_size, flips, rot90

    def __repr__(self) -> str:
        return f"PairedTransform(crop_size={self.crop_size}, flips={self.flips}, rot90={self.rot90})"

    def sample_crop(self, height: int, width: int, generator: torch.Generator | None) -> tuple[int, int]:
        """Top-left corner (top, left) of a random crop of an image of this size."""
        c = self.crop_size
        if c is None:
            return 0, 0
        if height < c or width < c:
            raise ValueError(f"image {width}x{height} is smaller than crop_size {c}")
        top = int(torch.randint(0, height - c + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - c + 1, (1,), generator=generator))
        return top, left

    def sample_geometry(self, generator: torch.Generator | None) -> tuple[bool, bool, int]:
        draws = torch.randint(0, 4, (3,), generator=generator).tolist()  # always drawn: fixed stream
        return (self.flips and draws[0] % 2 == 1, self.flips and draws[1] % 2 == 1,
                draws[2] if self.rot90 and self.crop_size is not None else 0)

    @staticmethod
    def apply_geometry(image: torch.Tensor, geometry: tuple[bool, bool, int]) -> torch.Tensor:
        hflip, vflip, rot = geometry
        if hflip:
            image = image.flip(-1)
        if vflip:
            image = image.flip(-2)
        if rot:
            image = torch.rot90(image, rot, (-2, -1))
        return image.contiguous()

    def __call__(self, *images: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """Transform (3,H,W) images of the same size identically."""
        h, w = images[0].shape[-2:]
        for im in images[1:]:
            if im.shape[-2:] != (h, w):
                raise ValueError(f"paired images differ in size: {tuple(images[0].shape)} vs {tuple(im.shape)}")
        top, left = self.sample_crop(h, w, generator)
        geometry = self.sample_geometry(generator)
        c = self.crop_size
        out = []
        for im in images:
            if c is not None:
                im = im[..., top : top + c, left : left + c]
            out.append(self.apply_geometry(im, geometry))
        return tuple(out)
