"""PSNR / SSIM evaluate modules and the torch path, against scikit-image on real image pairs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from deblurgan_hf.metrics import (
    PSNR_PATH,
    SSIM_PATH,
    load_psnr,
    load_ssim,
    psnr_images,
    psnr_torch,
    ssim_images,
    ssim_torch,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
VAL = DATA / "gopro_real" / "val"

# (top, left, height, width) crops of real GoPro pairs: odd, even, tiny, wide
CROPS = [(300, 500, 97, 131), (100, 200, 64, 64), (400, 900, 13, 17), (0, 0, 201, 333)]


def _pair(index: int, box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    name = sorted((VAL / "blur").glob("*.png"))[index].name
    top, left, h, w = box
    blur = np.asarray(Image.open(VAL / "blur" / name).convert("RGB"))[top : top + h, left : left + w].copy()
    sharp = np.asarray(Image.open(VAL / "sharp" / name).convert("RGB"))[top : top + h, left : left + w].copy()
    return blur, sharp


def _gray(x: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(x).convert("L"))


def _sk_ssim(pred: np.ndarray, ref: np.ndarray, data_range: float = 255) -> float:
    return structural_similarity(ref, pred, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=data_range, channel_axis=-1 if pred.ndim == 3 else None)


def _tensor(x: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(x.copy()).float().div(255)
    return (t.permute(2, 0, 1) if t.ndim == 3 else t[None])[None]


@pytest.fixture(scope="module")
def pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    out = [_pair(i, box) for i, box in enumerate(CROPS)]
    cbsd = sorted((DATA / "sharp" / "cbsd68").glob("*.png"))[0]  # a whole 481x321 photo vs a JPEG-degraded copy
    ref = np.asarray(Image.open(cbsd).convert("RGB"))
    import io

    buf = io.BytesIO()
    Image.fromarray(ref).save(buf, format="JPEG", quality=30)
    out.append((np.asarray(Image.open(buf).convert("RGB")), ref))
    return out


@pytest.fixture(scope="module")
def psnr():
    return load_psnr()


@pytest.fixture(scope="module")
def ssim():
    return load_ssim()


@pytest.mark.parametrize("gray", [False, True], ids=["colour", "gray"])
def test_modules_match_skimage(pairs, psnr, ssim, gray):
    preds = [_gray(b) if gray else b for b, _ in pairs]
    refs = [_gray(s) if gray else s for _, s in pairs]
    # Mixed input kinds on purpose: numpy arrays and PIL images go through datasets.Image().
    p = psnr.compute(predictions=preds, references=[Image.fromarray(r) for r in refs])
    s = ssim.compute(predictions=[Image.fromarray(x) for x in preds], references=refs)
    want_p = [peak_signal_noise_ratio(r, x, data_range=255) for x, r in zip(preds, refs)]
    want_s = [_sk_ssim(x, r) for x, r in zip(preds, refs)]
    np.testing.assert_allclose(p["psnr_per_image"], want_p, atol=1e-4)
    np.testing.assert_allclose(s["ssim_per_image"], want_s, atol=1e-4)
    assert p["psnr"] == pytest.approx(np.mean(want_p), abs=1e-4)
    assert s["ssim"] == pytest.approx(np.mean(want_s), abs=1e-4)
    assert 0.1 < min(want_s) < max(want_s) < 0.99  # real, different pairs, not a degenerate case


def test_y_channel_and_crop_border(pairs, psnr, ssim):
    blur, sharp = pairs[0]
    # scikit-image's rgb2ycbcr is the same BT.601 (MATLAB) conversion, written independently
    yb, ys = rgb2ycbcr(blur)[..., 0], rgb2ycbcr(sharp)[..., 0]
    p = psnr.compute(predictions=[blur], references=[sharp], y_channel=True)["psnr"]
    s = ssim.compute(predictions=[blur], references=[sharp], y_channel=True)["ssim"]
    assert p == pytest.approx(peak_signal_noise_ratio(ys, yb, data_range=255), abs=1e-4)
    assert s == pytest.approx(_sk_ssim(yb, ys), abs=1e-4)
    c = 7
    p = psnr.compute(predictions=[blur], references=[sharp], crop_border=c)["psnr"]
    s = ssim.compute(predictions=[blur], references=[sharp], crop_border=c)["ssim"]
    assert p == pytest.approx(peak_signal_noise_ratio(sharp[c:-c, c:-c], blur[c:-c, c:-c], data_range=255), abs=1e-4)
    assert s == pytest.approx(_sk_ssim(blur[c:-c, c:-c], sharp[c:-c, c:-c]), abs=1e-4)
    assert torch.allclose(psnr_torch(_tensor(blur), _tensor(sharp), y_channel=True, crop_border=c),
                          torch.tensor([psnr.compute(predictions=[blur], references=[sharp], y_channel=True, crop_border=c)["psnr"]]),
                          atol=1e-3)
    assert torch.allclose(ssim_torch(_tensor(blur), _tensor(sharp), y_channel=True, crop_border=c),
                          torch.tensor([ssim.compute(predictions=[blur], references=[sharp], y_channel=True, crop_border=c)["ssim"]]),
                          atol=1e-3)


@pytest.mark.parametrize("gray", [False, True], ids=["colour", "gray"])
def test_torch_path_matches_modules(pairs, psnr, ssim, gray):
    for blur, sharp in pairs:
        b, s = (_gray(blur), _gray(sharp)) if gray else (blur, sharp)
        want_p = psnr.compute(predictions=[b], references=[s])["psnr"]
        want_s = ssim.compute(predictions=[b], references=[s])["ssim"]
        assert psnr_torch(_tensor(b), _tensor(s)).item() == pytest.approx(want_p, abs=1e-3)
        assert ssim_torch(_tensor(b), _tensor(s)).item() == pytest.approx(want_s, abs=1e-3)


def test_torch_path_batched_and_quantised(pairs):
    blur, sharp = pairs[1]
    batch_b = torch.cat([_tensor(blur), _tensor(sharp)])
    batch_s = torch.cat([_tensor(sharp), _tensor(blur)])
    p, s = psnr_torch(batch_b, batch_s), ssim_torch(batch_b, batch_s)
    assert p.shape == s.shape == (2,)
    assert p[0] == pytest.approx(peak_signal_noise_ratio(sharp, blur, data_range=255), abs=1e-3)
    assert s[0] == pytest.approx(_sk_ssim(blur, sharp), abs=1e-3)
    # a float offset below half a level rounds away, as saving the output as PNG would
    nudged = (_tensor(blur) + 0.4 / 255).clamp(0, 1)
    assert psnr_torch(nudged, _tensor(sharp)).item() == pytest.approx(p[0].item(), abs=1e-3)


def test_identical_images(pairs, psnr, ssim):
    _, sharp = pairs[0]
    assert psnr.compute(predictions=[sharp], references=[sharp])["psnr"] == float("inf")
    assert ssim.compute(predictions=[sharp], references=[sharp])["ssim"] == 1.0
    t = _tensor(sharp)
    assert torch.isinf(psnr_torch(t, t)).all()
    assert ssim_torch(t, t).item() == pytest.approx(1.0, abs=1e-6)


def test_bad_inputs_give_clear_errors(pairs, psnr, ssim):
    blur, sharp = pairs[0]
    with pytest.raises(ValueError, match=r"predictions\[0\] has shape \(97, 130, 3\) but references\[0\] has shape \(97, 131, 3\)"):
        psnr.compute(predictions=[blur[:, :-1]], references=[sharp])
    with pytest.raises(ValueError, match=r"shape"):
        ssim.compute(predictions=[_gray(blur)], references=[sharp])
    with pytest.raises(ValueError, match=r"predictions\[0\] has dtype float64.*uint8"):
        psnr.compute(predictions=[blur / 255.0], references=[sharp])
    with pytest.raises(ValueError, match=r"references\[0\] has dtype uint16"):
        ssim.compute(predictions=[blur], references=[sharp.astype(np.uint16) * 257])
    with pytest.raises(ValueError, match=r"RGBA"):
        psnr.compute(predictions=[Image.fromarray(blur).convert("RGBA")], references=[Image.fromarray(sharp).convert("RGBA")])
    with pytest.raises(ValueError, match=r"at least 11x11"):
        ssim.compute(predictions=[blur[:8, :8]], references=[sharp[:8, :8]])
    with pytest.raises(ValueError, match=r"shapes differ"):
        psnr_torch(_tensor(blur), _tensor(sharp)[..., :-1])
    with pytest.raises(ValueError, match=r"float torch.Tensor"):
        ssim_torch(torch.from_numpy(blur).permute(2, 0, 1)[None], _tensor(sharp))
    with pytest.raises(ValueError, match=r"\(N, 1 or 3, H, W\)"):
        psnr_torch(_tensor(blur)[0], _tensor(sharp)[0])


def test_modules_load_offline_from_fresh_cache(tmp_path, pairs):
    blur, sharp = pairs[1]
    Image.fromarray(blur).save(tmp_path / "b.png")
    Image.fromarray(sharp).save(tmp_path / "s.png")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_MODULES_CACHE=str(tmp_path / "hf" / "modules"),
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_EVALUATE_OFFLINE="1")
    code = (
        "import evaluate, json, sys\n"
        f"p = evaluate.load({PSNR_PATH!r}); s = evaluate.load({SSIM_PATH!r})\n"
        f"args = dict(predictions=[{str(tmp_path / 'b.png')!r}], references=[{str(tmp_path / 's.png')!r}])\n"
        "print(json.dumps([p.compute(**args)['psnr'], s.compute(**args)['ssim']]))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    p, s = json.loads(run.stdout.strip().splitlines()[-1])
    assert p == pytest.approx(peak_signal_noise_ratio(sharp, blur, data_range=255), abs=1e-4)
    assert s == pytest.approx(_sk_ssim(blur, sharp), abs=1e-4)
    # the modules were copied into the fresh cache, not found in some earlier one
    cached = {p.name for p in (tmp_path / "hf" / "modules").rglob("*.py")}
    assert {"psnr.py", "ssim.py"} <= cached


def test_the_one_implementation_is_scikit_image_on_full_frames(pairs):
    """psnr_images / ssim_images (what evaluation, baselines and validation use) against scikit-image,
    on whole 1280x720 GoPro frames as well as the crops, colour, gray, luma and border crop."""
    frames = []
    for name in sorted((VAL / "blur").glob("*.png"))[:2]:
        frames.append((np.asarray(Image.open(name).convert("RGB")), np.asarray(Image.open(VAL / "sharp" / name.name).convert("RGB"))))
    for blur, sharp in [*frames, *pairs]:
        for b, s in ((blur, sharp), (_gray(blur), _gray(sharp))):
            assert psnr_images([b], [s])[0] == pytest.approx(peak_signal_noise_ratio(s, b, data_range=255), abs=1e-6)
            assert ssim_images([b], [s])[0] == pytest.approx(_sk_ssim(b, s), abs=1e-8)
    blur, sharp = frames[0]
    yb, ys = rgb2ycbcr(blur)[..., 0], rgb2ycbcr(sharp)[..., 0]
    c = 4
    assert psnr_images([blur], [sharp], y_channel=True, crop_border=c)[0] == pytest.approx(
        peak_signal_noise_ratio(ys[c:-c, c:-c], yb[c:-c, c:-c], data_range=255), abs=1e-6)
    assert ssim_images([blur], [sharp], y_channel=True, crop_border=c)[0] == pytest.approx(
        _sk_ssim(yb[c:-c, c:-c], ys[c:-c, c:-c]), abs=1e-8)
    # the float path quantises first: a frame in [0, 1] scores as its uint8 levels do
    assert psnr_torch(_tensor(blur), _tensor(sharp)).item() == pytest.approx(psnr_images([blur], [sharp])[0], abs=1e-4)
    assert ssim_torch(_tensor(blur), _tensor(sharp)).item() == pytest.approx(ssim_images([blur], [sharp])[0], abs=1e-6)
