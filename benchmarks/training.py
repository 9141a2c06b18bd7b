"""Training throughput of each recipe on this machine, with and without the critic and the perceptual loss.

    python benchmarks/training.py [--recipes nafnet_cpu,deblurgan_v1] [--steps 4] [--threads 2]

Runs the real `train_accelerate.py` (one process, the recipe's data, crop size, batch size and
precision) for a few steps per variant, without validation or checkpoints, and reads the per-step
wall time (data loading + forward + backward + optimizer updates) that the script logs to
`metrics.jsonl`. The first step (warm-up) is dropped; the median of the others is reported.

Variants: the recipe as written, and with the critic (WGAN-GP, the recipe's critic steps or 5)
and the VGG19 conv3_3 perceptual loss switched on/off. The perceptual loss runs with RANDOM VGG
weights here (through `tests/train_hooked.py --random_vgg_weights`, which runs the script with
that test-only hook): the same compute as the ImageNet weights, which this offline machine does
not have; speed only, never for training.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOOKED = REPO / "tests" / "train_hooked.py"  # the script, with random VGG weights for the perceptual loss

CRITIC_ON = ["--adversarial", "wgan-gp", "--critic_kwargs", "{}"]
CRITIC_OFF = ["--adversarial", "none", "--critic_kwargs", "null"]
PERCEPTUAL_ON = ["--perceptual", "vgg19"]
PERCEPTUAL_OFF = ["--perceptual", "none"]


def run_variant(recipe: Path, flags: list[str], steps: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        # Every variant through the hooked script (random VGG weights): the recipe's real ones are not here.
        cmd = [sys.executable, str(HOOKED), "--random_vgg_weights", "--config", str(recipe), "--output_dir", tmp,
               "--max_train_steps", str(steps), "--val_sources", "--checkpointing_steps", "1000000", "--logging_steps", "1",
               "--num_threads", str(threads), "--report_to", "none", *flags]
        env = {**os.environ, "TQDM_DISABLE": "1"}
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
        records = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    times = [r["step_seconds"] for r in records if "step_seconds" in r][1:]  # drop the warm-up step
    return {"median_s": statistics.median(times), "steps_timed": len(times)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipes", default="nafnet_cpu,deblurgan_v1", help="config names in configs/")
    p.add_argument("--steps", type=int, default=4, help="steps per variant (the first is a warm-up)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = p.parse_args()
    if args.steps < 2:
        p.error("--steps must be >= 2 (the first step is a warm-up)")

    import yaml

    print("| recipe | crop x batch | precision | critic | perceptual (random VGG19, speed only) | s/step | steps/s |")
    print("|---|---|---|---|---|---|---|")
    for name in args.recipes.split(","):
        recipe = REPO / "configs" / f"{name}.yaml"
        config = yaml.safe_load(recipe.read_text())
        has_critic = config.get("adversarial", "none") != "none"
        has_perceptual = config.get("perceptual", "none") != "none"
        variants = [("as recipe", [], has_critic, has_perceptual)]
        for critic in (False, True):
            for perceptual in (False, True):
                if (critic, perceptual) != (has_critic, has_perceptual):
                    flags = (CRITIC_ON if critic else CRITIC_OFF) + (PERCEPTUAL_ON if perceptual else PERCEPTUAL_OFF)
                    if critic and not has_critic:
                        flags += ["--critic_steps", str(config.get("critic_steps", 5))]
                    label = ""
                    if not critic and not perceptual and config.get("content_loss", "l1") == "none":
                        flags += ["--content_loss", "l1"]  # something to train on
                        label = "l1 only"
                    variants.append((label, flags, critic, perceptual))
        for label, flags, critic, perceptual in variants:
            r = run_variant(recipe, flags, args.steps, args.threads)
            steps_critic = config.get("critic_steps", 5) if critic else 0
            print(f"| {name}{' (' + label + ')' if label else ''} | {config.get('crop_size')} x "
                  f"{config.get('train_batch_size')} | {config.get('mixed_precision', 'no')} | "
                  f"{f'wgan-gp, {steps_critic} steps' if critic else 'no'} | {'yes' if perceptual else 'no'} | "
                  f"{r['median_s']:.2f} | {1 / r['median_s']:.2f} |", flush=True)


if __name__ == "__main__":
    from _results import recorded

    with recorded("training", skip_flags=("-h", "--help")):
        main()
