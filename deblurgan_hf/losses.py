"""Training losses: content (pixel and frequency), perceptual (VGG features) and adversarial.

Every loss takes float `N x 3 x H x W` tensors in [0, 1] and returns a scalar. Predictions may be
a list of tensors (the multiscale generator's [1/4, 1/2, full] outputs): the multiscale L2 loss
uses every level, the other content losses only the last (full-resolution) one.

    content = build_content_loss("charbonnier")
    perceptual = build_perceptual_loss("vgg19")                  # torchvision ImageNet weights
    adversarial = build_adversarial_loss("wgan-gp", gp_weight=10.0)
    d_loss, logs = adversarial.critic_loss(critic, real, fake.detach())
    g_loss = adversarial.generator_loss(critic, real, fake)
"""

from __future__ import annotations

import os
import urllib.error
from collections.abc import Callable, Sequence
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CONTENT_LOSSES",
    "ADVERSARIAL_LOSSES",
    "PERCEPTUAL_NETWORKS",
    "charbonnier_loss",
    "fft_loss",
    "MultiScaleL2Loss",
    "PerceptualLoss",
    "AdversarialLoss",
    "WGANGPLoss",
    "LSGANLoss",
    "VanillaGANLoss",
    "RaLSGANLoss",
    "gradient_penalty",
    "build_content_loss",
    "build_perceptual_loss",
    "build_adversarial_loss",
    "perceptual_weights_path",
]

Prediction = torch.Tensor | Sequence[torch.Tensor]


def _final(pred: Prediction) -> torch.Tensor:
    return pred[-1] if isinstance(pred, (list, tuple)) else pred


# ----------------------------------------------------------------------------- content losses


def charbonnier_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier (smooth L1): mean of sqrt((pred - target)^2 + eps^2)."""
    return torch.sqrt((pred.float() - target.float()).pow(2) + eps * eps).mean()


def fft_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 distance of the 2-D real FFTs (real and imaginary parts), as in MIMO-UNet / NAFNet-style recipes.

    Normalised ("ortho") so its size does not depend on the crop size.
    """
    fp = torch.fft.rfft2(pred.float(), norm="ortho")
    ft = torch.fft.rfft2(target.float(), norm="ortho")
    return (torch.view_as_real(fp) - torch.view_as_real(ft)).abs().mean()


class MultiScaleL2Loss(nn.Module):
    """Weighted mean-squared error over the levels of a multiscale output (Nah et al. 2017).

    The target is area-downsampled to each level's size.

    Args:
        weights: one weight per level, coarse to fine (e.g. (0.25, 0.5, 1.0) for [1/4, 1/2, full]).
    """

    def __init__(self, weights: Sequence[float] = (1.0, 1.0, 1.0)):
        super().__init__()
        if not weights or any(w < 0 for w in weights):
            raise ValueError(f"multiscale_l2: weights must be a non-empty list of numbers >= 0, got {list(weights)}")
        self.weights = [float(w) for w in weights]

    def forward(self, pred: Prediction, target: torch.Tensor) -> torch.Tensor:
        levels = list(pred) if isinstance(pred, (list, tuple)) else [pred]
        if len(levels) != len(self.weights):
            raise ValueError(
                f"multiscale_l2: the generator returned {len(levels)} levels but {len(self.weights)} "
                f"weights were given ({self.weights}); set --multiscale_weights to {len(levels)} numbers"
            )
        total = target.new_zeros((), dtype=torch.float32)
        for level, w in zip(levels, self.weights):
            t = target if level.shape[-2:] == target.shape[-2:] else F.interpolate(target, size=level.shape[-2:], mode="area")
            total = total + w * F.mse_loss(level.float(), t.float())
        return total / sum(self.weights)


CONTENT_LOSSES = ("l1", "l2", "charbonnier", "multiscale_l2", "fft")


def build_content_loss(
    name: str, *, multiscale_weights: Sequence[float] = (1.0, 1.0, 1.0)
) -> Callable[[Prediction, torch.Tensor], torch.Tensor]:
    """A content loss `f(pred, target) -> scalar` by name (one of CONTENT_LOSSES).

    Args:
        name: "l1", "l2", "charbonnier", "multiscale_l2" (every level of a list output) or "fft".
        multiscale_weights: per-level weights of "multiscale_l2", coarse to fine.
    """
    if name == "multiscale_l2":
        return MultiScaleL2Loss(multiscale_weights)
    pixel = {
        "l1": lambda p, t: F.l1_loss(p.float(), t.float()),
        "l2": lambda p, t: F.mse_loss(p.float(), t.float()),
        "charbonnier": charbonnier_loss,
        "fft": fft_loss,
    }
    if name not in pixel:
        raise ValueError(f"unknown content loss {name!r}; allowed: {list(CONTENT_LOSSES)}")
    fn = pixel[name]
    return lambda pred, target: fn(_final(pred), target)


# ----------------------------------------------------------------------------- perceptual loss

# (torchvision constructor, weights enum name, number of `features` layers kept)
# vgg19 conv3_3 = features[:15] (the conv output before its ReLU, as DeblurGAN's code);
# vgg16 block3_conv3 = features[:16] (Keras' block3_conv3 includes the ReLU).
PERCEPTUAL_NETWORKS = {"vgg19": ("vgg19", "VGG19_Weights", 15), "vgg16": ("vgg16", "VGG16_Weights", 16)}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def perceptual_weights_path(network: str) -> str:
    """Where torch hub caches the ImageNet weights of `network` ("vgg19" or "vgg16")."""
    import torchvision.models as tvm

    weights = getattr(tvm, PERCEPTUAL_NETWORKS[network][1]).IMAGENET1K_V1
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(weights.url).path))


def _load_vgg_features(network: str, random_weights_for_tests: bool) -> nn.Sequential:
    import torchvision.models as tvm

    ctor_name, weights_name, n_layers = PERCEPTUAL_NETWORKS[network]
    # Built on the meta device: only the kept conv layers get memory (not the 120 M-parameter classifier).
    with torch.device("meta"):
        features = getattr(tvm, ctor_name)(weights=None, init_weights=False).features[:n_layers]
    features = features.to_empty(device="cpu")
    if random_weights_for_tests:
        # Test-only: exercises the code path without the 500 MB download; the loss is meaningless.
        for m in features:
            if isinstance(m, nn.Conv2d):
                m.reset_parameters()
    else:
        weights = getattr(tvm, weights_name).IMAGENET1K_V1
        path = perceptual_weights_path(network)
        try:
            # weights_only=True: never unpickle arbitrary objects, even from the official URL.
            state = torch.hub.load_state_dict_from_url(weights.url, progress=False, check_hash=True, weights_only=True)
        except (urllib.error.URLError, OSError, RuntimeError) as err:
            raise RuntimeError(
                f"perceptual loss {network!r}: torchvision's ImageNet weights are not cached and could not "
                f"be downloaded ({type(err).__name__}: {err}).\n"
                f"  Get them on a machine with internet:  curl -L -o {os.path.basename(path)} {weights.url}\n"
                f"  and place the file at:  {path}\n"
                f"  (the torch hub cache; set TORCH_HOME to move it), or train without it: --perceptual none"
            ) from err
        prefix = "features."
        kept = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and int(k.split(".")[1]) < n_layers}
        features.load_state_dict(kept, strict=True)
    return features


class PerceptualLoss(nn.Module):
    """MSE between VGG feature maps of prediction and target (Johnson et al.; DeblurGAN's content loss).

    Inputs in [0, 1] are normalised with the ImageNet mean and std first. The network is frozen.

    Args:
        network: "vgg19" (conv3_3) or "vgg16" (block3_conv3).
        random_weights_for_tests: TEST ONLY: random VGG weights instead of the ImageNet ones.
    """

    def __init__(self, network: str = "vgg19", random_weights_for_tests: bool = False):
        super().__init__()
        if network not in PERCEPTUAL_NETWORKS:
            raise ValueError(f"unknown perceptual network {network!r}; allowed: {sorted(PERCEPTUAL_NETWORKS)} or none")
        self.network = network
        self.features = _load_vgg_features(network, random_weights_for_tests).eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        return super().train(False)  # frozen feature extractor: always eval

    def forward(self, pred: Prediction, target: torch.Tensor) -> torch.Tensor:
        pred = _final(pred)
        f_pred = self.features((pred - self.mean) / self.std)
        with torch.no_grad():
            f_target = self.features((target - self.mean) / self.std)
        return F.mse_loss(f_pred.float(), f_target.float())


def build_perceptual_loss(name: str, *, random_weights_for_tests: bool = False) -> PerceptualLoss | None:
    """A `PerceptualLoss` for "vgg19" / "vgg16", or None for "none"."""
    if name in (None, "none"):
        return None
    return PerceptualLoss(name, random_weights_for_tests=random_weights_for_tests)


# ----------------------------------------------------------------------------- adversarial losses

Critic = Callable[[torch.Tensor], Sequence[torch.Tensor]]


def _scores(critic: Critic, x: torch.Tensor) -> list[torch.Tensor]:
    out = critic(x)
    return [s.float() for s in (out if isinstance(out, (list, tuple)) else [out])]


def gradient_penalty(
    critic: Critic, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017): mean (||grad_x D(x)||_2 - 1)^2 on random interpolates.

    Per-image gradient norms of the sum of every scale's mean score.

    Args:
        generator: torch.Generator for the interpolation weights (a per-step seed makes resumed runs exact).
    """
    alpha = torch.rand(real.shape[0], 1, 1, 1, generator=generator, dtype=real.dtype).to(real.device)
    x = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    score = sum(s.mean() * s.shape[0] for s in _scores(critic, x))  # per-image sums -> per-image grads
    (grad,) = torch.autograd.grad(score, x, create_graph=True)
    return (grad.float().flatten(1).norm(2, dim=1) - 1).pow(2).mean()


class AdversarialLoss:
    """Critic and generator objectives; critics return a list of score tensors (one per scale).

    Subclasses define `critic_loss(critic, real, fake) -> (loss, logs)` and
    `generator_loss(critic, real, fake) -> loss`; each averages over the critic's scales.
    """

    name = ""

    def critic_loss(self, critic: Critic, real: torch.Tensor, fake: torch.Tensor, **kw) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def generator_loss(self, critic: Critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class WGANGPLoss(AdversarialLoss):
    """Wasserstein loss with gradient penalty; DeblurGAN's (gp weight 10, 5 critic steps)."""

    name = "wgan-gp"

    def __init__(self, gp_weight: float = 10.0):
        self.gp_weight = gp_weight

    def critic_loss(self, critic, real, fake, generator: torch.Generator | None = None):
        d_real, d_fake = _scores(critic, real), _scores(critic, fake.detach())
        wdist = sum(r.mean() - f.mean() for r, f in zip(d_real, d_fake)) / len(d_real)
        gp = gradient_penalty(critic, real, fake, generator) if self.gp_weight else real.new_zeros(())
        loss = -wdist + self.gp_weight * gp
        return loss, {"wasserstein": float(wdist.detach()), "gradient_penalty": float(gp.detach())}

    def generator_loss(self, critic, real, fake):
        d_fake = _scores(critic, fake)
        return -sum(f.mean() for f in d_fake) / len(d_fake)


class LSGANLoss(AdversarialLoss):
    """Least-squares GAN (Mao et al. 2017): targets 1 (real) and 0 (fake)."""

    name = "lsgan"

    def critic_loss(self, critic, real, fake, **kw):
        d_real, d_fake = _scores(critic, real), _scores(critic, fake.detach())
        loss = sum(F.mse_loss(r, torch.ones_like(r)) + F.mse_loss(f, torch.zeros_like(f)) for r, f in zip(d_real, d_fake))
        return 0.5 * loss / len(d_real), {}

    def generator_loss(self, critic, real, fake):
        d_fake = _scores(critic, fake)
        return sum(F.mse_loss(f, torch.ones_like(f)) for f in d_fake) / len(d_fake)


class VanillaGANLoss(AdversarialLoss):
    """The original GAN loss (Goodfellow et al. 2014) on logits, non-saturating for the generator."""

    name = "vanilla"

    def critic_loss(self, critic, real, fake, **kw):
        d_real, d_fake = _scores(critic, real), _scores(critic, fake.detach())
        bce = F.binary_cross_entropy_with_logits
        loss = sum(bce(r, torch.ones_like(r)) + bce(f, torch.zeros_like(f)) for r, f in zip(d_real, d_fake))
        return 0.5 * loss / len(d_real), {}

    def generator_loss(self, critic, real, fake):
        d_fake = _scores(critic, fake)
        return sum(F.binary_cross_entropy_with_logits(f, torch.ones_like(f)) for f in d_fake) / len(d_fake)


class RaLSGANLoss(AdversarialLoss):
    """Relativistic average least-squares GAN (Jolicoeur-Martineau 2018), DeblurGAN-v2's "ragan-ls"."""

    name = "ragan-ls"

    @staticmethod
    def _loss(d_a: list[torch.Tensor], d_b: list[torch.Tensor]) -> torch.Tensor:
        # a should look "more real than the average b", b "less real than the average a".
        total = sum(((a - b.mean() - 1) ** 2).mean() + ((b - a.mean() + 1) ** 2).mean() for a, b in zip(d_a, d_b))
        return 0.5 * total / len(d_a)

    def critic_loss(self, critic, real, fake, **kw):
        return self._loss(_scores(critic, real), _scores(critic, fake.detach())), {}

    def generator_loss(self, critic, real, fake):
        with torch.no_grad():
            d_real = _scores(critic, real)
        return self._loss(_scores(critic, fake), d_real)


ADVERSARIAL_LOSSES = {"wgan-gp": WGANGPLoss, "lsgan": LSGANLoss, "vanilla": VanillaGANLoss, "ragan-ls": RaLSGANLoss}


def build_adversarial_loss(name: str, *, gp_weight: float = 10.0) -> AdversarialLoss | None:
    """An `AdversarialLoss` by name (one of ADVERSARIAL_LOSSES), or None for "none"."""
    if name in (None, "none"):
        return None
    if name not in ADVERSARIAL_LOSSES:
        raise ValueError(f"unknown adversarial loss {name!r}; allowed: {sorted(ADVERSARIAL_LOSSES)} or none")
    return WGANGPLoss(gp_weight) if name == "wgan-gp" else ADVERSARIAL_LOSSES[name]()
