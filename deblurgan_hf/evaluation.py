"""`deblurgan evaluate`: models and classical baselines side by side, on one data source, in one run.

Every method gets the same uint8 blurred image and its output is quantised to uint8 before
scoring with the project's PSNR and SSIM (`deblurgan_hf.metrics`, what its `evaluate` modules wrap), so numbers
equal those of anyone who saves the outputs as PNG and scores them with scikit-image. Outputs:
`per_image.csv`, `summary.md` (also printed) and `crops.png` (blur | each method | sharp).

    python -m deblurgan_hf.evaluation --model deblurgan_hf/pretrained/nafnet-motion-s --data paired:../shared/data/gopro_real/val
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ._extras import needs
from .baselines import BASELINES, KERNEL_BASELINES, UNSHARP_GRID, choose_unsharp, unsharp
from .files import atomic_write_bytes
from .imaging import PRECISIONS, to_uint8
from .metrics import psnr_images, ssim_images

__all__ = ["Pair", "PairSource", "Method", "MethodResult", "main", "run_evaluation", "model_method", "baseline_methods",
           "summary_markdown", "camera_shake_benchmark", "camera_shake_markdown", "camera_shake_csv", "SHAKE_BINS", "SHAKE_VARIANTS"]


@dataclass
class Pair:
    """One evaluation pair: uint8 `H x W x 3` blurred and sharp images, and the true kernel if known."""

    name: str
    blurred: np.ndarray
    sharp: np.ndarray
    kernel: np.ndarray | None = None


@dataclass
class Method:
    """A named way to turn a `Pair`'s blurred image into a uint8 `H x W x 3` restoration."""

    name: str
    run: Callable[[Pair], np.ndarray]
    setting: str = ""


@dataclass
class MethodResult:
    """Per-image scores and timings of one method."""

    name: str
    setting: str = ""
    images: list[str] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    megapixels: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float | str | int]:
        secs = float(np.sum(self.seconds))
        return {
            "method": self.name,
            "setting": self.setting,
            "images": len(self.images),
            "psnr": float(np.mean(self.psnr)),
            "ssim": float(np.mean(self.ssim)),
            "s_per_image": secs / max(len(self.seconds), 1),
            "mp_per_s": float(np.sum(self.megapixels)) / secs if secs > 0 else float("inf"),
        }


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


def _to_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, Image.Image):
        image = image.convert("RGB")
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"expected an RGB uint8 image, got {arr.dtype} {arr.shape}")
    return arr


BLUR_CHOICES = ("kernel", "trajectory", "shake", "none")

# The camera-shake benchmark. Kernels: Boracchi-Foi random trajectories at constant speed, as
# DeblurGAN drew them (training draws mostly open curved strokes with speed changes, its own seeds),
# scaled so the kernel's support falls in the bin. Valid convolution, every kernel centred on its
# centre of mass, 1% Gaussian noise (the protocol of the independent evaluation), then 8 bits.
SHAKE_BINS = ((7, 15), (15, 31), (31, 75))
SHAKE_KERNEL_MODEL = {"loop_prob": 1.0, "speed_variation": 0.0, "expl": 0.005, "jpeg_prob": 0.0, "valid": True}
SHAKE_VARIANTS = {
    "uniform": {"rotation_prob": 0.0, "linear_prob": 0.0, "highlight_prob": 0.0, "noise": 0.01, "shot_fraction": 0.0},
    # the camera also rolls about the optical axis: a frame corner moves 30-80% as far as the shake
    "rotation": {"rotation_prob": 1.0, "rotation": (0.3, 0.8), "linear_prob": 0.0, "highlight_prob": 0.0,
                 "noise": 0.01, "shot_fraction": 0.0},
    # dim light: blur in linear light with lights brighter than white, clipped after; 2-3% noise
    "lowlight": {"rotation_prob": 0.0, "linear_prob": 1.0, "highlight_prob": 1.0, "highlight_gain": (2.0, 8.0),
                 "noise": (0.02, 0.03), "shot_fraction": 0.5},
}


class PairSource:
    """The evaluation pairs of a data source; iterate it as often as needed (same pairs each time).

    Args:
        source: a `deblurgan_hf.data.load_pairs` source string: `paired:DIR`, `gopro:DIR`,
            `hub:ID`, `disk:DIR` (real pairs; the `test` split unless `?split=` says otherwise) or
            `sharp:DIR` (sharp photos, blurred here with a fixed seed).
        limit: use only the first `limit` pairs.
        blur: synthesis mode for sharp-only sources: `kernel` (uniform DeblurGAN kernels; the true
            kernel is kept, so the non-blind baselines can run), `trajectory` (GoPro-like), `shake`
            (the camera-shake benchmark: `shake_size`, `shake_variant`) or `none` (the input is the
            sharp photo itself: does a method leave sharp photos alone?).
        seed: seed of the synthetic blur; for `kernel` and `trajectory` the pairs are those of
            `data.build_val_dataset([source], blur={"mode": blur}, seed=seed)`, read from it.
        shake_size: the benchmark bin, (min, max) kernel support in pixels (one of `SHAKE_BINS`, or any).
        shake_variant: one of `SHAKE_VARIANTS`: `uniform` (true kernel kept), `rotation`, `lowlight`.
        camera_kernel: keep the `lowlight` variant's kernel too (the camera's path, though its blur is
            in linear light with clipped lights, not that kernel's convolution): a deconvolution's
            ceiling there. Not for `rotation`, which has no single kernel.
        max_size: downscale each photo (bicubic, antialiased) so its longer side is at most this,
            before a synthetic blur (the same kernels then span more of the photo); real pairs:
            both images.
    """

    def __init__(self, source: str, *, limit: int | None = None, blur: str = "kernel", seed: int = 0,
                 shake_size: tuple[int, int] = SHAKE_BINS[0], shake_variant: str = "uniform",
                 camera_kernel: bool = False, max_size: int | None = None):
        from .blur import BlurSynthesizer
        from .data import build_val_dataset

        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        if blur not in BLUR_CHOICES:
            raise ValueError(f"blur must be one of {BLUR_CHOICES}, got {blur!r}")
        if shake_variant not in SHAKE_VARIANTS:
            raise ValueError(f"shake_variant must be one of {list(SHAKE_VARIANTS)}, got {shake_variant!r}")
        if camera_kernel and (blur != "shake" or shake_variant == "rotation"):
            raise ValueError(f"camera_kernel needs blur='shake' and a variant without rotation, got {blur!r}, {shake_variant!r}")
        lo, hi = shake_size
        if not 1 <= lo <= hi:
            raise ValueError(f"shake_size must be (min, max) pixels with 1 <= min <= max, got {shake_size!r}")
        self.source, self.seed = source, seed
        self.shake_size, self.shake_variant = (int(lo), int(hi)), shake_variant
        # Real pairs and kernel / trajectory blur come from the validation dataset itself (its seeding,
        # framing and decoding), so evaluation scores the pairs validation during training sees.
        self.dataset = build_val_dataset([source], blur={"mode": blur} if blur in ("kernel", "trajectory") else None,
                                         seed=seed, max_size=max_size)
        self.length = len(self.dataset) if limit is None else min(limit, len(self.dataset))
        self.synthetic = not self.dataset.parts[0].paired
        self.synth = None
        if self.synthetic and blur == "shake":
            self.synth = BlurSynthesizer("shake", size=self.shake_size, **SHAKE_KERNEL_MODEL, **SHAKE_VARIANTS[shake_variant])
        elif self.synthetic and blur != "none":
            self.synth = self.dataset.synth
        self.has_kernel = self.synthetic and (blur == "kernel" or (blur == "shake" and shake_variant == "uniform"))
        self.camera_kernel = self.synthetic and camera_kernel

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        if not self.synthetic:
            kind = "real pairs"
        elif self.synth is not None and self.synth.mode == "shake":
            lo, hi = self.shake_size
            kind = f"camera shake {lo}-{hi} px, {self.shake_variant}, seed {self.seed}"
        else:
            kind = "no blur" if self.synth is None else f"synthetic {self.synth.mode} blur, seed {self.seed}"
        return f"PairSource({self.source!r}, {len(self)} images, {kind})"

    def _shake_pair(self, index: int) -> Pair:
        """The camera-shake benchmark's pair ``index``: its own seed stream, apart from training's and
        validation's, and a valid convolution (the target is the matching crop of the photo)."""
        import torch

        from .data import image_to_tensor, item_seed

        sharp, name = self.dataset.sharp_image(index)
        h, w = sharp.shape[:2]
        lo, hi = self.shake_size
        gen = torch.Generator().manual_seed(item_seed(self.seed, "shake-benchmark", lo, hi, self.shake_variant, index))
        centre = torch.tensor([(w - 1) / 2, (h - 1) / 2])
        blurred, info = self.synth(image_to_tensor(sharp), gen, frame_diag=math.hypot(h, w), center=centre)
        if info.get("valid_crop") is not None:
            top, left, ch, cw = info["valid_crop"]
            sharp = sharp[top : top + ch, left : left + cw].copy()
        return Pair(str(name), to_uint8(blurred).permute(1, 2, 0).numpy(), sharp, self._kernel(info))

    def _kernel(self, info: dict):
        if not (self.has_kernel or self.camera_kernel):
            return None
        kernel = info["kernel"][0].double().numpy()
        return kernel / kernel.sum()  # exact unit sum in float64 (the float32 kernel is off by ~1e-7)

    def __iter__(self) -> Iterator[Pair]:
        for i in range(len(self)):
            if self.synth is not None and self.synth.mode == "shake":
                yield self._shake_pair(i)
            elif self.synthetic and self.synth is None:  # no blur: the sharp photo is the input
                sharp, name = self.dataset.sharp_image(i)
                yield Pair(str(name), sharp.copy(), sharp, None)
            else:
                blurred, sharp, name, info = self.dataset.pair(i)
                yield Pair(str(name), to_uint8(blurred).permute(1, 2, 0).numpy(), to_uint8(sharp).permute(1, 2, 0).numpy(),
                           self._kernel(info))


# ----------------------------------------------------------------------------------------------
# Methods
# ----------------------------------------------------------------------------------------------


def model_method(model_id: str, *, tile: int | None = None, precision: str = "auto") -> Method:
    """A `DeblurGAN` (local `save_pretrained` folder or Hub id) as an evaluation method."""
    from . import DeblurGAN

    model = DeblurGAN.from_pretrained(model_id).eval()
    name = Path(model_id).name if Path(model_id).exists() else model_id
    # One small call first, so one-time start-up costs do not land on the first image's time.
    model.deblur(Image.new("RGB", (64, 64)), tile=tile, precision=precision)

    def run(pair: Pair) -> np.ndarray:
        return _to_rgb_array(model.deblur(Image.fromarray(pair.blurred), tile=tile, precision=precision))

    return Method(name, run, setting=f"precision={precision}" + (f", tile={tile}" if tile else ""))


def model_methods(model_ids: Sequence[str], *, tile: int | None = None, precision: str = "auto") -> list[Method]:
    """`model_method` for each id, named by folder name, or by the id as given where folder names
    collide (`runs/a/best` and `runs/b/best`)."""
    methods = [model_method(m, tile=tile, precision=precision) for m in model_ids]
    short = [m.name for m in methods]
    for method, model_id in zip(methods, model_ids):
        if short.count(method.name) > 1:
            method.name = str(model_id)
    return methods


def baseline_methods(
    names: Sequence[str], pairs: Iterable[Pair], *, has_kernel: bool, log: Callable[[str], None] = print
) -> list[Method]:
    """The requested baselines as methods; `unsharp` gets its best grid setting on `pairs` here.

    Args:
        names: baseline names (`identity`, `unsharp`, `rl`, `wiener`).
        pairs: the evaluation pairs, re-iterable (read once more to choose the unsharp setting).
        has_kernel: whether the pairs carry their true kernel (synthetic blur).
        log: where to report the chosen unsharp setting.
    """
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {list(BASELINES)}")
    if not has_kernel and any(n in KERNEL_BASELINES for n in names):
        raise ValueError(
            f"baselines {[n for n in names if n in KERNEL_BASELINES]} need the true blur kernel: "
            "use them on synthetic data (--data sharp:DIR with --blur kernel, or --blur shake --shake-variant uniform)"
        )
    methods = []
    for name in names:
        if name == "unsharp":
            best, means = choose_unsharp((p.blurred / 255.0, p.sharp / 255.0) for p in pairs)
            log("unsharp grid (radius, amount) -> mean PSNR: " + ", ".join(f"{k}: {v:.2f}" for k, v in means.items()))
            radius, amount = best
            methods.append(Method("unsharp", lambda p, r=radius, a=amount: to_uint8(unsharp(p.blurred / 255.0, r, a)),
                                  setting=f"radius={radius:g}, amount={amount:g} (best of {len(UNSHARP_GRID)} by mean PSNR)"))
        elif name == "identity":
            methods.append(Method("identity", lambda p: p.blurred, setting="blurred input"))
        else:
            fn = BASELINES[name].fn
            setting = "true kernel, 30 iterations" if name == "rl" else "true kernel, skimage unsupervised_wiener"
            methods.append(Method(name, lambda p, fn=fn: to_uint8(fn(p.blurred / 255.0, p.kernel)), setting=setting))
    return methods


# ----------------------------------------------------------------------------------------------
# Running, writing
# ----------------------------------------------------------------------------------------------


def _crop_box(sharp: np.ndarray, size: int) -> tuple[int, int, int]:
    """The `size` square with the most detail (gradient energy) on a coarse grid: what deblurring changes."""
    h, w = sharp.shape[:2]
    size = min(size, h, w)
    gray = sharp.astype(np.float32).mean(axis=-1)
    energy = np.abs(np.diff(gray, axis=0))[:, :-1] + np.abs(np.diff(gray, axis=1))[:-1, :]
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    best, box = -1.0, (0, 0)
    step = max(size // 4, 1)
    for y in range(0, max(h - size, 0) + 1, step):
        for x in range(0, max(w - size, 0) + 1, step):
            y1, x1 = min(y + size, h - 1), min(x + size, w - 1)
            e = integral[y1, x1] - integral[y, x1] - integral[y1, x] + integral[y, x]
            if e > best:
                best, box = e, (y, x)
    return box[0], box[1], size


def summary_markdown(results: Sequence[MethodResult]) -> str:
    """The summary table (one row per method) as markdown."""
    lines = [
        "| method | PSNR (dB) | SSIM | s / image | MP / s | images | setting |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        s = r.summary()
        # identity does no work: its throughput is only timer noise
        mps = f"{s['mp_per_s']:.2f}" if s["s_per_image"] >= 1e-4 else "n/a"
        lines.append(
            f"| {s['method']} | {s['psnr']:.2f} | {s['ssim']:.4f} | {s['s_per_image']:.3f} | {mps} "
            f"| {s['images']} | {s['setting']} |"
        )
    return "\n".join(lines) + "\n"


def _figure(rows: list[tuple[str, dict[str, np.ndarray], dict[str, float]]], columns: list[str]) -> bytes:
    """PNG bytes of a grid: one row per image, columns blur | methods | sharp, PSNR in the titles."""
    with needs("eval"):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

    cell = 2.4
    fig = Figure(figsize=(cell * len(columns), (cell + 0.55) * len(rows) + 0.2), dpi=110)
    FigureCanvasAgg(fig)
    for i, (name, crops, scores) in enumerate(rows):
        for j, col in enumerate(columns):
            ax = fig.add_subplot(len(rows), len(columns), i * len(columns) + j + 1)
            ax.imshow(crops[col], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            title = col if col not in scores else f"{col}\n{scores[col]:.2f} dB"
            ax.set_title(title, fontsize=8)
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.suptitle("crops; titles give the PSNR of the whole image", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def run_evaluation(
    pairs: Iterable[Pair],
    methods: Sequence[Method],
    *,
    out_dir: str | Path | None = None,
    figure_rows: int = 3,
    crop: int = 192,
    progress: bool = True,
) -> list[MethodResult]:
    """Run every method on every pair, score it (`metrics.psnr_images` / `ssim_images`), write the outputs.

    Args:
        pairs: the evaluation pairs (e.g. a `PairSource`).
        methods: the methods to compare (models and baselines).
        out_dir: where `per_image.csv`, `summary.md` and `crops.png` go (None: write nothing).
        figure_rows: images shown in the crops figure (the first ones).
        crop: side of the square crops in the figure.
        progress: show a progress bar.
    """
    from tqdm.auto import tqdm

    if not methods:
        raise ValueError("nothing to evaluate: give at least one --model or baseline")
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise ValueError(f"method names must be unique, got {names}")
    results = [MethodResult(m.name, m.setting) for m in methods]
    figure: list[tuple[str, dict[str, np.ndarray], dict[str, float]]] = []
    for i, pair in enumerate(tqdm(pairs, desc="evaluate", unit="image", disable=not progress)):
        h, w = pair.sharp.shape[:2]
        crops: dict[str, np.ndarray] = {}
        scores: dict[str, float] = {}
        if i < figure_rows:
            y, x, c = _crop_box(pair.sharp, crop)
            cut = lambda a, y=y, x=x, c=c: a[y : y + c, x : x + c]  # noqa: E731
            crops.update({"blur": cut(pair.blurred), "sharp": cut(pair.sharp)})
        for method, result in zip(methods, results):
            start = time.perf_counter()
            out = method.run(pair)
            seconds = time.perf_counter() - start
            if out.shape != pair.sharp.shape or out.dtype != np.uint8:
                raise ValueError(f"method {method.name} returned {out.dtype} {out.shape} for {pair.name}, "
                                 f"expected uint8 {pair.sharp.shape}")
            p = psnr_images([out], [pair.sharp])[0]
            s = ssim_images([out], [pair.sharp])[0]
            result.images.append(pair.name)
            result.psnr.append(p)
            result.ssim.append(s)
            result.seconds.append(seconds)
            result.megapixels.append(h * w / 1e6)
            if i < figure_rows:
                if method.name == "identity":  # the same picture as the blur column: score it there
                    scores["blur"] = p
                else:
                    crops[method.name] = cut(out)
                    scores[method.name] = p
        if i < figure_rows:
            figure.append((pair.name, crops, scores))
    if not results[0].images:
        raise ValueError("the data source yielded no pairs")
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["image", "method", "psnr", "ssim", "seconds", "megapixels"])
        for r in results:
            for row in zip(r.images, [r.name] * len(r.images), r.psnr, r.ssim, r.seconds, r.megapixels):
                writer.writerow([row[0], row[1], f"{row[2]:.4f}", f"{row[3]:.6f}", f"{row[4]:.4f}", f"{row[5]:.4f}"])
        atomic_write_bytes(out / "per_image.csv", buf.getvalue().encode())
        atomic_write_bytes(out / "summary.md", summary_markdown(results).encode())
        atomic_write_bytes(out / "crops.png", _figure(figure, ["blur", *[n for n in names if n != "identity"], "sharp"]))
    return results


def camera_shake_benchmark(
    methods: Sequence[Method],
    sources: Sequence[str],
    *,
    bins: Sequence[tuple[int, int]] = SHAKE_BINS,
    variants: Sequence[str] = tuple(SHAKE_VARIANTS),
    seed: int = 0,
    limit: int | None = None,
    reference_baselines: Sequence[str] = ("wiener", "rl"),
    progress: bool = False,
) -> list[dict[str, object]]:
    """The camera-shake benchmark: every (kernel-size bin, variant) on the photos of ``sources``.

    Each method is scored against the blurred input on the same pairs; ``reference_baselines``
    (non-blind, given the true kernel) run on the ``uniform`` variant, the only one with a single
    true kernel. Returns one row per (bin, variant, method) with the mean PSNR / SSIM, the gain over
    the input and the number of images a method made worse (lower PSNR than its input).
    """
    import itertools

    def named(source: PairSource) -> Iterator[Pair]:  # photo names repeat across data sets
        label = Path(source.source.partition(":")[2]).name
        for pair in source:
            yield Pair(f"{label}/{pair.name}", pair.blurred, pair.sharp, pair.kernel)

    rows: list[dict[str, object]] = []
    for (lo, hi), variant in itertools.product(bins, variants):
        pair_sources = [PairSource(src, limit=limit, blur="shake", seed=seed, shake_size=(lo, hi), shake_variant=variant)
                        for src in sources]
        refs = list(reference_baselines) if variant == "uniform" else []
        extra = baseline_methods(["identity", *refs], [], has_kernel=variant == "uniform", log=lambda _: None)
        results = run_evaluation(itertools.chain(*map(named, pair_sources)), [*extra[:1], *methods, *extra[1:]],
                                 figure_rows=0, progress=progress)
        base = results[0]
        for r in results:
            rows.append({
                "kernel_px": f"{lo}-{hi}", "variant": variant, "method": r.name, "images": len(r.images),
                "psnr": float(np.mean(r.psnr)), "ssim": float(np.mean(r.ssim)),
                "gain_db": float(np.mean(r.psnr) - np.mean(base.psnr)),
                "worse": int(sum(p < b for p, b in zip(r.psnr, base.psnr))) if r is not base else None,
                "per_image": list(zip(r.images, r.psnr, r.ssim)),
            })
    return rows


def camera_shake_csv(rows: Sequence[dict[str, object]]) -> str:
    """Per-image scores of `camera_shake_benchmark` rows as CSV text."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["kernel_px", "variant", "method", "image", "psnr", "ssim"])
    for r in rows:
        for image, p, s in r["per_image"]:
            writer.writerow([r["kernel_px"], r["variant"], r["method"], image, f"{p:.4f}", f"{s:.6f}"])
    return buf.getvalue()


def camera_shake_markdown(rows: Sequence[dict[str, object]]) -> str:
    """`camera_shake_benchmark` rows as a Markdown table (the input is the `identity` row)."""
    lines = ["| kernel (px) | variant | method | PSNR (dB) | gain (dB) | SSIM | images made worse |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        name = "blurred input" if r["method"] == "identity" else r["method"]
        worse = "" if r["worse"] is None else f"{r['worse']} of {r['images']}"
        gain = "" if r["worse"] is None else f"{r['gain_db']:+.2f}"
        lines.append(f"| {r['kernel_px']} | {r['variant']} | {name} | {r['psnr']:.2f} | {gain} | {r['ssim']:.4f} | {worse} |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deblurgan evaluate",
        description="Evaluate deblurring models and classical baselines side by side (PSNR, SSIM, speed).",
    )
    parser.add_argument("--model", action="append", default=[], metavar="PATH_OR_ID",
                        help="a save_pretrained folder or Hub id; repeat for several models")
    parser.add_argument("--data", required=True, metavar="SOURCE",
                        help="paired:DIR, gopro:DIR, hub:ID, disk:DIR (real pairs) or sharp:DIR (synthetic blur, fixed seed)")
    parser.add_argument("--baselines", nargs="*", default=None, metavar="NAME",
                        help=f"of {list(BASELINES)}; default: all that apply (rl and wiener need synthetic data); none: give no name")
    parser.add_argument("--out", default="evaluation", metavar="DIR", help="output folder (default: ./evaluation)")
    parser.add_argument("--tile", type=int, default=None, help="tile size for model inference (default: by image size)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help="model inference precision")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N pairs")
    parser.add_argument("--blur", choices=BLUR_CHOICES, default="kernel",
                        help="synthesis for sharp: sources (none: the sharp photo is the input)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic blur")
    parser.add_argument("--shake-size", type=int, nargs=2, default=list(SHAKE_BINS[0]), metavar=("MIN", "MAX"),
                        help="--blur shake: kernel support in pixels (the benchmark's bins: "
                             + ", ".join(f"{lo} {hi}" for lo, hi in SHAKE_BINS) + ")")
    parser.add_argument("--shake-variant", choices=list(SHAKE_VARIANTS), default="uniform",
                        help="--blur shake: uniform kernel, camera roll (spatially varying) or low light")
    parser.add_argument("--figure-rows", type=int, default=3, help="images in the crops figure")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`deblurgan evaluate ...`; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        pairs = PairSource(args.data, limit=args.limit, blur=args.blur, seed=args.seed,
                           shake_size=tuple(args.shake_size), shake_variant=args.shake_variant)
        has_kernel = pairs.has_kernel
        print(pairs)
        names = args.baselines
        if names is None:
            names = [n for n in BASELINES if has_kernel or n not in KERNEL_BASELINES]
        methods = model_methods(args.model, tile=args.tile, precision=args.precision)
        methods += baseline_methods(names, pairs, has_kernel=has_kernel)
        results = run_evaluation(pairs, methods, out_dir=args.out, figure_rows=args.figure_rows)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary_markdown(results))
    print(f"wrote {Path(args.out) / 'per_image.csv'}, {Path(args.out) / 'summary.md'}, {Path(args.out) / 'crops.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
