"""`deblurgan deblur` given bad options, an unwritable output, Ctrl-C and a killed run's leftovers
(issue 11, items 5 and 8); the installed console script in real subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import gopro_frame

DEBLURGAN = str(Path(sys.executable).with_name("deblurgan"))
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "0"}


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([DEBLURGAN, *args], capture_output=True, text=True, env=ENV, timeout=timeout)


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "in.png"
    gopro_frame(0).crop((0, 0, 48, 32)).save(path)
    return path


@pytest.mark.parametrize("options, expected", [
    (["--tile", "-5"], "argument --tile: -5 must be 0 or more"),
    (["--tile", "40"], "--tile 40: must be 0 (never tile) or at least 2 x --overlap + 16 = 80"),
    (["--tile", "40", "--overlap", "8"], None),  # 40 >= 2 x 8 + 16: fine (then the model is missing)
    (["--tile", "abc"], "argument --tile: 'abc' is not an integer"),
    (["--overlap", "-1"], "argument --overlap: -1 must be 0 or more"),
    (["--threads", "-2"], "argument --threads: -2 must be 0 or more"),
    (["--io-threads", "0"], "--io-threads 0: must be at least 1"),
])
def test_bad_options_are_usage_errors_before_the_model_loads(image, tmp_path, options, expected):
    # The model folder does not exist: an option error must come first, before anything loads.
    proc = run("deblur", str(image), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "no-model"), *options)
    print(proc.stderr)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (expected or "no-model: no such model folder") in proc.stderr


def test_unwritable_output_is_a_usage_error_before_the_model_loads(image, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    for out in (blocker, blocker / "sub"):
        proc = run("deblur", str(image), "-o", str(out), "--model", str(tmp_path / "no-model"))
        print(proc.stderr)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert f"-o {out}: cannot write there" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_killed_runs_temp_files_are_removed_by_the_next_run(image, small_model_dir, tmp_path):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)  # that process has exited
    stale = [out / f".in.png.tmp-{dead_pid}", out / "sub" / f".other.png.tmp-{dead_pid}"]
    running = out / f".busy.png.tmp-{os.getpid()}"  # a run still writing (this test process is alive)
    for path in (*stale, running):
        path.write_bytes(b"half a PNG")
    proc = run("deblur", str(image), "-o", str(out), "--model", str(small_model_dir))
    assert proc.returncode == 0, proc.stderr
    assert not any(p.exists() for p in stale) and running.exists()
    assert sorted(p.name for p in out.iterdir()) == [running.name, "in.png", "sub"]


def test_ctrl_c_ends_with_one_line_and_exit_130(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    frame = gopro_frame(3)
    for i in range(40):
        frame.save(src / f"frame{i:02d}.png")
    # As typed at a terminal: a suite started in the background (`make test &`) ignores SIGINT, and a
    # child inherits that, so the run would never see the Ctrl-C this test sends.
    proc = subprocess.Popen([DEBLURGAN, "deblur", str(src), "-o", str(out), "--threads", "1"], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while proc.poll() is None and not list(out.glob("*.png")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, f"the run ended before it could be interrupted: {proc.communicate()}"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    print(stderr[-600:])
    assert proc.returncode == 130
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert stderr.strip().splitlines()[-1] == "deblurgan deblur: interrupted; the outputs written so far are complete"
    written = sorted(out.iterdir())
    assert written and all(p.suffix == ".png" and not p.name.startswith(".") for p in written)  # no temp files
    for path in written:
        with Image.open(path) as img:
            img.load()  # complete files only
            assert img.size == frame.size


def test_float_tiff_is_written_as_a_16_bit_png(small_model_dir, tmp_path):
    grey = np.asarray(gopro_frame(0).convert("L").crop((0, 0, 96, 64)), dtype=np.float32) / 255.0
    Image.fromarray(grey, mode="F").save(tmp_path / "float.tif")
    proc = run("deblur", str(tmp_path / "float.tif"), "-o", str(tmp_path / "out"), "--model", str(small_model_dir))
    assert proc.returncode == 0, proc.stderr
    with Image.open(tmp_path / "out" / "float.png") as result:
        assert result.mode in ("I", "I;16") and result.size == (96, 64) and np.asarray(result).max() > 255
