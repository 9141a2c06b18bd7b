"""The DeblurGAN generator (Kupyn et al., CVPR 2018): ResNet encoder-decoder with a global skip.

Same layers and parameter count as the official ``ResnetGenerator`` (resnet_9blocks, instance
norm, dropout, learn_residual). The published net works in [-1, 1]; this one takes and returns
[0, 1] and maps inside ``forward``, so tanh + skip + clamp act exactly as in the paper.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .layers import crop_to, deblurgan_init_, get_act_layer, get_norm_layer, norm_has_shift, pad_to_multiple

__all__ = ["ResnetBlock", "ResnetGenerator", "deblurgan_resnet", "deblurgan_resnet_resize"]

UPSAMPLE_MODES = ("transpose", "resize")
RESIZE_MODES = ("nearest", "bilinear")


class ResnetBlock(nn.Module):
    """Two reflection-padded 3x3 convs with norm, activation and dropout between them, plus identity.

    Args:
        channels: input and output channels.
        norm_layer: norm class.
        act_layer: activation class.
        dropout: dropout probability after the first conv (0 disables).
        bias: whether the convs have a bias.
    """

    def __init__(self, channels: int, norm_layer: type[nn.Module], act_layer: type[nn.Module], dropout: float, bias: bool):
        super().__init__()
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm_layer(channels), act_layer()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm_layer(channels)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class _ResizeConv(nn.Sequential):
    """2x resize then 3x3 conv: the checkerboard-free alternative to a stride-2 transposed conv."""

    def __init__(self, in_ch: int, out_ch: int, mode: str, bias: bool):
        super().__init__(
            nn.Upsample(scale_factor=2, mode=mode),
            nn.ReflectionPad2d(1),
            nn.Conv2d(in_ch, out_ch, 3, bias=bias),
        )


class ResnetGenerator(nn.Module):
    """DeblurGAN generator: output = clamp(x + tanh(net(x)), ...) computed in [-1, 1], returned in [0, 1].

    Args:
        in_channels: image channels.
        width: channels of the first 7x7 conv (ngf); doubled at each downsampling.
        n_blocks: residual blocks at the bottleneck.
        n_downsampling: stride-2 convs (and matching upsampling stages).
        norm_layer: "instance" (paper), "batch", "layer", "none", or a class.
        act_layer: activation ("relu" in the paper) or a class.
        dropout: dropout probability inside each residual block (0.5 in the paper; 0 disables).
        upsample: "transpose" (stride-2 transposed conv, paper) or "resize" (resize + 3x3 conv).
        resize_mode: interpolation for ``upsample="resize"``: "nearest" or "bilinear".
    """

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 64,
        n_blocks: int = 9,
        n_downsampling: int = 2,
        norm_layer: str | type[nn.Module] = "instance",
        act_layer: str | type[nn.Module] = "relu",
        dropout: float = 0.5,
        upsample: str = "transpose",
        resize_mode: str = "bilinear",
    ):
        super().__init__()
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"resnet: unknown upsample {upsample!r}; allowed: {list(UPSAMPLE_MODES)}")
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f"resnet: unknown resize_mode {resize_mode!r}; allowed: {list(RESIZE_MODES)}")
        norm = get_norm_layer(norm_layer)
        act = get_act_layer(act_layer)
        bias = not norm_has_shift(norm)
        self.size_multiple = 2**n_downsampling
        # InstanceNorm needs more than one pixel at the bottleneck.
        self.min_size = 2 * self.size_multiple

        layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, width, 7, bias=bias), norm(width), act()]
        ch = width
        for _ in range(n_downsampling):
            layers += [nn.Conv2d(ch, 2 * ch, 3, stride=2, padding=1, bias=bias), norm(2 * ch), act()]
            ch *= 2
        layers += [ResnetBlock(ch, norm, act, dropout, bias) for _ in range(n_blocks)]
        for _ in range(n_downsampling):
            if upsample == "transpose":
                up = nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1, bias=bias)
            else:
                up = _ResizeConv(ch, ch // 2, resize_mode, bias)
            layers += [up, norm(ch // 2), act()]
            ch //= 2
        layers += [nn.ReflectionPad2d(3)]
        self.body = nn.Sequential(*layers)
        self.out_conv = nn.Conv2d(ch, in_channels, 7)
        deblurgan_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inp, size = pad_to_multiple(x, self.size_multiple, self.min_size)
        inp = inp * 2 - 1
        out = (inp + torch.tanh(self.out_conv(self.body(inp)))).clamp(-1.0, 1.0)
        return (crop_to(out, size) + 1) / 2


def deblurgan_resnet(**kwargs) -> ResnetGenerator:
    """The published DeblurGAN generator (resnet_9blocks, instance norm, dropout 0.5, transposed convs)."""
    return ResnetGenerator(**kwargs)


def deblurgan_resnet_resize(**kwargs) -> ResnetGenerator:
    """DeblurGAN generator with bilinear resize + conv upsampling (no checkerboard artefacts)."""
    return ResnetGenerator(**{"upsample": "resize", **kwargs})

