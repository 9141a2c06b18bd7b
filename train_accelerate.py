#!/usr/bin/env python
"""Train a deblurring generator (optionally adversarially, with a critic) with Hugging Face Accelerate.

    accelerate launch train_accelerate.py --config configs/nafnet_cpu.yaml
    accelerate launch train_accelerate.py --config configs/deblurgan_v1.yaml --output_dir outputs/v1
    accelerate launch train_accelerate.py --config configs/nafnet_cpu.yaml --resume_from_checkpoint latest

The same command runs on one CPU, one GPU or many processes (`accelerate launch --multi_gpu ...`).
Reads top to bottom: arguments, Accelerator, data, models, losses, optimizers, one `prepare`,
resume, the loop (critic steps, generator step, non-finite guard, checkpoints, validation), export.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

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
from deblurgan_hf.losses import build_adversarial_loss, build_content_loss, build_perceptual_loss, fft_loss
from deblurgan_hf.metrics import psnr_torch
from deblurgan_hf.training import (
    MetricsLog,
    build_lr_scheduler,
    command_line,
    default_num_threads,
    export_model,
    parse_args,
    plot_curves,
    push_folder_to_hub,
    read_training_state,
    recipe_dict,
    RunFolderInUse,
    lock_output_dir,
    remove_stale_temp_dirs,
    resolve_resume_checkpoint,
    save_checkpoint,
    save_image_grid,
    validate,
    validation_eval_results,
    weights_checksum,
)

logger = get_logger(__name__)


def main(argv: list[str] | None = None) -> None:
    # ------------------------------------------------------------------ arguments, Accelerator
    args = parse_args(argv)
    output_dir = Path(args.output_dir)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        # Seedable sampler: the shuffle order depends only on (seed, epoch), so resuming mid-epoch is exact.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
        # Validation runs on the main process while the others wait; full frames on CPU can take a while.
        kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(hours=2))],
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    logging.getLogger("accelerate").setLevel(logging.WARNING)  # one INFO line per saved file otherwise
    torch.set_num_threads(args.num_threads or default_num_threads())
    set_seed(args.seed)
    refusal = [None]
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        try:
            run_lock = lock_output_dir(output_dir)  # noqa: F841 - held (open) until this process exits
        except RunFolderInUse as err:
            refusal = [str(err)]
        else:
            remove_stale_temp_dirs(output_dir)  # only now: another run's temp folders are not stale
    broadcast_object_list(refusal)  # every process stops, not only the main one
    if refusal[0]:
        raise SystemExit(f"train_accelerate.py: error: {refusal[0]}" if accelerator.is_main_process else 1)
    accelerator.wait_for_everyone()
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
        val_dataset = build_val_dataset(
            args.val_sources, blur=args.val_blur or args.blur, seed=args.seed, max_size=args.val_max_size, center_crop=args.val_center_crop,
        )

    # ------------------------------------------------------------------ models and losses
    if args.init_from:
        init = DeblurGAN.from_pretrained(args.init_from)
        model = DeblurGAN(init.generator_name, init.generator_kwargs, critic_kwargs=args.critic_kwargs)
        model.generator.load_state_dict(init.generator.state_dict())
    else:
        model = DeblurGAN(args.generator, args.generator_kwargs, critic_kwargs=args.critic_kwargs)
    model.train()
    generator, critic = model.generator, model.critic
    content_loss = build_content_loss(args.content_loss, multiscale_weights=args.multiscale_weights) \
        if args.content_loss != "none" else None
    with accelerator.main_process_first():  # one process downloads the VGG weights, the others read the cache
        perceptual_loss = build_perceptual_loss(args.perceptual,
                                                random_weights_for_tests=args.perceptual_random_weights_for_tests)
    if perceptual_loss is not None:
        perceptual_loss.to(accelerator.device)
    adversarial_loss = build_adversarial_loss(args.adversarial, gp_weight=args.gp_weight)
    use_critic = adversarial_loss is not None

    # ------------------------------------------------------------------ optimizers and schedules
    def make_optimizer(params, lr: float) -> torch.optim.Optimizer:
        opt_cls = torch.optim.AdamW if args.optimizer == "adamw" else torch.optim.Adam
        return opt_cls(params, lr=lr, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon,
                       weight_decay=args.weight_decay)

    # Updates per epoch as the prepared (per-process, sharded) loader will yield them.
    batches_per_epoch = len(train_dataset) // (args.train_batch_size * accelerator.num_processes)
    steps_per_epoch = math.ceil(batches_per_epoch / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_train_epochs * steps_per_epoch
    num_epochs = math.ceil(max_train_steps / steps_per_epoch)

    def make_scheduler(opt: torch.optim.Optimizer):
        return build_lr_scheduler(
            opt, args.lr_scheduler, num_training_steps=max_train_steps, num_warmup_steps=args.lr_warmup_steps,
            constant_fraction=args.lr_constant_fraction, min_ratio=args.lr_min_ratio,
            num_processes=accelerator.num_processes,
        )

    optimizer_g = make_optimizer(generator.parameters(), args.learning_rate)
    scheduler_g = make_scheduler(optimizer_g)
    if use_critic:
        optimizer_d = make_optimizer(critic.parameters(), args.critic_learning_rate or args.learning_rate)
        scheduler_d = make_scheduler(optimizer_d)
        generator, critic, optimizer_g, optimizer_d, scheduler_g, scheduler_d, train_loader = accelerator.prepare(
            generator, critic, optimizer_g, optimizer_d, scheduler_g, scheduler_d, train_loader
        )
    else:
        generator, optimizer_g, scheduler_g, train_loader = accelerator.prepare(
            generator, optimizer_g, scheduler_g, train_loader
        )
    if len(train_loader) != batches_per_epoch:  # the schedule above was sized from this number
        raise RuntimeError(f"prepared loader yields {len(train_loader)} batches per epoch, expected {batches_per_epoch}")

    # ------------------------------------------------------------------ trackers, metrics log, resume
    if accelerator.is_main_process:
        accelerator.init_trackers(args.tracker_project_name, config={
            k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in recipe_dict(args).items()
        })
    metrics_log = MetricsLog(output_dir / "metrics.jsonl", enabled=accelerator.is_main_process)
    global_step, first_epoch, skip_batches = 0, 0, 0
    best_val_psnr, best_step, nonfinite_total = -math.inf, None, 0
    resume_from = resolve_resume_checkpoint(args.resume_from_checkpoint, output_dir)
    if args.resume_from_checkpoint and resume_from is None:
        logger.info(f"no checkpoint in {output_dir}; starting a new run", main_process_only=True)
    if resume_from is not None:
        accelerator.load_state(str(resume_from))
        state = read_training_state(resume_from)
        global_step = state["global_step"]
        first_epoch, step_in_epoch = divmod(global_step, steps_per_epoch)
        skip_batches = step_in_epoch * args.gradient_accumulation_steps
        best_val_psnr = state.get("best_val_psnr") or -math.inf
        best_step, nonfinite_total = state.get("best_step"), state.get("nonfinite_total", 0)
        metrics_log.truncate_after(global_step)
        logger.info(f"resumed from {resume_from} at step {global_step} (epoch {first_epoch}, "
                    f"skipping {skip_batches} batches)", main_process_only=True)
    if accelerator.is_main_process:
        (output_dir / "recipe.json").write_text(json.dumps(recipe_dict(args), indent=2))

    def training_state() -> dict:
        return {"global_step": global_step, "epoch": global_step // steps_per_epoch,
                "batches_done_in_epoch": (global_step % steps_per_epoch) * args.gradient_accumulation_steps,
                "best_val_psnr": best_val_psnr if math.isfinite(best_val_psnr) else None, "best_step": best_step,
                "nonfinite_total": nonfinite_total, "num_processes": accelerator.num_processes,
                "total_batch_size": args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps}

    def card_kwargs(metrics: dict | None) -> dict:
        shown = {k: round(v, 4) for k, v in (metrics or {}).items()}
        recipe = (f"Trained with `train_accelerate.py` for {global_step} steps "
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

    def run_validation() -> dict:
        """Main process only: metrics, grid PNG, and the `best/` export when PSNR improves."""
        nonlocal best_val_psnr, best_step
        metrics, rows = validate(accelerator.unwrap_model(generator), val_dataset, device=accelerator.device,
                                 max_images=args.val_max_images, grid_images=args.val_grid_images,
                                 autocast=accelerator.autocast)
        grid = save_image_grid(rows, output_dir / f"val_grid_step{global_step:07d}.png")
        metrics_log.append({"step": global_step, **metrics})
        accelerator.log(metrics, step=global_step)
        logger.info(f"step {global_step}: val PSNR {metrics['val_psnr']:.3f} dB, SSIM {metrics['val_ssim']:.4f}",
                    main_process_only=True)
        if metrics["val_psnr"] > best_val_psnr:
            best_val_psnr, best_step = metrics["val_psnr"], global_step
            curves = plot_curves(metrics_log.read(), output_dir / "training_curves.png")
            export_model(model, output_dir / "best", card_kwargs=card_kwargs({**metrics, "step": global_step}),
                         extra_files=[curves, grid])
        return metrics

    # ------------------------------------------------------------------ the loop
    logger.info(f"{len(train_dataset)} training samples, {steps_per_epoch} steps per epoch, "
                f"{max_train_steps} steps ({num_epochs} epochs)", main_process_only=True)
    progress = tqdm(total=max_train_steps, initial=global_step, desc="steps",
                    disable=not accelerator.is_local_main_process)
    inject_nan = set(args.inject_nan_at_steps)
    nonfinite_in_a_row, running, last_val = 0, {}, None

    def all_finite(*values: torch.Tensor) -> bool:
        """The same answer on every process (a process that skipped its backward alone would hang DDP)."""
        bad = torch.tensor([0.0 if all(torch.isfinite(v).all() for v in values) else 1.0], device=accelerator.device)
        return bool(accelerator.reduce(bad, reduction="sum").item() == 0)

    def grad_norm(module, max_norm: float | None) -> torch.Tensor:
        """Total gradient norm (clipped to max_norm if set); non-finite when a gradient is."""
        if max_norm:
            return accelerator.clip_grad_norm_(module.parameters(), max_norm)
        return torch.nn.utils.clip_grad_norm_(module.parameters(), float("inf"))

    step_ok, step_start = True, time.perf_counter()
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
            blur, sharp = batch["blur"], batch["sharp"]
            if global_step + 1 in inject_nan:
                blur = torch.full_like(blur, float("nan"))  # test-only: what a corrupt batch does
            logs = {}
            with accelerator.accumulate(*(m for m in (generator, critic) if m is not None)):
                out = generator(blur)
                fake = out[-1] if isinstance(out, (list, tuple)) else out

                # Critic: `critic_steps` updates on this batch (DeblurGAN: 5), the generator output detached.
                if use_critic:
                    for _ in range(args.critic_steps):
                        loss_d, d_logs = adversarial_loss.critic_loss(critic, sharp, fake.detach())
                        optimizer_d.zero_grad(set_to_none=True)
                        if not all_finite(loss_d):
                            step_ok = False
                            continue
                        accelerator.backward(loss_d)
                        norm_d = grad_norm(critic, args.max_grad_norm)
                        if not torch.isfinite(norm_d):
                            step_ok = False
                            continue
                        optimizer_d.step()
                    optimizer_d.zero_grad(set_to_none=True)
                    scheduler_d.step()
                    logs.update({"loss/critic": float(loss_d.detach()), **d_logs})

                # Generator: content (+ FFT) (+ perceptual) (+ adversarial).
                terms = {}
                if content_loss is not None:
                    terms["content"] = args.content_weight * content_loss(out, sharp)
                if args.fft_weight:
                    terms["fft"] = args.fft_weight * fft_loss(fake, sharp)
                if perceptual_loss is not None:
                    terms["perceptual"] = args.perceptual_weight * perceptual_loss(fake, sharp)
                if use_critic:
                    terms["adversarial"] = args.adversarial_weight * adversarial_loss.generator_loss(critic, sharp, fake)
                loss_g = sum(terms.values())
                if all_finite(loss_g):
                    accelerator.backward(loss_g)
                else:
                    step_ok = False
                if accelerator.sync_gradients:
                    norm_g = grad_norm(generator, args.max_grad_norm)
                    if step_ok and torch.isfinite(norm_g):
                        optimizer_g.step()
                    else:
                        step_ok = False
                    scheduler_g.step()
                    optimizer_g.zero_grad(set_to_none=True)

            for name, value in terms.items():
                logs[f"loss/{name}"] = float(value.detach())
            logs["loss/total"] = float(loss_g.detach())
            for k, v in logs.items():
                if math.isfinite(v):  # skipped (non-finite) steps are logged as such below
                    running.setdefault(k, []).append(v)
            if not accelerator.sync_gradients:
                continue

            # ---------------------------------------------------------- one optimizer update done
            global_step += 1
            progress.update(1)
            running.setdefault("step_seconds", []).append(time.perf_counter() - step_start)  # data + compute
            if step_ok:
                nonfinite_in_a_row = 0
                running.setdefault("train_psnr", []).append(float(psnr_torch(fake.detach().float(), sharp.float()).mean()))
                running.setdefault("grad_norm", []).append(float(norm_g))
            else:
                nonfinite_in_a_row += 1
                nonfinite_total += 1
                metrics_log.append({"step": global_step, "nonfinite": 1, "nonfinite_total": nonfinite_total})
                accelerator.log({"nonfinite_total": nonfinite_total}, step=global_step)
                logger.warning(f"step {global_step}: non-finite loss or gradient, update skipped "
                               f"({nonfinite_in_a_row} in a row, {nonfinite_total} in total)", main_process_only=True)
                if nonfinite_in_a_row >= args.max_nonfinite_in_a_row:
                    ckpts = [p for p in output_dir.glob("checkpoint-*") if (p / "training_state.json").is_file()]
                    last = max(ckpts, key=lambda p: int(p.name.split("-")[1]), default=None)
                    accelerator.end_training()
                    sys.exit(f"stopped at step {global_step}: {nonfinite_in_a_row} non-finite losses in a row "
                             f"(--max_nonfinite_in_a_row {args.max_nonfinite_in_a_row}); the last good checkpoint "
                             f"is {last or 'none (no checkpoint was saved yet)'}; lower --learning_rate, set "
                             f"--max_grad_norm, or check the data, then --resume_from_checkpoint latest")
            step_ok = True

            if global_step % args.logging_steps == 0 or global_step == max_train_steps:
                record = {k: sum(v) / len(v) for k, v in running.items() if v}
                record["lr"] = scheduler_g.get_last_lr()[0]
                running = {}
                metrics_log.append({"step": global_step, **record})
                accelerator.log(record, step=global_step)
                progress.set_postfix(loss=f"{record.get('loss/total', float('nan')):.4f}",
                                     psnr=f"{record.get('train_psnr', float('nan')):.2f}")
            if val_dataset is not None and (global_step % args.validation_steps == 0 or global_step == max_train_steps):
                if accelerator.is_main_process:
                    last_val = run_validation()
                accelerator.wait_for_everyone()
            if global_step % args.checkpointing_steps == 0 or global_step == max_train_steps:
                save_checkpoint(accelerator, output_dir, global_step, training_state(), args.checkpoints_total_limit)
            step_start = time.perf_counter()  # validation and checkpoint time are not step time
            if global_step >= max_train_steps:
                break
        if global_step >= max_train_steps:
            break
    progress.close()

    # ------------------------------------------------------------------ final export, curves, Hub
    # Every process must hold the same weights after DDP training; a mismatch means a desynced run.
    checksums = accelerator.gather(torch.tensor([weights_checksum(model)], device=accelerator.device)).tolist()
    metrics_log.append({"step": global_step, "process_weight_checksums": checksums})
    if len(set(checksums)) > 1:
        logger.warning(f"processes ended with different weights: {checksums}", main_process_only=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        curves = plot_curves(metrics_log.read(), output_dir / "training_curves.png", title=args.model_name or "")
        final_metrics = dict(last_val or {})
        export_model(model, output_dir / "final", card_kwargs=card_kwargs({**final_metrics, "step": global_step}),
                     extra_files=[curves] if curves else [])
        if (output_dir / "best").is_dir() and curves:
            # the curves up to the end of training, next to the best weights
            import shutil

            shutil.copy2(curves, output_dir / "best" / curves.name)
        logger.info(f"done: {global_step} steps; best val PSNR "
                    f"{best_val_psnr:.3f} dB at step {best_step}" if best_step else f"done: {global_step} steps",
                    main_process_only=True)
        if args.push_to_hub:
            folder = output_dir / "best" if (output_dir / "best").is_dir() else output_dir / "final"
            url = push_folder_to_hub(folder, args.hub_model_id, private=args.hub_private,
                                     commit_message=f"deblurgan-hf: {folder.name} after {global_step} steps")
            logger.info(f"pushed {folder} to {args.hub_model_id}: {url}", main_process_only=True)
    accelerator.end_training()


if __name__ == "__main__":
    main()
