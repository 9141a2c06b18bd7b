"""SSIM (Wang et al. 2004) as an `evaluate` module, on uint8 images, scikit-image's convention."""

import datasets
import evaluate
import numpy as np
from skimage.metrics import structural_similarity

_CITATION = """\
@article{wang2004image,
  title={Image quality assessment: from error visibility to structural similarity},
  author={Wang, Zhou and Bovik, Alan C. and Sheikh, Hamid R. and Simoncelli, Eero P.},
  journal={IEEE Transactions on Image Processing},
  volume={13}, number={4}, pages={600--612},
  year={2004}
}
"""

_DESCRIPTION = """\
Structural similarity (Wang et al. 2004) between a restored image and its sharp reference, on
uint8 levels: Gaussian window 11 x 11 with sigma 1.5, K1 = 0.01, K2 = 0.03, data range 255,
population (not sample) covariances, the SSIM map averaged over the pixels where the window
lies inside the image, and for RGB the mean of the three per-channel SSIMs. This is
`skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255, channel_axis=-1)`, computed by scikit-image.
It differs from Wang's MATLAB `ssim.m`, which works on one channel (gray or Y) and first
downsamples by max(1, round(min(H, W) / 256)) (3 for 1280x720 frames). The score is per image; `ssim` is the mean over images.
Identical images give 1. Options: `y_channel` (BT.601 luma, 16..235, not rounded) and
`crop_border` (pixels dropped on each side first).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of images): restored images: PIL images (mode "RGB" or "L"), uint8 numpy
        arrays (H x W x 3 or H x W) or file paths; at least 11 x 11 pixels.
    references (list of images): sharp references, same sizes and channels as `predictions`.
    y_channel (bool, default False): compare BT.601 luma of RGB images instead of RGB.
    crop_border (int, default 0): pixels dropped on each side before comparing.
Returns:
    ssim (float): mean SSIM over images.
    ssim_per_image (list of float): SSIM of each image.
Examples:
    >>> ssim = evaluate.load("deblurgan_hf/metrics/ssim")
    >>> a = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    >>> ssim.compute(predictions=[a], references=[a])["ssim"]
    1.0
"""

# The helpers below repeat psnr.py's on purpose: an `evaluate` module is copied and imported on
# its own (and can be pushed to the Hub as such), so it cannot import its sibling.


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
    if min(p.shape[:2]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels; image {index} is {p.shape[0]}x{p.shape[1]}")
    return p, r


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SSIM(evaluate.Metric):
    """Structural similarity on uint8 images (Gaussian window 11, sigma 1.5, per-channel mean)."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Image(), "references": datasets.Image()}),
            reference_urls=["https://ece.uwaterloo.ca/~z70wang/research/ssim/"],
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
            s = structural_similarity(
                r,
                p,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=255,
                channel_axis=-1 if p.ndim == 3 else None,
            )
            scores.append(float(s))
        return {"ssim": float(np.mean(scores)) if scores else float("nan"), "ssim_per_image": scores}
