"""Coarse-to-fine multi-scale generator (after Nah et al., "Deep Multi-scale CNN for Dynamic Scene
Deblurring", CVPR 2017): one residual sub-network per pyramid level, coarsest first.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import crop_to, get_act_layer, pad_to_multiple

__all__ = ["ScaleLevel", "MultiScaleGenerator"]


class _PlainResBlock(nn.Module):
    """conv-act-conv plus identity, no norm (as in Nah et al.)."""

    def __init__(self, channels: int, kernel_size: int, act_layer: type[nn.Module]):
        super().__init__()
        pad = kernel_size // 2
        self.block = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size, padding=pad),
            act_layer(),
            nn.Conv2d(channels, channels, kernel_size, padding=pad),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ScaleLevel(nn.Module):
    """One pyramid level: predicts a residual for the blurred image at its scale.

    Args:
        in_channels: input channels (the image, plus the upsampled coarser output except at the coarsest level).
        out_channels: image channels.
        width: feature channels.
        n_blocks: residual blocks.
        kernel_size: conv kernel size.
        act_layer: activation class.
    """

    def __init__(self, in_channels: int, out_channels: int, width: int, n_blocks: int, kernel_size: int, act_layer):
        super().__init__()
        pad = kernel_size // 2
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size, padding=pad),
            act_layer(),
            *[_PlainResBlock(width, kernel_size, act_layer) for _ in range(n_blocks)],
        )
        self.out_conv = nn.Conv2d(width, out_channels, kernel_size, padding=pad)
        # Start near the identity: a full-size random residual would first have to be unlearned.
        with torch.no_grad():
            self.out_conv.weight.mul_(0.1)
            self.out_conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_conv(self.body(x))


class MultiScaleGenerator(nn.Module):
    """Coarse-to-fine generator over an image pyramid (scales 1/4, 1/2, 1 with ``n_levels=3``).

    Level k gets the blurred image at its scale, concatenated (except at the coarsest level)
    with the 2x-upsampled output of level k-1, and returns clamp(blurred + residual, 0, 1).
    ``forward`` returns every level's output, coarse to fine; the last one is the result.
    Use :meth:`pyramid` on the sharp image to get matching targets for a multi-scale loss.

    Args:
        in_channels: image channels.
        width: feature channels of each level.
        n_blocks: residual blocks per level.
        kernel_size: conv kernel size (Nah et al. used 5).
        n_levels: pyramid levels (each halves the resolution).
        act_layer: "relu", "leaky_relu", "gelu", "silu", or a class.
    """

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 32,
        n_blocks: int = 4,
        kernel_size: int = 3,
        n_levels: int = 3,
        act_layer: str | type[nn.Module] = "relu",
    ):
        super().__init__()
        if n_levels < 1:
            raise ValueError(f"multiscale: n_levels must be >= 1, got {n_levels}")
        if kernel_size % 2 == 0:
            raise ValueError(f"multiscale: kernel_size must be odd, got {kernel_size}")
        act = get_act_layer(act_layer)
        self.n_levels = n_levels
        self.size_multiple = 2 ** (n_levels - 1)
        self.levels = nn.ModuleList(
            ScaleLevel(in_channels * (1 if i == 0 else 2), in_channels, width, n_blocks, kernel_size, act)
            for i in range(n_levels)
        )

    def _sizes(self, size: tuple[int, int]) -> list[tuple[int, int]]:
        """Valid (unpadded) size of each level, coarse to fine."""
        h, w = size
        return [(-(-h // 2**k), -(-w // 2**k)) for k in reversed(range(self.n_levels))]

    def _padded_pyramid(self, x: torch.Tensor) -> tuple[list[torch.Tensor], tuple[int, int]]:
        x, size = pad_to_multiple(x, self.size_multiple)
        pyr = [x]
        for _ in range(self.n_levels - 1):
            pyr.append(F.avg_pool2d(pyr[-1], 2))  # exact 2x box downscale: sizes are multiples of 2
        return pyr[::-1], size

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The image at every level's scale, coarse to fine, cropped like ``forward``'s outputs."""
        pyr, size = self._padded_pyramid(x)
        return [crop_to(p, s) for p, s in zip(pyr, self._sizes(size))]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        pyr, size = self._padded_pyramid(x)
        outs: list[torch.Tensor] = []
        for level, blurred in zip(self.levels, pyr):
            if outs:
                prev = F.interpolate(outs[-1], scale_factor=2, mode="bilinear", align_corners=False)
                feat = torch.cat([blurred, prev], dim=1)
            else:
                feat = blurred
            outs.append((blurred + level(feat)).clamp(0.0, 1.0))
        return [crop_to(o, s) for o, s in zip(outs, self._sizes(size))]
