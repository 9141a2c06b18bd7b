"""One update of each model, in the shape of BasicSR's `SRGANModel.optimize_parameters`.

`critic_step` and `generator_step` return their losses and whether the update was finite. A loss
or gradient that is not finite on any process skips the update on every process: the check is a
collective (`all_finite`), since a process that skipped its backward alone would hang DDP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch

from ..losses import fft_loss

__all__ = ["GeneratorObjective", "StepResult", "all_finite", "grad_norm", "critic_step", "generator_step"]


class StepResult(NamedTuple):
    losses: dict[str, float]  # the values to log ("loss/<term>", ...), non-finite ones included
    finite: bool  # False: the update was skipped
    grad_norm: torch.Tensor | None = None  # the generator's gradient norm, at the update


@dataclass
class GeneratorObjective:
    """The generator's loss: weighted content, FFT, perceptual and adversarial terms (None / 0 = off)."""

    content: Callable | None
    content_weight: float
    fft_weight: float
    perceptual: torch.nn.Module | None
    perceptual_weight: float
    adversarial: object | None  # a `losses.AdversarialLoss`
    adversarial_weight: float

    def terms(self, out, fake: torch.Tensor, sharp: torch.Tensor, critic) -> dict[str, torch.Tensor]:
        """`out` is the generator's output (a list for the multiscale generator), `fake` its final image."""
        terms = {}
        if self.content is not None:
            terms["content"] = self.content_weight * self.content(out, sharp)
        if self.fft_weight:
            terms["fft"] = self.fft_weight * fft_loss(fake, sharp)
        if self.perceptual is not None:
            terms["perceptual"] = self.perceptual_weight * self.perceptual(fake, sharp)
        if self.adversarial is not None:
            terms["adversarial"] = self.adversarial_weight * self.adversarial.generator_loss(critic, sharp, fake)
        return terms


def all_finite(accelerator, *values: torch.Tensor) -> bool:
    """Whether every value is finite on every process (the same answer everywhere)."""
    bad = torch.tensor([0.0 if all(torch.isfinite(v).all() for v in values) else 1.0], device=accelerator.device)
    return bool(accelerator.reduce(bad, reduction="sum").item() == 0)


def grad_norm(accelerator, module: torch.nn.Module, max_norm: float | None) -> torch.Tensor:
    """Total gradient norm (clipped to max_norm if set); non-finite when a gradient is."""
    if max_norm:
        return accelerator.clip_grad_norm_(module.parameters(), max_norm)
    return torch.nn.utils.clip_grad_norm_(module.parameters(), float("inf"))


def critic_step(accelerator, critic, optimizer, adversarial, sharp: torch.Tensor, fake: torch.Tensor, *,
                updates: int, max_grad_norm: float | None) -> StepResult:
    """`updates` critic updates on one batch (DeblurGAN: 5), the generator's output detached.

    Logs the last update's losses; finite is False if any of the updates was skipped.
    """
    finite = []
    for _ in range(updates):
        loss, extra = adversarial.critic_loss(critic, sharp, fake.detach())
        optimizer.zero_grad(set_to_none=True)
        ok = all_finite(accelerator, loss)
        if ok:
            accelerator.backward(loss)
            ok = bool(torch.isfinite(grad_norm(accelerator, critic, max_grad_norm)))
        if ok:
            optimizer.step()
        finite.append(ok)
    optimizer.zero_grad(set_to_none=True)
    return StepResult({"loss/critic": float(loss.detach()), **extra}, all(finite))


def generator_step(accelerator, generator, optimizer, terms: dict[str, torch.Tensor], *,
                   max_grad_norm: float | None, finite_so_far: bool = True) -> StepResult:
    """Backward of the summed terms; at the last micro-batch of an update, the optimizer step.

    `finite_so_far`: False when an earlier part of this update (a micro-batch, the critic) was not
    finite; the update is then skipped. The result's `finite` covers this micro-batch and those before.
    """
    loss = sum(terms.values())
    loss_finite = all_finite(accelerator, loss)
    if loss_finite:
        accelerator.backward(loss)
    finite, norm = finite_so_far and loss_finite, None
    if accelerator.sync_gradients:
        norm = grad_norm(accelerator, generator, max_grad_norm)
        finite = finite and bool(torch.isfinite(norm))
        if finite:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    losses = {f"loss/{name}": float(value.detach()) for name, value in terms.items()}
    return StepResult({**losses, "loss/total": float(loss.detach())}, finite, norm)
