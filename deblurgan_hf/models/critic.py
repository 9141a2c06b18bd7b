"""PatchGAN critic (DeblurGAN's NLayerDiscriminator), optionally at two scales and with a scalar head.

Inputs are [0, 1] images, mapped to [-1, 1] inside as in DeblurGAN. The output is always a list
of score tensors, one per scale, so losses do not need to know the configuration.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import deblurgan_init_, get_norm_layer, norm_has_shift

__all__ = ["PatchCritic", "Critic", "patchgan"]


class PatchCritic(nn.Module):
    """One PatchGAN: 4x4 convs, stride 2 then stride 1, LeakyReLU 0.2, a final 1-channel 4x4 conv.

    Args:
        in_channels: image channels.
        width: channels of the first conv (ndf); doubled per layer up to 8x.
        n_layers: stride-2 convs (3 gives DeblurGAN's 70x70 receptive field).
        norm_layer: norm class (none on the first conv, as in the original).
    """

    def __init__(self, in_channels: int, width: int, n_layers: int, norm_layer: type[nn.Module]):
        super().__init__()
        bias = not norm_has_shift(norm_layer)
        layers = [nn.Conv2d(in_channels, width, 4, stride=2, padding=2), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(width * prev, width * mult, 4, stride=stride, padding=2, bias=bias),
                norm_layer(width * mult),
                nn.LeakyReLU(0.2, True),
            ]
        self.body = nn.Sequential(*layers)
        self.out_conv = nn.Conv2d(width * mult, 1, 4, stride=1, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_conv(self.body(x))


class Critic(nn.Module):
    """PatchGAN critic returning a list of scores, one per scale.

    Args:
        in_channels: image channels.
        width: channels of the first conv (ndf).
        n_layers: stride-2 convs per PatchGAN.
        norm_layer: "instance" (DeblurGAN), "batch", "layer", "none" (e.g. for WGAN-GP), or a class.
        double_scale: add a second PatchGAN (own weights) on the image downscaled 2x.
        scalar_head: reduce each patch map to one score per image (mean over patches): (N, 1).
    """

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 64,
        n_layers: int = 3,
        norm_layer: str | type[nn.Module] = "instance",
        double_scale: bool = False,
        scalar_head: bool = False,
    ):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"critic: n_layers must be >= 1, got {n_layers}")
        norm = get_norm_layer(norm_layer)
        self.scalar_head = scalar_head
        # Below this side a norm layer would see a single pixel (each scale halves the image).
        self.min_size = 4 if double_scale else 2
        self.critics = nn.ModuleList(
            [PatchCritic(in_channels, width, n_layers, norm) for _ in range(2 if double_scale else 1)]
        )
        deblurgan_init_(self)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if min(x.shape[-2:]) < self.min_size:
            h, w = x.shape[-2:]
            raise ValueError(f"critic: input {h}x{w} is too small; both sides must be >= {self.min_size}")
        x = x * 2 - 1
        scores = []
        for i, critic in enumerate(self.critics):
            if i:
                x = F.avg_pool2d(x, 2, ceil_mode=True)
            s = critic(x)
            scores.append(s.mean(dim=(2, 3)) if self.scalar_head else s)
        return scores


def patchgan(**kwargs) -> Critic:
    """DeblurGAN's critic: 3-layer PatchGAN, width 64, instance norm."""
    return Critic(**kwargs)
