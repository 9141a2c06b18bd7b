"""Server memory of the Gradio app under load: RSS after start, warm-up, sequential and concurrent requests.

    python benchmarks/app_memory.py [--requests 10] [--concurrent 8] [--frame 000001.png]

Starts `app.py` on a free port (the bundled model, or a tiny untrained NAFNet when it is not there
yet: memory is then mostly gradio + torch), sends full 1280x720 GoPro frames through
`gradio_client`, and prints the server's resident memory (process and children) after each phase.
A leak shows as RSS growing with the number of requests.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gradio_client import Client, handle_file

from deblurgan_hf import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[1]


def _tests_module(name: str):
    """tests/NAME.py, loaded from its file: tests/ is not a package (here: the tests' server launcher)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


_server = _tests_module("app_server")
GOPRO_BLUR, app_models_env, bundled_model_exists, serve_app = (
    _server.GOPRO_BLUR, _server.app_models_env, _server.bundled_model_exists, _server.serve_app)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=10, help="sequential requests")
    parser.add_argument("--concurrent", type=int, default=8, help="requests sent at once")
    parser.add_argument("--frame", default="000001.png", help=f"a frame of {GOPRO_BLUR}")
    args = parser.parse_args()
    frame = str(GOPRO_BLUR / args.frame)

    with tempfile.TemporaryDirectory() as tmp:
        env = app_models_env(Path(tmp))
        model = f"bundled {Path(DEFAULT_MODEL).name}" if bundled_model_exists() else "tiny untrained NAFNet (width 8)"
        with serve_app(env, Path(tmp) / "app.log") as server:
            mib = lambda: server.rss_bytes() / 2**20  # noqa: E731
            print(f"model: {model}; input {args.frame} (1280x720)")
            print(f"RSS after start:                 {mib():7.0f} MiB")
            client = Client(server.url, verbose=False)
            client.predict(handle_file(frame), api_name="/deblur")
            print(f"RSS after 1 warm-up request:     {mib():7.0f} MiB")
            start = time.perf_counter()
            for _ in range(args.requests):
                client.predict(handle_file(frame), api_name="/deblur")
            per_request = (time.perf_counter() - start) / args.requests
            print(f"RSS after {args.requests:2d} sequential requests: {mib():7.0f} MiB ({per_request:.2f} s per request, end to end)")
            with ThreadPoolExecutor(args.concurrent) as pool:
                list(pool.map(lambda _: client.predict(handle_file(frame), api_name="/deblur"), range(args.concurrent)))
            print(f"RSS after {args.concurrent:2d} concurrent requests: {mib():7.0f} MiB")


if __name__ == "__main__":
    from _results import recorded

    with recorded("app-memory"):
        main()
