"""Optional dependencies: the core install deblurs; the app, video, training, evaluation and export each
need an extra (`pip install 'deblurgan-hf[train]'`). An import of a missing one names the extra.

`EXTRAS` mirrors `[project.optional-dependencies]` in pyproject.toml (tests/test_packaging.py
checks that they agree), with the module each distribution is imported as.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

EXTRAS: dict[str, dict[str, str]] = {  # extra -> {distribution: top-level module}
    "app": {"gradio": "gradio", "av": "av"},
    "video": {"av": "av"},
    "train": {"accelerate": "accelerate", "datasets": "datasets", "pyyaml": "yaml", "matplotlib": "matplotlib"},
    "eval": {"datasets": "datasets", "evaluate": "evaluate", "scikit-image": "skimage", "matplotlib": "matplotlib",
             "pytesseract": "pytesseract", "opencv-python-headless": "cv2"},
    "export": {"onnx": "onnx", "onnxscript": "onnxscript", "onnxruntime": "onnxruntime"},
}


def extras_providing(module: str) -> list[str]:
    """The extras that install top-level `module` (empty if it is not an optional dependency)."""
    top = module.partition(".")[0]
    return [extra for extra, modules in EXTRAS.items() if top in modules.values()]


@contextmanager
def needs(*extras: str) -> Iterator[None]:
    """Wrap the imports of an optional part: a missing module of `extras` raises ModuleNotFoundError
    naming the extra to install. Anything else missing (a broken install) is re-raised unchanged."""
    try:
        yield
    except ModuleNotFoundError as err:
        top = (err.name or "").partition(".")[0]
        wanted = [e for e in extras if e in extras_providing(top)]
        if not wanted:
            raise
        how = " or ".join(f"pip install 'deblurgan-hf[{e}]'" for e in wanted)
        raise ModuleNotFoundError(
            f"No module named {top!r}: it comes with deblurgan-hf's [{'] or ['.join(wanted)}] extra; {how}",
            name=top,
        ) from err
