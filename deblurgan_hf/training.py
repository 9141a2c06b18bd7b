"""What `train_accelerate.py` calls: arguments and recipes, LR schedules, checkpoints, validation, export.

Recipes are YAML/JSON files whose keys are the script's flags; a flag on the command line overrides
the recipe (`--config configs/nafnet_cpu.yaml --learning_rate 2e-4`), an unknown key is an error.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Sequence

import torch
from torch.optim.lr_scheduler import LambdaLR

from ._extras import needs

__all__ = [
    "build_arg_parser",
    "parse_args",
    "load_config",
    "LR_SCHEDULERS",
    "lr_factor",
    "build_lr_scheduler",
    "list_checkpoints",
    "resolve_resume_checkpoint",
    "save_checkpoint",
    "read_training_state",
    "MetricsLog",
    "plot_curves",
    "validate",
    "save_image_grid",
    "export_model",
    "atomic_write_text",
    "default_num_threads",
    "parse_int_list",
    "weights_checksum",
    "validation_eval_results",
    "lock_output_dir",
    "RunFolderInUse",
]

TRAINING_STATE_NAME = "training_state.json"
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
TMP_PREFIX = ".tmp-"
RUN_LOCK_NAME = ".run.lock"


# ----------------------------------------------------------------------------- arguments and recipes


def _json_value(text: str) -> Any:
    """A JSON value from the command line (`--generator_kwargs '{"width": 16}'`, `--blur null`)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {text!r} ({err.msg})") from err


def _optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "null") else float(text)


def _optional_int(text: str) -> int | None:
    return None if text.lower() in ("none", "null") else int(text)


def parse_int_list(text: str | Sequence[int] | None) -> list[int]:
    """"3,4" or [3, 4] -> [3, 4]; "" / None -> []."""
    if text is None or text == "":
        return []
    if isinstance(text, str):
        try:
            return [int(t) for t in text.split(",") if t.strip()]
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from err
    return [int(t) for t in text]


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
    g.add_argument("--num_threads", type=_optional_int, default=None,
                   help="torch CPU threads per process (default: usable cores / processes on this machine)")

    g = p.add_argument_group("data")
    g.add_argument("--train_sources", type=str, nargs="+", default=None,
                   help="source specs, e.g. sharp:../shared/data/sharp/urban100 paired:../shared/data/gopro_real/train")
    g.add_argument("--val_sources", type=str, nargs="*", default=[], help="validation source specs (paired: or sharp:)")
    g.add_argument("--blur", type=_json_value, default=None, help="blur synthesis settings for sharp: sources (JSON)")
    g.add_argument("--val_blur", type=_json_value, default=None,
                   help="blur synthesis for sharp: validation sources (JSON); default: --blur")
    g.add_argument("--real_fraction", type=_optional_float, default=None,
                   help="fraction of training samples drawn from paired (real) sources; None = by count")
    g.add_argument("--crop_size", type=int, default=128)
    g.add_argument("--min_size", type=_optional_int, default=None, help="skip training images smaller than this")
    g.add_argument("--val_max_images", type=_optional_int, default=None, help="validate on the first N images only")
    g.add_argument("--val_center_crop", type=_optional_int, default=None,
                   help="validate on centre crops of this size (full 1280x720 frames are slow on CPU)")
    g.add_argument("--val_max_size", type=_optional_int, default=None, help="downscale validation images above this side")
    g.add_argument("--dataloader_num_workers", type=int, default=0)

    g = p.add_argument_group("model")
    g.add_argument("--generator", type=str, default="nafnet", help="resnet, unet, multiscale or nafnet")
    g.add_argument("--generator_kwargs", type=_json_value, default={}, help="generator constructor arguments (JSON)")
    g.add_argument("--critic_kwargs", type=_json_value, default=None,
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
    g.add_argument("--perceptual_random_weights_for_tests", action=bool_flag, default=False,
                   help="TEST ONLY: random VGG weights (meaningless loss; for tests and speed benchmarks)")
    g.add_argument("--adversarial", type=str, default="none", choices=["none", "wgan-gp", "lsgan", "vanilla", "ragan-ls"])
    g.add_argument("--adversarial_weight", type=float, default=1.0)
    g.add_argument("--gp_weight", type=float, default=10.0, help="WGAN-GP gradient penalty weight")
    g.add_argument("--critic_steps", type=int, default=1, help="critic updates per generator update (same batch)")

    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", type=str, default="adamw", choices=["adam", "adamw"])
    g.add_argument("--learning_rate", type=float, default=1e-4)
    g.add_argument("--critic_learning_rate", type=_optional_float, default=None, help="default: --learning_rate")
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
    g.add_argument("--max_train_steps", type=_optional_int, default=None, help="overrides --num_train_epochs")
    g.add_argument("--num_train_epochs", type=int, default=1)
    g.add_argument("--gradient_accumulation_steps", type=int, default=1)
    g.add_argument("--max_grad_norm", type=_optional_float, default=None, help="clip gradients to this norm (None = off)")
    g.add_argument("--mixed_precision", type=str, default=None, choices=["no", "fp16", "bf16"],
                   help="default: the accelerate config (bf16 works on recent CPUs)")

    g = p.add_argument_group("checkpoints")
    g.add_argument("--checkpointing_steps", type=int, default=500)
    g.add_argument("--checkpoints_total_limit", type=_optional_int, default=3, help="keep the last K checkpoints")
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
    g.add_argument("--inject_nan_at_steps", type=parse_int_list, default=[],
                   help="TEST ONLY: replace the batch of these (1-based) steps by NaNs, e.g. 3,4")

    g = p.add_argument_group("export and Hub")
    g.add_argument("--push_to_hub", action=bool_flag, default=False, help="upload the exported folder")
    g.add_argument("--hub_model_id", type=str, default=None, help='"user/name"')
    g.add_argument("--hub_private", action=bool_flag, default=False)
    g.add_argument("--model_name", type=str, default=None, help="title of the model card")
    g.add_argument("--training_data", type=str, default=None, help="model card: training data description")
    return p


def load_config(path: str | os.PathLike, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Read a YAML/JSON recipe and check every key and choice against the parser's options."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        config = json.loads(text)
    elif path.suffix in (".yaml", ".yml"):
        with needs("train"):
            import yaml

        config = yaml.safe_load(text) or {}
    else:
        raise ValueError(f"--config {path}: unknown format {path.suffix!r}; allowed: .yaml, .yml, .json")
    if not isinstance(config, dict):
        raise ValueError(f"{path}: a recipe is a mapping of option names to values, got {type(config).__name__}")
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "config")}
    for key, value in config.items():
        if key not in actions:
            raise ValueError(f"{path}: unknown key {key!r}; allowed keys are the flags of train_accelerate.py: {sorted(actions)}")
        action = actions[key]
        if action.choices is not None and value is not None and value not in action.choices:
            raise ValueError(f"{path}: {key}: {value!r} is not allowed; choose one of {list(action.choices)}")
        if action.type in (int, float) and action.nargs is None and (
            isinstance(value, bool) or not isinstance(value, (int, float))
        ):
            raise ValueError(f"{path}: {key}: expected a number, got {value!r}")
        if action.type is parse_int_list:
            config[key] = parse_int_list(value)
    return config


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
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


def recipe_dict(args: argparse.Namespace) -> dict[str, Any]:
    """The resolved options (what the run actually used), JSON-serialisable."""
    return {k: v for k, v in sorted(vars(args).items())}


def default_num_threads() -> int:
    """Usable cores divided by the processes on this machine (torchrun/accelerate set LOCAL_WORLD_SIZE)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


# ----------------------------------------------------------------------------- learning-rate schedules

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
    num_processes: int = 1,
) -> LambdaLR:
    """A LambdaLR following `lr_factor` over `num_training_steps` optimizer updates.

    Accelerate's prepared scheduler steps `num_processes` times per update (it assumes the schedule
    counts samples across processes), so the count is divided back here: the LR after N updates is
    the same on 1 or many processes.
    """
    if name not in LR_SCHEDULERS:
        raise ValueError(f"unknown lr_scheduler {name!r}; allowed: {list(LR_SCHEDULERS)}")

    def factor(count: int) -> float:
        return lr_factor(name, count // num_processes, num_training_steps, warmup=num_warmup_steps,
                         constant_fraction=constant_fraction, min_ratio=min_ratio)

    return LambdaLR(optimizer, factor)


# ----------------------------------------------------------------------------- checkpoints


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _replace_dir(src: Path, dst: Path) -> None:
    """Move the finished folder `src` to `dst`; an existing `dst` is moved aside first, then removed."""
    if dst.exists():
        trash = dst.with_name(f"{TMP_PREFIX}old-{dst.name}")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(dst, trash)
        os.replace(src, dst)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(src, dst)


def list_checkpoints(output_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete `checkpoint-<step>` folders (with a training state), sorted by step."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = []
    for d in root.iterdir():
        m = CHECKPOINT_RE.match(d.name)
        if m and d.is_dir() and (d / TRAINING_STATE_NAME).is_file():
            found.append((int(m.group(1)), d))
    return sorted(found)


def resolve_resume_checkpoint(value: str | None, output_dir: str | os.PathLike) -> Path | None:
    """"latest" -> the highest complete checkpoint in output_dir (None if there is none); else a folder."""
    if not value:
        return None
    if value == "latest":
        ckpts = list_checkpoints(output_dir)
        return ckpts[-1][1] if ckpts else None
    path = Path(value)
    if not path.is_dir():
        raise FileNotFoundError(f"--resume_from_checkpoint {value}: no such folder")
    if not (path / TRAINING_STATE_NAME).is_file():
        raise FileNotFoundError(f"--resume_from_checkpoint {value}: incomplete checkpoint (no {TRAINING_STATE_NAME})")
    return path


def read_training_state(checkpoint: str | os.PathLike) -> dict[str, Any]:
    return json.loads((Path(checkpoint) / TRAINING_STATE_NAME).read_text(encoding="utf-8"))


def save_checkpoint(accelerator, output_dir: str | os.PathLike, step: int, state: dict[str, Any],
                    total_limit: int | None = None) -> Path:
    """`accelerator.save_state` into a temp folder, then rename it to `checkpoint-<step>` (all processes call this).

    The training state JSON is written last and the rename is atomic, so a kill at any point leaves
    either no `checkpoint-<step>` or a complete one; `latest` never points at a broken folder.
    """
    root = Path(output_dir)
    tmp = root / f"{TMP_PREFIX}checkpoint-{step}"
    final = root / f"checkpoint-{step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_text(tmp / TRAINING_STATE_NAME, json.dumps(state, indent=2))
        _replace_dir(tmp, final)
        if total_limit is not None and total_limit > 0:
            for _, old in list_checkpoints(root)[:-total_limit]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


class RunFolderInUse(RuntimeError):
    """Another training run holds the output folder."""


def lock_output_dir(output_dir: str | os.PathLike) -> IO[str]:
    """Lock `output_dir` for this run; keep the returned file open for as long as the run writes there.

    Two runs writing one folder interleave `metrics.jsonl` and race on checkpoints (a killed
    `accelerate launch` can leave its trainer running). `fcntl.flock` is released by the kernel when
    its holder exits, however it dies, so a lock file left by a killed run is simply taken over; the
    holder writes its PID and command into the file for the message. Raises RunFolderInUse.
    """
    import fcntl  # POSIX; the project's training runs on Linux

    path = Path(output_dir) / RUN_LOCK_NAME
    lock = path.open("a+", encoding="utf-8")  # "a+": a waiting run must not truncate the holder's PID
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip()
        lock.close()
        pid, _, command = holder.partition(" ")
        raise RunFolderInUse(
            f"{output_dir} is in use by another training run (PID {pid or 'unknown'}: {command or '?'}); "
            "wait for it to finish or stop it, or choose another --output_dir"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()} {command_line()}\n")
    lock.flush()
    return lock


def remove_stale_temp_dirs(output_dir: str | os.PathLike) -> None:
    """Leftovers of a run killed while saving (main process only)."""
    root = Path(output_dir)
    if root.is_dir():
        for d in root.iterdir():
            if d.name.startswith(TMP_PREFIX) and d.is_dir():
                shutil.rmtree(d, ignore_errors=True)


# ----------------------------------------------------------------------------- metrics log and curves


class MetricsLog:
    """Append-only JSON-lines log (`metrics.jsonl`) of training and validation records.

    Args:
        path: the jsonl file.
        enabled: False on non-main processes (nothing is written).
    """

    def __init__(self, path: str | os.PathLike, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def truncate_after(self, step: int) -> None:
        """On resume: drop records past the checkpoint so the log reads like one unbroken run."""
        if self.enabled and self.path.is_file():
            kept = [r for r in self.read() if r.get("step", 0) <= step]
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def append(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


def plot_curves(records: Iterable[dict[str, Any]], out_png: str | os.PathLike, title: str = "") -> Path | None:
    """Loss, PSNR and SSIM against step, from `MetricsLog` records, as one PNG (written atomically)."""
    with needs("train"):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

    records = list(records)
    if not records:
        return None
    series: dict[str, tuple[list[int], list[float]]] = {}
    for r in records:
        for k, v in r.items():
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                xs, ys = series.setdefault(k, ([], []))
                xs.append(r["step"])
                ys.append(v)
    panels = [
        ("loss", [k for k in series if k.startswith("loss/")], "log"),
        ("PSNR (dB)", [k for k in ("train_psnr", "val_psnr") if k in series], "linear"),
        ("SSIM", [k for k in ("val_ssim",) if k in series], "linear"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (label, keys, scale) in zip(axes, panels):
        for k in keys:
            xs, ys = series[k]
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=k)
        if keys and scale == "log" and all(v > 0 for k in keys for v in series[k][1]):
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if keys:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out_png = Path(out_png)
    tmp = out_png.with_name(f"{TMP_PREFIX}{out_png.name}")
    fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    os.replace(tmp, out_png)
    return out_png


# ----------------------------------------------------------------------------- validation


def _to_batch(x: Any) -> torch.Tensor:
    x = torch.as_tensor(x)
    return x.unsqueeze(0) if x.ndim == 3 else x


@torch.no_grad()
def validate(
    generator: torch.nn.Module,
    dataset: Any,
    *,
    device: torch.device | str = "cpu",
    max_images: int | None = None,
    grid_images: int = 3,
    autocast: Callable[[], Any] | None = None,
) -> tuple[dict[str, float], list[torch.Tensor]]:
    """Mean PSNR/SSIM (uint8 levels, `deblurgan_hf.metrics`) of the generator on a validation dataset.

    Returns the metrics and the first `grid_images` rows (blur | output | sharp) for `save_image_grid`.
    """
    from .metrics import psnr_torch, ssim_torch

    was_training = generator.training
    generator.eval()
    psnrs, ssims, rows = [], [], []
    n = len(dataset) if max_images is None else min(len(dataset), max_images)
    for i in range(n):
        item = dataset[i]
        blur, sharp = _to_batch(item["blur"]).to(device), _to_batch(item["sharp"]).to(device)
        if autocast is not None:
            with autocast():
                out = generator(blur)
        else:
            out = generator(blur)
        out = (out[-1] if isinstance(out, (list, tuple)) else out).float().clamp(0, 1)
        psnrs.append(psnr_torch(out, sharp.float()))
        ssims.append(ssim_torch(out, sharp.float()))
        if len(rows) < grid_images:
            rows.append(torch.cat([blur[0].float(), out[0], sharp[0].float()], dim=-1).cpu())
    generator.train(was_training)
    if not psnrs:
        raise ValueError("validation dataset is empty")
    metrics = {"val_psnr": float(torch.cat(psnrs).mean()), "val_ssim": float(torch.cat(ssims).mean())}
    return metrics, rows


def save_image_grid(rows: Sequence[torch.Tensor], path: str | os.PathLike, max_width: int = 1920) -> Path:
    """Stack (3, H, W_i) rows vertically (padded to the widest, downscaled to `max_width`) into a PNG."""
    import torch.nn.functional as F
    from PIL import Image

    width = max(r.shape[-1] for r in rows)
    padded = [F.pad(r, (0, width - r.shape[-1], 0, 4), value=1.0) for r in rows]
    grid = torch.cat(padded, dim=1)
    if grid.shape[-1] > max_width:
        scale = max_width / grid.shape[-1]
        grid = F.interpolate(grid[None], scale_factor=scale, mode="area")[0]
    arr = (grid.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    path = Path(path)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    Image.fromarray(arr).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------- export


def export_model(model: Any, out_dir: str | os.PathLike, *, card_kwargs: dict[str, Any],
                 extra_files: Sequence[str | os.PathLike] = ()) -> Path:
    """Write `model.for_inference()` as a Hub-ready folder (config, safetensors, model card) atomically.

    Args:
        model: the `DeblurGAN` being trained (its critic is dropped).
        card_kwargs: model card fields (metrics, recipe, command, ...).
        extra_files: copied into the folder (training curves, validation grid).
    """
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f"{TMP_PREFIX}{out_dir.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.for_inference().save_pretrained(tmp, model_card_kwargs=card_kwargs)
    for f in extra_files:
        if f and Path(f).is_file():
            shutil.copy2(f, tmp / Path(f).name)
    _replace_dir(tmp, out_dir)
    return out_dir


def validation_eval_results(metrics: dict[str, float], val_sources: Sequence[str], center_crop: int | None,
                            max_images: int | None) -> list:
    """`huggingface_hub.EvalResult`s (PSNR, SSIM on uint8 RGB) for the model card's model-index.

    The Hub files a result under its data set's Hub id and split (`cards.eval_dataset`), never a local path.
    """
    from huggingface_hub import EvalResult

    from .cards import eval_dataset

    dataset = eval_dataset(val_sources)
    how = (f"{center_crop}px centre crops" if center_crop else "full images") + (
        f", first {max_images} images" if max_images else "")
    return [
        EvalResult(task_type="image-to-image", task_name="Motion deblurring", dataset_type=dataset.id,
                   dataset_name=f"{dataset.name or dataset.id} ({how})", dataset_split=dataset.split,
                   metric_type=metric, metric_name=name, metric_value=round(float(metrics[key]), 4))
        for key, metric, name in (("val_psnr", "psnr", "PSNR (dB, RGB)"), ("val_ssim", "ssim", "SSIM (RGB)"))
        if key in metrics
    ]


def push_folder_to_hub(folder: str | os.PathLike, repo_id: str, *, private: bool = False, commit_message: str = "") -> str:
    """Create the model repo if needed and upload the exported folder; returns the commit URL."""
    from huggingface_hub import create_repo, upload_folder

    create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    info = upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                         commit_message=commit_message or "Upload deblurgan-hf model")
    return str(getattr(info, "commit_url", info))


def weights_checksum(module: torch.nn.Module) -> int:
    """A 60-bit hash of every parameter and buffer's bytes (equal iff bitwise equal, practically)."""
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return int(h.hexdigest()[:15], 16)


def command_line() -> str:
    """The command that started this run (for the model card)."""
    import shlex

    return " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]])
