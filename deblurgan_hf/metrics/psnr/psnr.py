"""PSNR as an `evaluate` module on uint8 images (optionally BT.601 luma and a border crop): a wrapper of
`deblurgan_hf.metrics.psnr_images`."""

import datasets
import evaluate
import numpy as np

from deblurgan_hf.metrics import Uint8ImageInputs, psnr_images

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


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PSNR(Uint8ImageInputs, evaluate.Metric):
    """Peak signal-to-noise ratio on uint8 images."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Image(), "references": datasets.Image()}),
            reference_urls=["https://en.wikipedia.org/wiki/Peak_signal-to-noise_ratio"],
        )

    def _compute(self, predictions, references, y_channel: bool = False, crop_border: int = 0):
        scores = psnr_images(predictions, references, y_channel=y_channel, crop_border=crop_border)
        return {"psnr": float(np.mean(scores)) if scores else float("nan"), "psnr_per_image": scores}
