"""Pictures of a run: loss / PSNR / SSIM curves from `metrics.jsonl`, and blur | output | sharp grids."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from .._extras import needs
from ..files import atomic_write
from ..imaging import to_uint8

__all__ = ["plot_curves", "save_image_grid"]


def plot_curves(records: Iterable[dict[str, Any]], out_png: str | os.PathLike, title: str = "") -> Path | None:
    """Loss, PSNR and SSIM against step, from `MetricsLog` records, as one PNG (written atomically)."""
    with needs("train"):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

    records = list(records)
    if not records:
        return None
    series: dict[str, tuple[list[int], list[float]]] = {}
    for r in records:
        for k, v in r.items():
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                xs, ys = series.setdefault(k, ([], []))
                xs.append(r["step"])
                ys.append(v)
    panels = [
        ("loss", [k for k in series if k.startswith("loss/")], "log"),
        ("PSNR (dB)", [k for k in ("train_psnr", "val_psnr") if k in series], "linear"),
        ("SSIM", [k for k in ("val_ssim",) if k in series], "linear"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (label, keys, scale) in zip(axes, panels):
        for k in keys:
            xs, ys = series[k]
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=k)
        if keys and scale == "log" and all(v > 0 for k in keys for v in series[k][1]):
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if keys:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_write(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return out_png


def save_image_grid(rows: Sequence[torch.Tensor], path: str | os.PathLike, max_width: int = 1920) -> Path:
    """Stack (3, H, W_i) rows vertically (padded to the widest, downscaled to `max_width`) into a PNG."""
    import torch.nn.functional as F
    from PIL import Image

    width = max(r.shape[-1] for r in rows)
    padded = [F.pad(r, (0, width - r.shape[-1], 0, 4), value=1.0) for r in rows]
    grid = torch.cat(padded, dim=1)
    if grid.shape[-1] > max_width:
        scale = max_width / grid.shape[-1]
        grid = F.interpolate(grid[None], scale_factor=scale, mode="area")[0]
    path = Path(path)
    with atomic_write(path) as tmp:
        Image.fromarray(to_uint8(grid).permute(1, 2, 0).numpy()).save(tmp, format="PNG")
    return path
