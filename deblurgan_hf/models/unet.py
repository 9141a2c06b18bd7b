"""U-Net generator with residual blocks: a convolutional encoder-decoder with skip connections."""

from __future__ import annotations

import torch
import torch.nn as nn

from .layers import crop_to, get_act_layer, get_norm_layer, norm_has_shift, pad_to_multiple

__all__ = ["ResBlock", "UNetGenerator"]


class ResBlock(nn.Module):
    """conv3x3-norm-act-conv3x3-norm plus identity.

    Args:
        channels: input and output channels.
        norm_layer: norm class.
        act_layer: activation class.
    """

    def __init__(self, channels: int, norm_layer: type[nn.Module], act_layer: type[nn.Module]):
        super().__init__()
        bias = not norm_has_shift(norm_layer)
        self.block = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=bias),
            norm_layer(channels),
            act_layer(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=bias),
            norm_layer(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class UNetGenerator(nn.Module):
    """Residual U-Net: output = clamp(x + net(x), 0, 1) for (N, 3, H, W) in [0, 1] of any size.

    Each encoder level runs ``blocks_per_level`` ResBlocks then a stride-2 conv doubling the
    channels; each decoder level upsamples (bilinear resize + 3x3 conv, no checkerboard),
    concatenates the encoder skip, fuses with a 1x1 conv and runs ResBlocks.

    Args:
        in_channels: image channels.
        width: channels at full resolution; doubled per level.
        depth: number of 2x downsamplings.
        blocks_per_level: ResBlocks per encoder and per decoder level.
        middle_blocks: ResBlocks at the bottleneck.
        norm_layer: "instance", "batch", "layer", "none", or a class.
        act_layer: "relu", "leaky_relu", "gelu", "silu", or a class.
    """

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 32,
        depth: int = 3,
        blocks_per_level: int = 2,
        middle_blocks: int = 2,
        norm_layer: str | type[nn.Module] = "instance",
        act_layer: str | type[nn.Module] = "relu",
    ):
        super().__init__()
        norm = get_norm_layer(norm_layer)
        act = get_act_layer(act_layer)
        self.size_multiple = 2**depth
        # InstanceNorm needs more than one pixel at the bottleneck.
        self.min_size = 2 * self.size_multiple
        self.intro = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), act())
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        ch = width
        for _ in range(depth):
            self.encoders.append(nn.Sequential(*[ResBlock(ch, norm, act) for _ in range(blocks_per_level)]))
            self.downs.append(nn.Sequential(nn.Conv2d(ch, 2 * ch, 3, stride=2, padding=1), act()))
            ch *= 2
        self.middle = nn.Sequential(*[ResBlock(ch, norm, act) for _ in range(middle_blocks)])
        self.ups, self.fuses, self.decoders = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for _ in range(depth):
            self.ups.append(
                nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                    nn.Conv2d(ch, ch // 2, 3, padding=1),
                    act(),
                )
            )
            ch //= 2
            self.fuses.append(nn.Conv2d(2 * ch, ch, 1))
            self.decoders.append(nn.Sequential(*[ResBlock(ch, norm, act) for _ in range(blocks_per_level)]))
        self.out_conv = nn.Conv2d(width, in_channels, 3, padding=1)
        # Start near the identity: a full-size random residual would first have to be unlearned.
        with torch.no_grad():
            self.out_conv.weight.mul_(0.1)
            self.out_conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inp, size = pad_to_multiple(x, self.size_multiple, self.min_size)
        h = self.intro(inp)
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            h = enc(h)
            skips.append(h)
            h = down(h)
        h = self.middle(h)
        for up, fuse, dec, skip in zip(self.ups, self.fuses, self.decoders, reversed(skips)):
            h = dec(fuse(torch.cat([up(h), skip], dim=1)))
        out = inp + self.out_conv(h)
        return crop_to(out, size).clamp(0.0, 1.0)
