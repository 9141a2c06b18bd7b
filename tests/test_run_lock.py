"""One training run per output folder (issue 11, item 7).

kill -9 of `accelerate launch` leaves its trainer running; a resume into the same folder used to
write alongside it (interleaved metrics.jsonl, racing checkpoints). The folder is now locked: the
refusal names the PID holding it, and a lock left by a process that is gone is taken over.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from PIL import Image

from deblurgan_hf.training.checkpoints import RunFolderInUse, lock_output_dir

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
HOLD = "import sys, time; from deblurgan_hf.training.checkpoints import lock_output_dir; l = lock_output_dir(sys.argv[1]); " \
       "print('LOCKED', flush=True); time.sleep(600)"


def _holder(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "LOCKED"
    return proc


def test_lock_names_the_holder_and_a_dead_holders_lock_is_taken_over(tmp_path):
    holder = _holder(tmp_path)
    try:
        with pytest.raises(RunFolderInUse, match=rf"{tmp_path} is in use by another training run \(PID {holder.pid}: "):
            lock_output_dir(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / ".run.lock").read_text().startswith(f"{holder.pid} ")  # left behind by the killed holder
    lock = lock_output_dir(tmp_path)
    try:
        assert (tmp_path / ".run.lock").read_text().startswith(f"{os.getpid()} ")
    finally:
        lock.close()


def _tiny_data(root: Path) -> Path:
    for split, n in (("train", 2), ("val", 1)):
        for f in sorted((DATA / "gopro_real" / split / "blur").glob("*.png"))[:n]:
            for kind in ("blur", "sharp"):
                (root / split / kind).mkdir(parents=True, exist_ok=True)
                Image.open(DATA / "gopro_real" / split / kind / f.name).crop((560, 300, 624, 364)).save(root / split / kind / f.name)
    return root


def _records(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.skipif(not (DATA / "gopro_real").is_dir(), reason="../shared/data missing")
def test_resume_while_an_orphaned_trainer_runs_is_refused_then_works_once_it_is_gone(tmp_path):
    data, run = _tiny_data(tmp_path / "data"), tmp_path / "run"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "train_sources": [f"paired:{data / 'train'}"], "crop_size": 32, "train_batch_size": 2,
        "max_train_steps": 100_000, "checkpointing_steps": 1, "checkpoints_total_limit": 2, "logging_steps": 1,
        "generator": "nafnet", "generator_kwargs": {"width": 8, "enc_blocks": [1], "dec_blocks": [1], "middle_blocks": 1},
        "num_threads": 1, "output_dir": str(run),
    }))
    env = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1", "ACCELERATE_USE_CPU": "1"}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", str(REPO / "train_accelerate.py"), "--config", str(recipe)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trainer = None
    try:
        deadline = time.monotonic() + 300
        while not any("loss/total" in r for r in _records(run)) and time.monotonic() < deadline:
            assert launcher.poll() is None, "the first run ended early"
            time.sleep(0.2)
        trainer = next(p for p in psutil.Process(launcher.pid).children(recursive=True)
                       if "train_accelerate.py" in " ".join(p.cmdline()))
        launcher.send_signal(signal.SIGKILL)  # the trainer lives on, as after kill -9 of accelerate launch
        launcher.wait()
        assert trainer.is_running()

        resume = subprocess.run([sys.executable, str(REPO / "train_accelerate.py"), "--config", str(recipe),
                                 "--resume_from_checkpoint", "latest"], cwd=REPO, env=env, capture_output=True,
                                text=True, timeout=300)
        print(resume.stderr[-800:])
        assert resume.returncode == 1 and "Traceback" not in resume.stderr
        assert f"{run} is in use by another training run (PID {trainer.pid}: " in resume.stderr
        assert "resumed from" not in resume.stderr
    finally:
        if trainer is not None and trainer.is_running():
            trainer.kill()
            trainer.wait(timeout=60)
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()

    # The trainer is gone, its lock file stays behind: the next resume takes it over and finishes.
    assert (run / ".run.lock").read_text().startswith(f"{trainer.pid} ")
    step = max(r["step"] for r in _records(run) if "loss/total" in r)
    final = subprocess.run([sys.executable, str(REPO / "train_accelerate.py"), "--config", str(recipe),
                            "--resume_from_checkpoint", "latest", "--max_train_steps", str(step + 2)],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-3000:]
    steps = [r["step"] for r in _records(run) if "loss/total" in r]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # one unbroken log, nothing interleaved
    assert steps[-1] == step + 2
