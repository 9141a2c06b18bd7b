"""deblurgan-hf: blind motion deblurring with DeblurGAN-style models on the Hugging Face stack."""

from pathlib import Path

__version__ = "0.1.0"

# Bundled models ship inside the package (package data), so a wheel or a non-editable install
# deblurs offline with no download; `scripts/export_default_model.py` writes them here.
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
# The CPU default model: a folder written by `save_pretrained` (nafnet-motion-s's generator fine-tuned
# on noisy photos, and a blind-deconvolution stage for long camera-shake paths).
DEFAULT_MODEL = str(PRETRAINED_DIR / "nafnet-deconv-s")

from .modeling import DeblurGAN  # noqa: E402

__all__ = ["DeblurGAN", "DEFAULT_MODEL", "PRETRAINED_DIR", "__version__"]
