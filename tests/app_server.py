"""Run app.py as a real server in a subprocess for the app tests (a helper module, not a conftest)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
GOPRO_BLUR = DATA / "gopro_blur_only"


def bundled_model_exists() -> bool:
    """True once the trained default model (DEFAULT_MODEL, under deblurgan_hf/pretrained/) is in the tree."""
    from deblurgan_hf import DEFAULT_MODEL

    return (Path(DEFAULT_MODEL) / "config.json").is_file()


def app_models_env(tmp_dir: Path) -> dict[str, str]:
    """Environment choosing the app's model: the bundled one if present, else a tiny untrained NAFNet."""
    if bundled_model_exists():
        return {}
    from deblurgan_hf import DeblurGAN

    folder = tmp_dir / "tiny-nafnet"
    DeblurGAN(generator="nafnet", generator_kwargs={"width": 8}).save_pretrained(folder)
    return {"DEBLURGAN_APP_MODELS": str(folder)}


def gopro_crop(frame: str = "000019.png", box: tuple[int, int, int, int] = (0, 300, 384, 556)) -> Image.Image:
    """A crop of a real blurred GoPro frame (full resolution, so the blur is the camera's)."""
    with Image.open(GOPRO_BLUR / frame) as img:
        return img.convert("RGB").crop(box)


def gradient_energy(image: Image.Image) -> float:
    """Mean squared finite difference of the luma: blur lowers it, sharpening raises it."""
    y = np.asarray(image.convert("L"), dtype=np.float64) / 255.0
    return float((np.diff(y, axis=0) ** 2).mean() + (np.diff(y, axis=1) ** 2).mean())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AppServer:
    url: str
    process: subprocess.Popen
    log: Path

    def rss_bytes(self) -> int:
        """Resident memory of the server process and its children."""
        proc = psutil.Process(self.process.pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])


@contextmanager
def serve_app(env: dict[str, str], log: Path, app_dir: Path = ROOT, timeout: float = 180.0) -> Iterator[AppServer]:
    """Start `python app.py --port P` in `app_dir` with extra `env`; stop it on exit.

    Waits until the page answers; raises RuntimeError with the server log if it dies or times out.
    """
    port = free_port()
    full_env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", **env}
    full_env.pop("GRADIO_SERVER_NAME", None)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "app.py", "--port", str(port)], cwd=app_dir, env=full_env,
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"app.py exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"app.py did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield AppServer(url, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
