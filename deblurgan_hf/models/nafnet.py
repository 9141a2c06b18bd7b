"""NAFNet-style U-Net generator (Chen et al., "Simple Baselines for Image Restoration", ECCV 2022).

Nonlinear-activation-free blocks: LayerNorm, 1x1 and depthwise 3x3 convs, SimpleGate, simplified
channel attention and a gated FFN; stride-2 conv down, 1x1 conv + PixelShuffle up, skips by addition.
The project's CPU default: it runs in bf16 autocast and keeps channels_last end to end.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from .layers import LayerNorm2d, crop_to, pad_to_multiple

__all__ = ["NAFBlock", "NAFNet"]


class SimpleGate(nn.Module):
    """Split channels in two halves and multiply them (the activation of NAFNet)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    """NAFNet block: a gated depthwise-conv branch with channel attention, then a gated FFN.

    Args:
        channels: input and output channels.
        dw_expand: channel expansion of the depthwise branch.
        ffn_expand: channel expansion of the FFN.
    """

    def __init__(self, channels: int, dw_expand: int = 2, ffn_expand: int = 2):
        super().__init__()
        dw = channels * dw_expand
        ffn = channels * ffn_expand
        self.norm1 = LayerNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.gate = SimpleGate()
        self.sca = nn.Conv2d(dw // 2, dw // 2, 1)  # simplified channel attention on the pooled features
        self.conv3 = nn.Conv2d(dw // 2, channels, 1)
        self.norm2 = LayerNorm2d(channels)
        self.conv4 = nn.Conv2d(channels, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, channels, 1)
        # Zero-initialised branch scales: every block starts as the identity, as in NAFNet.
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.gate(self.conv2(self.conv1(self.norm1(inp))))
        x = x * self.sca(x.mean(dim=(2, 3), keepdim=True))
        x = self.conv3(x)
        # Cast the scales to the activations' dtype so bf16 autocast keeps the stream in bf16
        # (an fp32 parameter would promote every block's output back to fp32). addcmul is
        # inp + x * beta in one pass over memory (1.6x faster than mul then add, measured).
        y = torch.addcmul(inp, x, self.beta.to(x.dtype))
        x = self.conv5(self.gate(self.conv4(self.norm2(y))))
        return torch.addcmul(y, x, self.gamma.to(x.dtype))


class NAFNet(nn.Module):
    """NAFNet U-Net, residual on the input image: output = clamp(x + net(x), 0, 1).

    Takes (N, 3, H, W) in [0, 1] of any size; pads by reflection to ``size_multiple`` and crops back.

    Args:
        in_channels: image channels.
        width: channels at full resolution; doubled at each encoder level.
        enc_blocks: NAFBlocks per encoder level (one level per entry, each followed by a 2x down).
        middle_blocks: NAFBlocks at the bottleneck.
        dec_blocks: NAFBlocks per decoder level; same length as ``enc_blocks``.
        dw_expand: channel expansion of each block's depthwise branch.
        ffn_expand: channel expansion of each block's FFN.
        pixel_unshuffle: run the whole U-Net at 1/r resolution (space-to-depth in, depth-to-space
            out); r=2 costs about a quarter of the FLOPs and doubles the receptive field, which is
            what long motion blur needs on a CPU budget.
    """

    # bf16 autocast + channels_last output is within 0.01 dB PSNR of fp32 on the 11 real GoPro
    # validation pairs (bundled model, README), so deblur(precision="auto") may pick bf16.
    bf16_inference_ok = True
    # Eager fp32 with a channels_last input: 0.34 s against 0.43 s contiguous for the bundled model
    # at 1280x720 on a 2-core AVX2 CPU (issue 12); an A/B on a loaded 2-core AVX-512 CPU agreed
    # (best of 6: 0.33 against 0.41 s).
    channels_last_fp32_faster = True

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 16,
        enc_blocks: Sequence[int] = (1, 1, 2, 4),
        middle_blocks: int = 2,
        dec_blocks: Sequence[int] = (1, 1, 1, 1),
        dw_expand: int = 2,
        ffn_expand: int = 2,
        pixel_unshuffle: int = 1,
    ):
        super().__init__()
        if pixel_unshuffle < 1:
            raise ValueError(f"nafnet: pixel_unshuffle={pixel_unshuffle} must be >= 1")
        if len(enc_blocks) != len(dec_blocks):
            raise ValueError(
                f"nafnet: enc_blocks {list(enc_blocks)} and dec_blocks {list(dec_blocks)} must have the same length"
            )
        self.size_multiple = pixel_unshuffle * 2 ** len(enc_blocks)
        r = pixel_unshuffle
        self.unshuffle = nn.PixelUnshuffle(r) if r > 1 else nn.Identity()
        self.shuffle = nn.PixelShuffle(r) if r > 1 else nn.Identity()
        self.intro = nn.Conv2d(in_channels * r * r, width, 3, padding=1)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        ch = width
        for n in enc_blocks:
            self.encoders.append(nn.Sequential(*[NAFBlock(ch, dw_expand, ffn_expand) for _ in range(n)]))
            self.downs.append(nn.Conv2d(ch, 2 * ch, 2, stride=2))
            ch *= 2
        self.middle = nn.Sequential(*[NAFBlock(ch, dw_expand, ffn_expand) for _ in range(middle_blocks)])
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for n in dec_blocks:
            self.ups.append(nn.Sequential(nn.Conv2d(ch, 2 * ch, 1, bias=False), nn.PixelShuffle(2)))
            ch //= 2
            self.decoders.append(nn.Sequential(*[NAFBlock(ch, dw_expand, ffn_expand) for _ in range(n)]))
        self.out_conv = nn.Conv2d(width, in_channels * r * r, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inp, size = pad_to_multiple(x, self.size_multiple)
        # The image-level convs stay fp32 under autocast: in bf16 (8-bit mantissa) they cost
        # about 0.1 dB on the real GoPro pairs (measured), for a tiny share of the compute.
        with torch.autocast(inp.device.type, enabled=False):
            h = self.intro(self.unshuffle(inp).float())
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            h = enc(h)
            skips.append(h)
            h = down(h)
        h = self.middle(h)
        for dec, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            h = dec(up(h) + skip)
        with torch.autocast(inp.device.type, enabled=False):
            out = inp + self.shuffle(self.out_conv(h.float()))
        return crop_to(out, size).clamp(0.0, 1.0)
