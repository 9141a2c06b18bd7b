#!/usr/bin/env python
"""Train a deblurring generator (optionally adversarially, with a critic) with Hugging Face Accelerate.

    accelerate launch train_accelerate.py --config configs/nafnet_cpu.yaml
    accelerate launch train_accelerate.py --config configs/deblurgan_v1.yaml --output_dir outputs/v1
    accelerate launch train_accelerate.py --config configs/nafnet_cpu.yaml --resume_from_checkpoint latest

The same command runs on one CPU, one GPU or many processes (`accelerate launch --multi_gpu ...`).
`main` reads top to bottom: Accelerator, data, models, losses, optimizers and schedules, one
`prepare`, resume, the loop (critic step, generator step, non-finite guard, logging, validation,
checkpoints), export. Recipes are YAML/JSON files whose keys are the flags (`parse_args`).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import IO

import torch
from tqdm.auto import tqdm

from deblurgan_hf._extras import needs

with needs("train"):
    from accelerate import Accelerator
    from accelerate.logging import get_logger
    from accelerate.utils import (
        DataLoaderConfiguration,
        InitProcessGroupKwargs,
        ProjectConfiguration,
        broadcast_object_list,
        set_seed,
    )

from deblurgan_hf import DeblurGAN
from deblurgan_hf.cards import base_model_id, hub_datasets
from deblurgan_hf.data import build_train_dataset, build_val_dataset, check_enough
from deblurgan_hf.files import atomic_write_text
from deblurgan_hf.losses import build_adversarial_loss, build_content_loss, build_perceptual_loss
from deblurgan_hf.metrics import psnr_torch
from deblurgan_hf.training.checkpoints import (
    MetricsLog,
    RunFolderInUse,
    RunState,
    list_checkpoints,
    lock_output_dir,
    remove_stale_temp_dirs,
    resolve_resume_checkpoint,
    save_checkpoint,
)
from deblurgan_hf.training.plots import plot_curves, save_image_grid
from deblurgan_hf.training.publish import export_model, push_folder_to_hub, weights_checksum
from deblurgan_hf.training.recipes import (
    command_line,
    json_value,
    load_config,
    optional_float,
    optional_int,
    recipe_dict,
)
from deblurgan_hf.training.schedules import LR_SCHEDULERS, build_lr_scheduler, count_updates
from deblurgan_hf.training.steps import GeneratorObjective, critic_step, generator_step
from deblurgan_hf.training.validation import validate, validation_eval_results

logger = get_logger(__name__)


# ----------------------------------------------------------------------------- arguments


def build_arg_parser() -> argparse.ArgumentParser:
    """Every option of the training script; each is also a recipe key of the same name."""
    p = argparse.ArgumentParser(
        description="Train a deblurring generator (optionally with a critic) with Hugging Face Accelerate.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    bool_flag = argparse.BooleanOptionalAction
    p.add_argument("--config", type=str, default=None, help="recipe file (YAML or JSON) whose keys are these flags")

    g = p.add_argument_group("output")
    g.add_argument("--output_dir", type=str, default="outputs/deblurgan", help="checkpoints, logs, exports")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--num_threads", type=optional_int, default=None,
                   help="torch CPU threads per process (default: usable cores / processes on this machine)")

    g = p.add_argument_group("data")
    g.add_argument("--train_sources", type=str, nargs="+", default=None,
                   help="source specs, e.g. sharp:../shared/data/sharp/urban100 paired:../shared/data/gopro_real/train")
    g.add_argument("--val_sources", type=str, nargs="*", default=[], help="validation source specs (paired: or sharp:)")
    g.add_argument("--blur", type=json_value, default=None, help="blur synthesis settings for sharp: sources (JSON)")
    g.add_argument("--val_blur", type=json_value, default=None,
                   help="blur synthesis for sharp: validation sources (JSON); default: --blur")
    g.add_argument("--real_fraction", type=optional_float, default=None,
                   help="fraction of training samples drawn from paired (real) sources; None = by count")
    g.add_argument("--crop_size", type=int, default=128)
    g.add_argument("--min_size", type=optional_int, default=None, help="skip training images smaller than this")
    g.add_argument("--val_max_images", type=optional_int, default=None, help="validate on the first N images only")
    g.add_argument("--val_center_crop", type=optional_int, default=None,
                   help="validate on centre crops of this size (full 1280x720 frames are slow on CPU)")
    g.add_argument("--val_max_size", type=optional_int, default=None, help="downscale validation images above this side")
    g.add_argument("--dataloader_num_workers", type=int, default=0)

    g = p.add_argument_group("model")
    g.add_argument("--generator", type=str, default="nafnet", help="resnet, unet, multiscale or nafnet")
    g.add_argument("--generator_kwargs", type=json_value, default={}, help="generator constructor arguments (JSON)")
    g.add_argument("--critic_kwargs", type=json_value, default=None,
                   help="PatchGAN critic arguments (JSON); null = no critic (required by --adversarial)")
    g.add_argument("--init_from", type=str, default=None, help="start from a save_pretrained folder (fine-tuning)")

    g = p.add_argument_group("losses")
    g.add_argument("--content_loss", type=str, default="l1",
                   choices=["l1", "l2", "charbonnier", "multiscale_l2", "fft", "none"])
    g.add_argument("--content_weight", type=float, default=1.0)
    g.add_argument("--multiscale_weights", type=float, nargs="+", default=[1.0, 1.0, 1.0],
                   help="per-level weights of multiscale_l2, coarse to fine")
    g.add_argument("--fft_weight", type=float, default=0.0, help="weight of an extra FFT L1 loss (0 = off)")
    g.add_argument("--perceptual", type=str, default="none", choices=["none", "vgg19", "vgg16"],
                   help="vgg19 = conv3_3, vgg16 = block3_conv3; torchvision ImageNet weights")
    g.add_argument("--perceptual_weight", type=float, default=1.0)
    g.add_argument("--adversarial", type=str, default="none", choices=["none", "wgan-gp", "lsgan", "vanilla", "ragan-ls"])
    g.add_argument("--adversarial_weight", type=float, default=1.0)
    g.add_argument("--gp_weight", type=float, default=10.0, help="WGAN-GP gradient penalty weight")
    g.add_argument("--critic_steps", type=int, default=1, help="critic updates per generator update (same batch)")

    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", type=str, default="adamw", choices=["adam", "adamw"])
    g.add_argument("--learning_rate", type=float, default=1e-4)
    g.add_argument("--critic_learning_rate", type=optional_float, default=None, help="default: --learning_rate")
    g.add_argument("--adam_beta1", type=float, default=0.9)
    g.add_argument("--adam_beta2", type=float, default=0.999)
    g.add_argument("--adam_epsilon", type=float, default=1e-8)
    g.add_argument("--weight_decay", type=float, default=0.0)
    g.add_argument("--lr_scheduler", type=str, default="constant", choices=list(LR_SCHEDULERS))
    g.add_argument("--lr_warmup_steps", type=int, default=0)
    g.add_argument("--lr_constant_fraction", type=float, default=0.5,
                   help="constant_then_linear: fraction of the steps at the full rate (DeblurGAN: 150 of 300 epochs)")
    g.add_argument("--lr_min_ratio", type=float, default=0.0, help="cosine/linear: final LR as a fraction of the peak")
    g.add_argument("--train_batch_size", type=int, default=8, help="per process")
    g.add_argument("--max_train_steps", type=optional_int, default=None, help="overrides --num_train_epochs")
    g.add_argument("--num_train_epochs", type=int, default=1)
    g.add_argument("--gradient_accumulation_steps", type=int, default=1)
    g.add_argument("--max_grad_norm", type=optional_float, default=None, help="clip gradients to this norm (None = off)")
    g.add_argument("--mixed_precision", type=str, default=None, choices=["no", "fp16", "bf16"],
                   help="default: the accelerate config (bf16 works on recent CPUs)")

    g = p.add_argument_group("checkpoints")
    g.add_argument("--checkpointing_steps", type=int, default=500)
    g.add_argument("--checkpoints_total_limit", type=optional_int, default=3, help="keep the last K checkpoints")
    g.add_argument("--resume_from_checkpoint", type=str, default=None, help='"latest" or a checkpoint-<step> folder')

    g = p.add_argument_group("validation and logging")
    g.add_argument("--validation_steps", type=int, default=500)
    g.add_argument("--val_grid_images", type=int, default=3, help="rows in the blur | output | sharp PNG grid")
    g.add_argument("--logging_steps", type=int, default=10)
    g.add_argument("--report_to", type=str, default="none",
                   help='Accelerate tracker: "tensorboard", "wandb", "comet_ml", "aim", "mlflow", "all" or "none"')
    g.add_argument("--tracker_project_name", type=str, default="deblurgan-hf")

    g = p.add_argument_group("safety")
    g.add_argument("--max_nonfinite_in_a_row", type=int, default=20,
                   help="stop after this many consecutive non-finite losses (each is skipped)")

    g = p.add_argument_group("export and Hub")
    g.add_argument("--push_to_hub", action=bool_flag, default=False, help="upload the exported folder")
    g.add_argument("--hub_model_id", type=str, default=None, help='"user/name"')
    g.add_argument("--hub_private", action=bool_flag, default=False)
    g.add_argument("--model_name", type=str, default=None, help="title of the model card")
    g.add_argument("--training_data", type=str, default=None, help="model card: training data description")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Recipe (`--config`) values become defaults; flags override them."""
    parser = build_arg_parser()
    known, _ = parser.parse_known_args(argv)
    if known.config:
        parser.set_defaults(**load_config(known.config, parser))
    args = parser.parse_args(argv)
    if not args.train_sources:
        parser.error("no training data: set train_sources in the recipe or pass --train_sources")
    if args.adversarial != "none" and args.critic_kwargs is None:
        parser.error(f"--adversarial {args.adversarial} needs a critic: set critic_kwargs (e.g. '{{}}' for PatchGAN defaults)")
    if args.adversarial != "none" and args.gradient_accumulation_steps > 1:
        parser.error("gradient accumulation is not supported with a critic (critic steps reuse one batch); "
                     "use --gradient_accumulation_steps 1")
    if args.content_loss == "none" and not args.fft_weight and args.perceptual == "none" and args.adversarial == "none":
        parser.error("no loss: set --content_loss, --fft_weight, --perceptual or --adversarial")
    if args.push_to_hub and not args.hub_model_id:
        parser.error("--push_to_hub needs --hub_model_id user/name")
    if args.critic_steps < 1:
        parser.error(f"--critic_steps must be >= 1, got {args.critic_steps}")
    return args


# ----------------------------------------------------------------------------- what main calls


def default_num_threads() -> int:
    """Usable cores divided by the processes on this machine (torchrun/accelerate set LOCAL_WORLD_SIZE)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def claim_output_dir(accelerator: Accelerator, output_dir: Path) -> IO[str] | None:
    """Lock the run folder (main process) or stop every process; returns the lock, to hold until exit."""
    refusal, run_lock = [None], None
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        try:
            run_lock = lock_output_dir(output_dir)
        except RunFolderInUse as err:
            refusal = [str(err)]
        else:
            remove_stale_temp_dirs(output_dir)  # only now: another run's temp folders are not stale
    broadcast_object_list(refusal)  # every process stops, not only the main one
    if refusal[0]:
        raise SystemExit(f"train_accelerate.py: error: {refusal[0]}" if accelerator.is_main_process else 1)
    accelerator.wait_for_everyone()
    return run_lock


def build_model(args: argparse.Namespace) -> DeblurGAN:
    if not args.init_from:
        return DeblurGAN(args.generator, args.generator_kwargs, critic_kwargs=args.critic_kwargs)
    init = DeblurGAN.from_pretrained(args.init_from)
    model = DeblurGAN(init.generator_name, init.generator_kwargs, critic_kwargs=args.critic_kwargs)
    model.generator.load_state_dict(init.generator.state_dict())
    return model


def make_optimizer(args: argparse.Namespace, params, lr: float) -> torch.optim.Optimizer:
    opt_cls = torch.optim.AdamW if args.optimizer == "adamw" else torch.optim.Adam
    return opt_cls(params, lr=lr, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon,
                   weight_decay=args.weight_decay)


def batch_for_step(batch: dict, step: int) -> dict:
    """The batch that update `step` (1-based) trains on: the loader's. A seam for tests, which
    replace it to feed corrupt batches (tests/train_hooked.py)."""
    return batch


def card_kwargs(args: argparse.Namespace, accelerator: Accelerator, step: int, metrics: dict | None) -> dict:
    """The model card's fields for an export after `step` updates, with `metrics` (validation, step)."""
    shown = {k: round(v, 4) for k, v in (metrics or {}).items()}
    recipe = (f"Trained with `train_accelerate.py` for {step} steps "
              f"(batch {args.train_batch_size} x {accelerator.num_processes} process(es) x "
              f"{args.gradient_accumulation_steps} accumulation, {args.crop_size}px crops). "
              f"Options:\n\n```json\n{json.dumps(recipe_dict(args), indent=2)}\n```")
    kwargs = {"model_name": args.model_name, "metrics": shown, "recipe": recipe, "command": command_line(),
              "training_data": args.training_data or "Sources: " + ", ".join(f"`{s}`" for s in args.train_sources),
              "datasets": hub_datasets(args.train_sources), "base_model": base_model_id(args.init_from)}
    if metrics and "val_psnr" in metrics:  # the card's model-index metadata (shown by the Hub)
        kwargs["eval_results"] = validation_eval_results(metrics, args.val_sources, args.val_center_crop,
                                                         args.val_max_images)
    return kwargs


def run_validation(args, accelerator, model: DeblurGAN, generator, val_dataset, state: RunState,
                   metrics_log: MetricsLog, output_dir: Path) -> dict:
    """Main process only: metrics, grid PNG, and the `best/` export when PSNR improves."""
    step = state.global_step
    metrics, rows = validate(accelerator.unwrap_model(generator), val_dataset, device=accelerator.device,
                             max_images=args.val_max_images, grid_images=args.val_grid_images,
                             autocast=accelerator.autocast)
    grid = save_image_grid(rows, output_dir / f"val_grid_step{step:07d}.png")
    metrics_log.append({"step": step, **metrics})
    accelerator.log(metrics, step=step)
    logger.info(f"step {step}: val PSNR {metrics['val_psnr']:.3f} dB, SSIM {metrics['val_ssim']:.4f}",
                main_process_only=True)
    if metrics["val_psnr"] > state.best_val_psnr:
        state.best_val_psnr, state.best_step = metrics["val_psnr"], step
        curves = plot_curves(metrics_log.read(), output_dir / "training_curves.png")
        export_model(model, output_dir / "best", card_kwargs=card_kwargs(args, accelerator, step, {**metrics, "step": step}),
                     extra_files=[curves, grid])
    return metrics


def stop_message(args: argparse.Namespace, output_dir: Path, step: int, in_a_row: int) -> str:
    checkpoints = list_checkpoints(output_dir)
    last = checkpoints[-1][1] if checkpoints else None
    return (f"stopped at step {step}: {in_a_row} non-finite losses in a row "
            f"(--max_nonfinite_in_a_row {args.max_nonfinite_in_a_row}); the last good checkpoint "
            f"is {last or 'none (no checkpoint was saved yet)'}; lower --learning_rate, set "
            f"--max_grad_norm, or check the data, then --resume_from_checkpoint latest")


# ----------------------------------------------------------------------------- main


def main(args: argparse.Namespace) -> None:
    # ------------------------------------------------------------------ Accelerator, run folder
    output_dir = Path(args.output_dir)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        # Seedable sampler: the shuffle order depends only on (seed, epoch), so resuming mid-epoch is exact.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
        # The schedules count optimizer updates: stepped once per update, not once per process.
        step_scheduler_with_optimizer=False,
        # Validation runs on the main process while the others wait; full frames on CPU can take a while.
        kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(hours=2))],
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    logging.getLogger("accelerate").setLevel(logging.WARNING)  # one INFO line per saved file otherwise
    torch.set_num_threads(args.num_threads or default_num_threads())
    set_seed(args.seed)
    run_lock = claim_output_dir(accelerator, output_dir)  # noqa: F841 - held (open) until this process exits
    logger.info(f"{accelerator.num_processes} process(es), {torch.get_num_threads()} threads each, "
                f"mixed precision {accelerator.mixed_precision}", main_process_only=True)

    # ------------------------------------------------------------------ data
    train_dataset = build_train_dataset(
        args.train_sources, crop_size=args.crop_size, blur=args.blur, real_fraction=args.real_fraction,
        seed=args.seed, min_size=args.min_size,
    )
    check_enough(train_dataset, args.train_batch_size * accelerator.num_processes)
    train_loader = torch.utils.data.DataLoader(
        train_dataset, batch_size=args.train_batch_size, shuffle=True, drop_last=True,
        num_workers=args.dataloader_num_workers,
    )
    val_dataset = None
    if args.val_sources:
        val_dataset = build_val_dataset(args.val_sources, blur=args.val_blur or args.blur, seed=args.seed,
                                        max_size=args.val_max_size, center_crop=args.val_center_crop)

    # ------------------------------------------------------------------ models and losses
    model = build_model(args)
    model.train()
    generator, critic = model.generator, model.critic
    with accelerator.main_process_first():  # one process downloads the VGG weights, the others read the cache
        perceptual_loss = build_perceptual_loss(args.perceptual)
    if perceptual_loss is not None:
        perceptual_loss.to(accelerator.device)
    adversarial_loss = build_adversarial_loss(args.adversarial, gp_weight=args.gp_weight)
    use_critic = adversarial_loss is not None
    objective = GeneratorObjective(
        content=build_content_loss(args.content_loss, multiscale_weights=args.multiscale_weights)
        if args.content_loss != "none" else None,
        content_weight=args.content_weight, fft_weight=args.fft_weight,
        perceptual=perceptual_loss, perceptual_weight=args.perceptual_weight,
        adversarial=adversarial_loss, adversarial_weight=args.adversarial_weight,
    )

    # ------------------------------------------------------------------ optimizers, schedules, prepare
    # Updates per epoch as the prepared (per-process, sharded) loader will yield them.
    batches_per_epoch = len(train_dataset) // (args.train_batch_size * accelerator.num_processes)
    steps_per_epoch = math.ceil(batches_per_epoch / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_train_epochs * steps_per_epoch
    num_epochs = math.ceil(max_train_steps / steps_per_epoch)
    schedule = {"name": args.lr_scheduler, "num_training_steps": max_train_steps,
                "num_warmup_steps": args.lr_warmup_steps, "constant_fraction": args.lr_constant_fraction,
                "min_ratio": args.lr_min_ratio}
    optimizer_g = make_optimizer(args, generator.parameters(), args.learning_rate)
    scheduler_g = build_lr_scheduler(optimizer_g, **schedule)
    optimizer_d = scheduler_d = None
    if use_critic:
        optimizer_d = make_optimizer(args, critic.parameters(), args.critic_learning_rate or args.learning_rate)
        scheduler_d = build_lr_scheduler(optimizer_d, **schedule)
        generator, critic, optimizer_g, optimizer_d, scheduler_g, scheduler_d, train_loader = accelerator.prepare(
            generator, critic, optimizer_g, optimizer_d, scheduler_g, scheduler_d, train_loader
        )
    else:
        generator, optimizer_g, scheduler_g, train_loader = accelerator.prepare(
            generator, optimizer_g, scheduler_g, train_loader
        )
    schedulers = [s for s in (scheduler_g, scheduler_d) if s is not None]
    if len(train_loader) != batches_per_epoch:  # the schedule above was sized from this number
        raise RuntimeError(f"prepared loader yields {len(train_loader)} batches per epoch, expected {batches_per_epoch}")

    # ------------------------------------------------------------------ trackers, metrics log, resume
    if accelerator.is_main_process:
        accelerator.init_trackers(args.tracker_project_name, config={
            k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in recipe_dict(args).items()
        })
    metrics_log = MetricsLog(output_dir / "metrics.jsonl", enabled=accelerator.is_main_process)
    state, first_epoch, skip_batches = RunState(), 0, 0
    resume_from = resolve_resume_checkpoint(args.resume_from_checkpoint, output_dir)
    if args.resume_from_checkpoint and resume_from is None:
        logger.info(f"no checkpoint in {output_dir}; starting a new run", main_process_only=True)
    if resume_from is not None:
        accelerator.load_state(str(resume_from))
        state = RunState.read(resume_from)
        for scheduler in schedulers:  # older multi-process checkpoints counted updates x processes
            count_updates(scheduler, state.global_step)
        first_epoch, step_in_epoch = divmod(state.global_step, steps_per_epoch)
        skip_batches = step_in_epoch * args.gradient_accumulation_steps
        metrics_log.truncate_after(state.global_step)
        logger.info(f"resumed from {resume_from} at step {state.global_step} (epoch {first_epoch}, "
                    f"skipping {skip_batches} batches)", main_process_only=True)
    if accelerator.is_main_process:
        atomic_write_text(output_dir / "recipe.json", json.dumps(recipe_dict(args), indent=2))

    # ------------------------------------------------------------------ the loop
    logger.info(f"{len(train_dataset)} training samples, {steps_per_epoch} steps per epoch, "
                f"{max_train_steps} steps ({num_epochs} epochs)", main_process_only=True)
    progress = tqdm(total=max_train_steps, initial=state.global_step, desc="steps",
                    disable=not accelerator.is_local_main_process)
    models = [m for m in (generator, critic) if m is not None]
    nonfinite_in_a_row, running, last_val = 0, {}, None
    finite_so_far, step_start = True, time.perf_counter()  # over the micro-batches of one update
    for epoch in range(first_epoch, num_epochs):
        if hasattr(train_dataset, "set_epoch"):
            train_dataset.set_epoch(epoch)
        train_loader.set_epoch(epoch)
        loader, first_batch = train_loader, 0
        if epoch == first_epoch and skip_batches:
            loader, first_batch = accelerator.skip_first_batches(train_loader, skip_batches), skip_batches
        for batch_index, batch in enumerate(loader, start=first_batch):
            # Randomness inside a step (dropout, gradient-penalty interpolation) depends only on
            # (seed, epoch, batch, process): a resumed run draws exactly what an unbroken one did,
            # although creating the skipping DataLoader iterator consumed global RNG.
            torch.manual_seed((((args.seed * 1_000_003 + epoch) * 1_000_003 + batch_index) * 4096
                               + accelerator.process_index) % (2**63))
            batch = batch_for_step(batch, state.global_step + 1)
            blur, sharp = batch["blur"], batch["sharp"]
            with accelerator.accumulate(*models):
                out = generator(blur)
                fake = out[-1] if isinstance(out, (list, tuple)) else out
                critic_result = None
                if use_critic:
                    critic_result = critic_step(accelerator, critic, optimizer_d, adversarial_loss, sharp, fake,
                                                updates=args.critic_steps, max_grad_norm=args.max_grad_norm)
                result = generator_step(accelerator, generator, optimizer_g,
                                        objective.terms(out, fake, sharp, critic), max_grad_norm=args.max_grad_norm,
                                        finite_so_far=finite_so_far and (critic_result is None or critic_result.finite))
            logs = {**(critic_result.losses if critic_result else {}), **result.losses}
            for k, v in logs.items():
                if math.isfinite(v):  # skipped (non-finite) steps are logged as such below
                    running.setdefault(k, []).append(v)
            if not accelerator.sync_gradients:
                finite_so_far = result.finite
                continue

            # ---------------------------------------------------------- one optimizer update done
            finite_so_far = True
            for scheduler in schedulers:
                scheduler.step()
            state.global_step += 1
            progress.update(1)
            running.setdefault("step_seconds", []).append(time.perf_counter() - step_start)  # data + compute
            if result.finite:
                nonfinite_in_a_row = 0
                running.setdefault("train_psnr", []).append(float(psnr_torch(fake.detach().float(), sharp.float()).mean()))
                running.setdefault("grad_norm", []).append(float(result.grad_norm))
            else:
                nonfinite_in_a_row += 1
                state.nonfinite_total += 1
                metrics_log.append({"step": state.global_step, "nonfinite": 1, "nonfinite_total": state.nonfinite_total})
                accelerator.log({"nonfinite_total": state.nonfinite_total}, step=state.global_step)
                logger.warning(f"step {state.global_step}: non-finite loss or gradient, update skipped "
                               f"({nonfinite_in_a_row} in a row, {state.nonfinite_total} in total)",
                               main_process_only=True)
                if nonfinite_in_a_row >= args.max_nonfinite_in_a_row:
                    accelerator.end_training()
                    sys.exit(stop_message(args, output_dir, state.global_step, nonfinite_in_a_row))

            last_step = state.global_step == max_train_steps
            if state.global_step % args.logging_steps == 0 or last_step:
                record = {k: sum(v) / len(v) for k, v in running.items() if v}
                record["lr"] = scheduler_g.get_last_lr()[0]
                running = {}
                metrics_log.append({"step": state.global_step, **record})
                accelerator.log(record, step=state.global_step)
                progress.set_postfix(loss=f"{record.get('loss/total', float('nan')):.4f}",
                                     psnr=f"{record.get('train_psnr', float('nan')):.2f}")
            if val_dataset is not None and (state.global_step % args.validation_steps == 0 or last_step):
                if accelerator.is_main_process:
                    last_val = run_validation(args, accelerator, model, generator, val_dataset, state,
                                              metrics_log, output_dir)
                accelerator.wait_for_everyone()
            if state.global_step % args.checkpointing_steps == 0 or last_step:
                save_checkpoint(accelerator, output_dir, state.global_step, state.training_state(
                    steps_per_epoch=steps_per_epoch, accumulation=args.gradient_accumulation_steps,
                    num_processes=accelerator.num_processes, batch_size=args.train_batch_size,
                ), args.checkpoints_total_limit)
            step_start = time.perf_counter()  # validation and checkpoint time are not step time
            if state.global_step >= max_train_steps:
                break
        if state.global_step >= max_train_steps:
            break
    progress.close()

    # ------------------------------------------------------------------ final export, curves, Hub
    # Every process must hold the same weights after DDP training; a mismatch means a desynced run.
    checksums = accelerator.gather(torch.tensor([weights_checksum(model)], device=accelerator.device)).tolist()
    metrics_log.append({"step": state.global_step, "process_weight_checksums": checksums})
    if len(set(checksums)) > 1:
        logger.warning(f"processes ended with different weights: {checksums}", main_process_only=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        curves = plot_curves(metrics_log.read(), output_dir / "training_curves.png", title=args.model_name or "")
        final_metrics = {**(last_val or {}), "step": state.global_step}
        export_model(model, output_dir / "final", card_kwargs=card_kwargs(args, accelerator, state.global_step,
                                                                          final_metrics),
                     extra_files=[curves] if curves else [])
        if (output_dir / "best").is_dir() and curves:  # the curves up to the end of training, next to the best weights
            shutil.copy2(curves, output_dir / "best" / curves.name)
        logger.info(f"done: {state.global_step} steps; best val PSNR {state.best_val_psnr:.3f} dB at step "
                    f"{state.best_step}" if state.best_step else f"done: {state.global_step} steps",
                    main_process_only=True)
        if args.push_to_hub:
            folder = output_dir / "best" if (output_dir / "best").is_dir() else output_dir / "final"
            url = push_folder_to_hub(folder, args.hub_model_id, private=args.hub_private,
                                     commit_message=f"deblurgan-hf: {folder.name} after {state.global_step} steps")
            logger.info(f"pushed {folder} to {args.hub_model_id}: {url}", main_process_only=True)
    accelerator.end_training()


if __name__ == "__main__":
    main(parse_args())
