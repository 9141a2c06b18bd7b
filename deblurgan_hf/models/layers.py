"""Shared pieces of every model family: padding to a size multiple, norm/activation lookup, LayerNorm2d.

Constructors take norm and activation either as classes (timm style) or as strings, because the
model config is stored as JSON (config.json) and must stay JSON-serialisable.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "LayerNorm2d",
    "NORM_LAYERS",
    "ACT_LAYERS",
    "get_norm_layer",
    "get_act_layer",
    "norm_has_shift",
    "pad_to_multiple",
    "crop_to",
    "check_kwargs",
    "deblurgan_init_",
]


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an NCHW tensor.

    One fused ``F.layer_norm`` on an NHWC view: for a channels_last input the permute is free
    (no copy) and the output is channels_last again, so channels_last survives the whole network.
    Under bf16 autocast it runs in fp32 (autocast's rule); measured here, the bf16 kernel is no
    faster for C = 16 to 256, so there is no reason to give up the precision.

    Args:
        num_channels: number of channels C.
        eps: added to the variance.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


NORM_LAYERS: dict[str, type[nn.Module]] = {
    "instance": nn.InstanceNorm2d,  # affine=False, as in DeblurGAN
    "batch": nn.BatchNorm2d,
    "layer": LayerNorm2d,
    "none": nn.Identity,  # nn.Identity ignores the channel argument
}

ACT_LAYERS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": functools.partial(nn.LeakyReLU, 0.2),
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "none": nn.Identity,
}


def _resolve_layer(value: Any, table: dict[str, Callable[..., nn.Module]], what: str) -> Callable[..., nn.Module]:
    """A layer given by name (looked up in `table`) or as a class/factory; `what` names the argument."""
    if isinstance(value, str):
        key = value.lower()
        if key not in table:
            raise ValueError(f"unknown {what} {value!r}; allowed: {sorted(table)} or an nn.Module class")
        return table[key]
    if callable(value):
        return value
    raise ValueError(f"{what} must be a string {sorted(table)} or an nn.Module class, got {value!r}")


def get_norm_layer(norm_layer: str | type[nn.Module] | Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Resolve a norm given by name ("instance", "batch", "layer", "none") or as a class/factory."""
    return _resolve_layer(norm_layer, NORM_LAYERS, "norm_layer")


def get_act_layer(act_layer: str | type[nn.Module] | Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    """Resolve an activation given by name ("relu", "leaky_relu" (slope 0.2), "gelu", "silu", "none") or class."""
    return _resolve_layer(act_layer, ACT_LAYERS, "act_layer")


def norm_has_shift(norm_layer: Callable[..., nn.Module]) -> bool:
    """True if the norm has its own learned shift, so the conv before it needs no bias.

    Follows DeblurGAN: convs before BatchNorm have no bias; before InstanceNorm (affine=False) they do.
    """
    cls = norm_layer.func if isinstance(norm_layer, functools.partial) else norm_layer
    return inspect.isclass(cls) and issubclass(cls, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm))


def deblurgan_init_(module: nn.Module) -> nn.Module:
    """DeblurGAN's ``weights_init``: conv weights N(0, 0.02), biases 0, BatchNorm scales N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


def pad_to_multiple(x: torch.Tensor, multiple: int, min_size: int = 1) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad an NCHW tensor at the bottom/right so H and W are multiples of ``multiple`` (and >= ``min_size``).

    Rule: reflection padding where it is possible, replicate padding for the rest. Reflection
    needs pad < size, so on a side of length s at most s - 1 pixels are reflected and any
    remaining pixels repeat the last row/column (a 1-pixel side is all replicate).

    Args:
        x: tensor (N, C, H, W).
        multiple: the size multiple the network needs (e.g. 2 ** number of downsamplings).
        min_size: smallest padded side, for nets whose norms need more than one pixel at the bottleneck.

    Returns:
        The padded tensor and the original (H, W), to crop back with :func:`crop_to`.
    """
    h, w = x.shape[-2:]
    target_h = max(-(-h // multiple) * multiple, -(-min_size // multiple) * multiple)
    target_w = max(-(-w // multiple) * multiple, -(-min_size // multiple) * multiple)
    pad_h, pad_w = target_h - h, target_w - w
    if pad_h == 0 and pad_w == 0:
        return x, (h, w)
    ref_h, ref_w = min(pad_h, h - 1), min(pad_w, w - 1)
    if ref_h or ref_w:
        x = F.pad(x, (0, ref_w, 0, ref_h), mode="reflect")
    if pad_h - ref_h or pad_w - ref_w:
        x = F.pad(x, (0, pad_w - ref_w, 0, pad_h - ref_h), mode="replicate")
    return x, (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop an NCHW tensor back to ``size`` = (H, W) from the top-left (undoes :func:`pad_to_multiple`)."""
    return x[..., : size[0], : size[1]]


def check_kwargs(cls: type, kwargs: dict, what: str) -> None:
    """Raise ValueError naming unknown keyword arguments of ``cls`` and listing the accepted ones."""
    params = inspect.signature(cls.__init__).parameters
    accepted = [n for n, p in params.items() if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    wrong = sorted(set(kwargs) - set(accepted))
    if wrong:
        raise ValueError(f"{what}: unknown argument(s) {wrong}; accepted: {accepted}")
