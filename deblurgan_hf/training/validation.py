"""Validation during training: PSNR/SSIM of the generator on the validation set, and those figures
as the model card's results."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = ["validate", "validation_eval_results"]


def _to_batch(x: Any) -> torch.Tensor:
    x = torch.as_tensor(x)
    return x.unsqueeze(0) if x.ndim == 3 else x


@torch.no_grad()
def validate(
    generator: torch.nn.Module,
    dataset: Any,
    *,
    device: torch.device | str = "cpu",
    max_images: int | None = None,
    grid_images: int = 3,
    autocast: Callable[[], Any] | None = None,
) -> tuple[dict[str, float], list[torch.Tensor]]:
    """Mean PSNR/SSIM (uint8 levels, `deblurgan_hf.metrics`) of the generator on a validation dataset.

    Returns the metrics and the first `grid_images` rows (blur | output | sharp) for `save_image_grid`.
    """
    from ..metrics import psnr_torch, ssim_torch

    was_training = generator.training
    generator.eval()
    psnrs, ssims, rows = [], [], []
    n = len(dataset) if max_images is None else min(len(dataset), max_images)
    for i in range(n):
        item = dataset[i]
        blur, sharp = _to_batch(item["blur"]).to(device), _to_batch(item["sharp"]).to(device)
        if autocast is not None:
            with autocast():
                out = generator(blur)
        else:
            out = generator(blur)
        out = (out[-1] if isinstance(out, (list, tuple)) else out).float().clamp(0, 1)
        psnrs.append(psnr_torch(out, sharp.float()))
        ssims.append(ssim_torch(out, sharp.float()))
        if len(rows) < grid_images:
            rows.append(torch.cat([blur[0].float(), out[0], sharp[0].float()], dim=-1).cpu())
    generator.train(was_training)
    if not psnrs:
        raise ValueError("validation dataset is empty")
    metrics = {"val_psnr": float(torch.cat(psnrs).mean()), "val_ssim": float(torch.cat(ssims).mean())}
    return metrics, rows


def validation_eval_results(metrics: dict[str, float], val_sources: Sequence[str], center_crop: int | None,
                            max_images: int | None) -> list:
    """`huggingface_hub.EvalResult`s (PSNR, SSIM on uint8 RGB) for the model card's model-index.

    The Hub files a result under its data set's Hub id and split (`cards.eval_dataset`), never a local path.
    """
    from huggingface_hub import EvalResult

    from ..cards import eval_dataset

    dataset = eval_dataset(val_sources)
    how = (f"{center_crop}px centre crops" if center_crop else "full images") + (
        f", first {max_images} images" if max_images else "")
    return [
        EvalResult(task_type="image-to-image", task_name="Motion deblurring", dataset_type=dataset.id,
                   dataset_name=f"{dataset.name or dataset.id} ({how})", dataset_split=dataset.split,
                   metric_type=metric, metric_name=name, metric_value=round(float(metrics[key]), 4))
        for key, metric, name in (("val_psnr", "psnr", "PSNR (dB, RGB)"), ("val_ssim", "ssim", "SSIM (RGB)"))
        if key in metrics
    ]
