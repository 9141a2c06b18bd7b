"""Generators and critic, built by name from JSON-serialisable keyword arguments (as stored in config.json).

    g = build_generator("nafnet", width=16)   # (N,3,H,W) in [0,1], any H, W -> same shape in [0,1]
    c = build_critic(double_scale=True)        # -> list of score tensors, one per scale
"""

from __future__ import annotations

import torch.nn as nn

from .critic import Critic
from .layers import LayerNorm2d, check_kwargs, crop_to, get_act_layer, get_norm_layer, pad_to_multiple
from .multiscale import MultiScaleGenerator
from .nafnet import NAFNet
from .resnet import ResnetGenerator
from .unet import UNetGenerator

__all__ = [
    "GENERATORS",
    "build_generator",
    "build_critic",
    "Critic",
    "MultiScaleGenerator",
    "NAFNet",
    "ResnetGenerator",
    "UNetGenerator",
    "LayerNorm2d",
    "get_act_layer",
    "get_norm_layer",
    "pad_to_multiple",
    "crop_to",
]

GENERATORS: dict[str, type[nn.Module]] = {
    "resnet": ResnetGenerator,
    "unet": UNetGenerator,
    "multiscale": MultiScaleGenerator,
    "nafnet": NAFNet,
}


def build_generator(name: str, **kwargs) -> nn.Module:
    """Build the generator ``name`` (one of GENERATORS) with constructor keyword arguments ``kwargs``."""
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; allowed: {sorted(GENERATORS)}")
    cls = GENERATORS[name]
    check_kwargs(cls, kwargs, f"generator {name!r}")
    return cls(**kwargs)


def build_critic(**kwargs) -> Critic:
    """Build the PatchGAN critic with constructor keyword arguments ``kwargs`` (see :class:`Critic`)."""
    check_kwargs(Critic, kwargs, "critic")
    return Critic(**kwargs)
