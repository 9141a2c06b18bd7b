"""The run folder: its lock, `checkpoint-<step>` folders and their training state, `metrics.jsonl`.

A checkpoint is `accelerator.save_state` (models as safetensors, optimizers, schedulers, RNG states)
plus `training_state.json` (`RunState`), saved into `.tmp-checkpoint-<step>` and renamed when
complete, so `latest` never points at a half-written folder.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..files import atomic_write_text
from .recipes import command_line

__all__ = [
    "RunState",
    "list_checkpoints",
    "resolve_resume_checkpoint",
    "read_training_state",
    "save_checkpoint",
    "RunFolderInUse",
    "lock_output_dir",
    "remove_stale_temp_dirs",
    "MetricsLog",
]

TRAINING_STATE_NAME = "training_state.json"
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
TMP_PREFIX = ".tmp-"  # a checkpoint being saved (by every process, so not a per-PID name)
ATOMIC_LEFTOVER_RE = re.compile(r"^\..+\.(tmp|old)-\d+$")  # what a killed `files.atomic_write` leaves
RUN_LOCK_NAME = ".run.lock"


@dataclass
class RunState:
    """Where a run is and what it has seen; `training_state.json` in each checkpoint."""

    global_step: int = 0
    best_val_psnr: float = -math.inf
    best_step: int | None = None
    nonfinite_total: int = 0

    @classmethod
    def read(cls, checkpoint: str | os.PathLike) -> RunState:
        state = read_training_state(checkpoint)
        return cls(global_step=state["global_step"], best_val_psnr=state.get("best_val_psnr") or -math.inf,
                   best_step=state.get("best_step"), nonfinite_total=state.get("nonfinite_total", 0))

    def training_state(self, *, steps_per_epoch: int, accumulation: int, num_processes: int,
                       batch_size: int) -> dict[str, Any]:
        """The JSON record; the epoch, batch and process fields are for people (resume uses global_step)."""
        return {"global_step": self.global_step, "epoch": self.global_step // steps_per_epoch,
                "batches_done_in_epoch": (self.global_step % steps_per_epoch) * accumulation,
                "best_val_psnr": self.best_val_psnr if math.isfinite(self.best_val_psnr) else None,
                "best_step": self.best_step, "nonfinite_total": self.nonfinite_total,
                "num_processes": num_processes, "total_batch_size": batch_size * num_processes * accumulation}


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
    """Leftovers of a run killed while saving (main process only, holding the run folder's lock)."""
    root = Path(output_dir)
    if root.is_dir():
        for d in root.iterdir():
            if d.name.startswith(TMP_PREFIX) and d.is_dir():
                shutil.rmtree(d, ignore_errors=True)
            elif ATOMIC_LEFTOVER_RE.match(d.name) and d.is_dir():
                shutil.rmtree(d, ignore_errors=True)
            elif ATOMIC_LEFTOVER_RE.match(d.name):
                d.unlink(missing_ok=True)


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
