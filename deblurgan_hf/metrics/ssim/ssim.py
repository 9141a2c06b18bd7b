"""SSIM (Wang et al. 2004) as an `evaluate` module on uint8 images: a wrapper of `deblurgan_hf.metrics.ssim_images`."""

import datasets
import evaluate
import numpy as np

from deblurgan_hf.metrics import Uint8ImageInputs, ssim_images

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
use_sample_covariance=False, data_range=255, channel_axis=-1)`, computed by
`deblurgan_hf.metrics.ssim_images` (torch; the project's tests pin it to scikit-image).
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


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SSIM(Uint8ImageInputs, evaluate.Metric):
    """Structural similarity on uint8 images (Gaussian window 11, sigma 1.5, per-channel mean)."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Image(), "references": datasets.Image()}),
            reference_urls=["https://ece.uwaterloo.ca/~z70wang/research/ssim/"],
        )

    def _compute(self, predictions, references, y_channel: bool = False, crop_border: int = 0):
        scores = ssim_images(predictions, references, y_channel=y_channel, crop_border=crop_border)
        return {"ssim": float(np.mean(scores)) if scores else float("nan"), "ssim_per_image": scores}
