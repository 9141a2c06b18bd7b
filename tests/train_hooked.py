"""train_accelerate.py with test-only hooks; every other argument goes to the script unchanged.

    python tests/train_hooked.py [--nan_at_steps 2,3] [--random_vgg_weights] --config recipe.yaml ...
    accelerate launch ... tests/train_hooked.py --nan_at_steps 2 --config recipe.yaml ...

`--nan_at_steps`: the batches of these (1-based) updates become NaNs, as a corrupt batch would.
`--random_vgg_weights`: the perceptual loss gets random VGG weights (the same compute as the
ImageNet ones, which an offline machine does not have): for tests and speed benchmarks only.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the script is a file at the repository root
import train_accelerate  # noqa: E402
from deblurgan_hf.losses import build_perceptual_loss  # noqa: E402


def steps(text: str) -> set[int]:
    try:
        return {int(t) for t in text.split(",") if t.strip()}
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from err


def nan_batches(at_steps: set[int]):
    def batch_for_step(batch: dict, step: int) -> dict:
        if step in at_steps:
            return {**batch, "blur": torch.full_like(batch["blur"], float("nan"))}
        return batch

    return batch_for_step


def main(argv: list[str] | None = None) -> None:
    hooks = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
    hooks.add_argument("--nan_at_steps", type=steps, default=set())
    hooks.add_argument("--random_vgg_weights", action="store_true")
    chosen, script_argv = hooks.parse_known_args(argv)
    if chosen.nan_at_steps:
        train_accelerate.batch_for_step = nan_batches(chosen.nan_at_steps)
    if chosen.random_vgg_weights:
        train_accelerate.build_perceptual_loss = functools.partial(build_perceptual_loss, random_weights_for_tests=True)
    train_accelerate.main(train_accelerate.parse_args(script_argv))


if __name__ == "__main__":
    main()
