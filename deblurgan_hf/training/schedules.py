"""Learning-rate schedules: a torch `LambdaLR` whose factor is `lr_factor`, counted in optimizer updates.

The script steps each schedule once per optimizer update, on every process (the Accelerator is made
with `step_scheduler_with_optimizer=False`, so a prepared scheduler does not step once per process),
which keeps the LR after N updates the same on 1 or N processes. One `LambdaLR` rather than a
`SequentialLR` of warm-up and decay: its `scheduler.bin` is what existing checkpoints hold.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["LR_SCHEDULERS", "lr_factor", "build_lr_scheduler", "count_updates"]

LR_SCHEDULERS = ("constant", "linear", "cosine", "constant_then_linear")


def lr_factor(
    name: str, step: int, total: int, *, warmup: int = 0, constant_fraction: float = 0.5, min_ratio: float = 0.0
) -> float:
    """Multiplier of the peak LR for the update after `step` completed updates (of `total`)."""
    if warmup and step < warmup:
        return (step + 1) / (warmup + 1)
    if name == "constant":
        return 1.0
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    if name == "linear":
        decay = 1.0 - progress
    elif name == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif name == "constant_then_linear":
        start = warmup + constant_fraction * span
        decay = 1.0 if step < start else max(0.0, (total - step) / max(1e-9, total - start))
    else:
        raise ValueError(f"unknown lr_scheduler {name!r}; allowed: {list(LR_SCHEDULERS)}")
    return min_ratio + (1.0 - min_ratio) * decay


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str,
    *,
    num_training_steps: int,
    num_warmup_steps: int = 0,
    constant_fraction: float = 0.5,
    min_ratio: float = 0.0,
) -> LambdaLR:
    """A LambdaLR following `lr_factor` over `num_training_steps` optimizer updates (step it once per update)."""
    if name not in LR_SCHEDULERS:
        raise ValueError(f"unknown lr_scheduler {name!r}; allowed: {list(LR_SCHEDULERS)}")

    def factor(updates: int) -> float:
        return lr_factor(name, updates, num_training_steps, warmup=num_warmup_steps,
                         constant_fraction=constant_fraction, min_ratio=min_ratio)

    return LambdaLR(optimizer, factor)


def count_updates(scheduler, updates: int) -> None:
    """Set a resumed schedule's count to `updates` optimizer updates.

    Checkpoints saved before the schedule stepped once per update hold a count of updates x processes
    (Accelerate stepped a prepared scheduler once per process, the factor divided it back); the LR they
    restored into the optimizer is already right, only the count for the next updates is rescaled.
    """
    inner = getattr(scheduler, "scheduler", scheduler)  # Accelerate's wrapper or a plain LambdaLR
    inner.last_epoch = updates
    inner._step_count = updates + 1  # what `updates` calls of step() after the constructor's own leave
