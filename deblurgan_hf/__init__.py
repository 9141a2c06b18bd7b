"""deblurgan-hf: blind motion deblurring with DeblurGAN-style models on the Hugging Face stack."""

from pathlib import Path

__version__ = "0.1.0"

# The bundled CPU default model (a folder written by `save_pretrained`); see pretrained/.
DEFAULT_MODEL = str(Path(__file__).resolve().parent.parent / "pretrained" / "nafnet-motion-s")

from .modeling import DeblurGAN  # noqa: E402

__all__ = ["DeblurGAN", "DEFAULT_MODEL", "__version__"]
