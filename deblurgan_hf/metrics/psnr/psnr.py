"""PSNR as an `evaluate` module, on uint8 images (optionally BT.601 luma and a border crop)."""

import datasets
import evaluate
import numpy as np
from skimage.metrics import peak_signal_noise_ratio

_CITATION = """\
@book{gonzalez2008digital,
  title={Digital Image Processing},
  author={Gonzalez, Rafael C. and Woods, Richard E.},
  edition={3rd},
  publisher={Prentice Hall},
  year={2008}
}
"""

_DESCRIPTION = """\
Peak signal-to-noise ratio between a restored image and its sharp reference, in dB, on uint8
levels (data range 255): PSNR = 10 log10(255^2 / MSE), the MSE taken over all pixels and
channels of one image. The score is per image; `psnr` is the mean over images (the convention
of deblurring papers, not the PSNR of the pooled MSE). Identical images give inf.
Options: `y_channel` compares BT.601 luma (MATLAB `rgb2ycbcr`, 16..235, not rounded);
`crop_border` drops that many pixels on each side first.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of images): restored images: PIL images (mode "RGB" or "L"), uint8 numpy
        arrays (H x W x 3 or H x W) or file paths.
    references (list of images): sharp references, same sizes and channels as `predictions`.
    y_channel (bool, default False): compare BT.601 luma of RGB images instead of RGB.
    crop_border (int, default 0): pixels dropped on each side before comparing.
Returns:
    psnr (float): mean PSNR over images, in dB.
    psnr_per_image (list of float): PSNR of each image, in dB.
Examples:
    >>> psnr = evaluate.load("deblurgan_hf/metrics/psnr")
    >>> a = np.zeros((16, 16, 3), np.uint8); b = a.copy(); b[0, 0] = 255
    >>> round(psnr.compute(predictions=[b], references=[a])["psnr"], 2)
    24.08
"""


def _check_input(value, where: str) -> None:
    """Refuse non-uint8 arrays here: `datasets.Image` would fail obscurely or re-interpret them."""
    if isinstance(value, np.ndarray) and value.dtype != np.uint8:
        raise ValueError(
            f"{where} has dtype {value.dtype}; the module takes uint8 images (0..255). "
            "Convert float images in [0, 1] with (x * 255).round().astype(np.uint8)."
        )


def to_array(image, where: str) -> np.ndarray:
    """A decoded image as a uint8 H x W or H x W x 3 array, or a clear error."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"{where} has dtype {arr.dtype} (PIL mode {getattr(image, 'mode', '?')}); uint8 is required")
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)):
        raise ValueError(
            f"{where} has shape {arr.shape} (PIL mode {getattr(image, 'mode', '?')}); "
            "expected H x W (gray) or H x W x 3 (RGB): convert with .convert('RGB')"
        )
    return arr


def prepare_pair(pred, ref, index: int, y_channel: bool, crop_border: int) -> tuple[np.ndarray, np.ndarray]:
    """Decoded pair -> float64 arrays on 0..255, after the optional luma conversion and crop."""
    p, r = to_array(pred, f"predictions[{index}]"), to_array(ref, f"references[{index}]")
    if p.shape != r.shape:
        raise ValueError(f"predictions[{index}] has shape {p.shape} but references[{index}] has shape {r.shape}")
    p, r = p.astype(np.float64), r.astype(np.float64)
    if y_channel:
        if p.ndim != 3:
            raise ValueError(f"y_channel=True needs RGB images; predictions[{index}] is gray")
        w = np.array([65.481, 128.553, 24.966]) / 255.0
        p, r = 16.0 + p @ w, 16.0 + r @ w
    if crop_border:
        c = int(crop_border)
        if p.shape[0] <= 2 * c or p.shape[1] <= 2 * c:
            raise ValueError(f"crop_border={c} leaves nothing of image {index} ({p.shape[0]}x{p.shape[1]})")
        p, r = p[c:-c, c:-c], r[c:-c, c:-c]
    return p, r


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PSNR(evaluate.Metric):
    """Peak signal-to-noise ratio on uint8 images."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Image(), "references": datasets.Image()}),
            reference_urls=["https://en.wikipedia.org/wiki/Peak_signal-to-noise_ratio"],
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of images after checking their dtype (evaluate appends the inputs doc)."""
        for name, column in (("predictions", predictions), ("references", references)):
            for i, value in enumerate(column or []):
                _check_input(value, f"{name}[{i}]")
        return super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one image pair after checking its dtype (evaluate appends the inputs doc)."""
        _check_input(prediction, "prediction")
        _check_input(reference, "reference")
        return super().add(prediction=prediction, reference=reference, **kwargs)

    def _compute(self, predictions, references, y_channel: bool = False, crop_border: int = 0):
        if crop_border < 0:
            raise ValueError(f"crop_border must be >= 0, got {crop_border}")
        scores = []
        for i, (pred, ref) in enumerate(zip(predictions, references)):
            p, r = prepare_pair(pred, ref, i, y_channel, crop_border)
            with np.errstate(divide="ignore"):  # identical images: MSE 0 -> inf dB, by definition
                scores.append(float(peak_signal_noise_ratio(r, p, data_range=255)))
        return {"psnr": float(np.mean(scores)) if scores else float("nan"), "psnr_per_image": scores}
