"""The evaluation CLI on tiny real data, and the classical baselines."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deblurgan_hf import evaluation
from deblurgan_hf.baselines import choose_unsharp, richardson_lucy, unsharp, wiener
from deblurgan_hf.imaging import to_uint8
from deblurgan_hf.metrics import psnr_images

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def paired_dir(tmp_path_factory) -> Path:
    """Three real GoPro validation pairs, 96x128 crops, in the blur/ + sharp/ layout."""
    root = tmp_path_factory.mktemp("paired")
    val = DATA / "gopro_real" / "val"
    for sub in ("blur", "sharp"):
        (root / sub).mkdir()
    for i, path in enumerate(sorted((val / "blur").glob("*.png"))[:3]):
        top, left = 200 + 40 * i, 300 + 150 * i
        for sub in ("blur", "sharp"):
            img = Image.open(val / sub / path.name).convert("RGB")
            img.crop((left, top, left + 128, top + 96)).save(root / sub / path.name)
    return root


@pytest.fixture(scope="module")
def sharp_dir(tmp_path_factory) -> Path:
    """Three real Kodak photos, 112x112 crops (sharp only: blur is synthesised)."""
    root = tmp_path_factory.mktemp("sharp")
    for path in sorted((DATA / "sharp" / "kodak24").glob("*.png"))[:3]:
        Image.open(path).convert("RGB").crop((150, 150, 262, 262)).save(root / path.name)
    return root


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_cli_on_tiny_paired_set(paired_dir, small_model_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    rc = evaluation.main(["--model", str(small_model_dir), "--data", f"paired:{paired_dir}", "--out", str(out),
                          "--precision", "fp32"])
    assert rc == 0
    printed = capsys.readouterr().out
    rows = _rows(out / "per_image.csv")
    methods = {r["method"] for r in rows}
    assert methods == {small_model_dir.name, "identity", "unsharp"}  # no kernel: rl / wiener skipped
    assert len(rows) == 3 * 3
    # identity's numbers are those of the blurred crops themselves
    for r in rows:
        if r["method"] == "identity":
            blur = np.asarray(Image.open(paired_dir / "blur" / f"{r['image']}.png"))
            sharp = np.asarray(Image.open(paired_dir / "sharp" / f"{r['image']}.png"))
            assert float(r["psnr"]) == pytest.approx(psnr_images([blur], [sharp])[0], abs=1e-3)
        assert float(r["megapixels"]) == pytest.approx(96 * 128 / 1e6, abs=1e-4)
    summary = (out / "summary.md").read_text()
    assert summary in printed
    for name in methods:
        assert f"| {name} |" in summary
    assert "best of" in summary  # the chosen unsharp setting is reported
    with Image.open(out / "crops.png") as fig:
        assert fig.format == "PNG" and fig.width > 4 * 96 and fig.height > 3 * 96  # blur | model | unsharp | sharp


def test_rl_beats_identity_with_true_kernel(sharp_dir, tmp_path):
    out = tmp_path / "eval"
    rc = evaluation.main(["--data", f"sharp:{sharp_dir}", "--baselines", "identity", "rl", "--out", str(out),
                          "--figure-rows", "1"])
    assert rc == 0
    rows = _rows(out / "per_image.csv")
    mean = {m: np.mean([float(r["psnr"]) for r in rows if r["method"] == m]) for m in ("identity", "rl")}
    assert mean["rl"] > mean["identity"] + 0.5, mean


def test_synthetic_pairs_are_fixed_and_carry_their_kernel(sharp_dir):
    a, b = list(evaluation.PairSource(f"sharp:{sharp_dir}")), list(evaluation.PairSource(f"sharp:{sharp_dir}"))
    assert [p.name for p in a] == [p.stem for p in sorted(sharp_dir.glob("*.png"))]
    for p, q in zip(a, b):
        assert np.array_equal(p.blurred, q.blurred) and p.kernel is not None
        assert p.kernel.sum() == pytest.approx(1.0) and (p.kernel >= 0).all()
        assert not np.array_equal(p.blurred, p.sharp)
    assert evaluation.PairSource(f"sharp:{sharp_dir}", blur="trajectory").has_kernel is False


def test_shake_pairs_of_downscaled_photos_blur_the_smaller_photo_with_the_same_kernel(sharp_dir):
    full, small = (next(iter(evaluation.PairSource(f"sharp:{sharp_dir}", blur="shake", shake_size=(7, 15), max_size=m)))
                   for m in (None, 80))
    photo = np.asarray(Image.open(sorted(sharp_dir.glob("*.png"))[0]))
    expected = np.asarray(Image.fromarray(photo).resize((80, 80), Image.Resampling.BICUBIC, reducing_gap=None))
    assert np.array_equal(full.kernel, small.kernel)  # the kernel draw does not depend on the photo's size
    crop = (expected.shape[0] - small.sharp.shape[0]) // 2  # valid convolution: the target is the matching crop
    assert crop > 0 and np.array_equal(small.sharp, expected[crop:-crop, crop:-crop])
    assert small.blurred.shape == small.sharp.shape and full.sharp.shape[0] == 112 - 2 * crop


def test_no_blur_pairs_feed_the_sharp_photo_itself(sharp_dir):
    pairs = list(evaluation.PairSource(f"sharp:{sharp_dir}", blur="none"))
    assert pairs and all(np.array_equal(p.blurred, p.sharp) and p.kernel is None for p in pairs)
    with pytest.raises(ValueError, match=r"blur must be one of .*'none'.*got 'gaussian'"):
        evaluation.PairSource(f"sharp:{sharp_dir}", blur="gaussian")


def test_baselines_on_a_known_kernel(sharp_dir):
    import torch

    from deblurgan_hf.blur import apply_kernel, random_trajectory_kernel

    sharp = np.asarray(Image.open(sorted(sharp_dir.glob("*.png"))[0]), dtype=np.float64) / 255
    kernel = random_trajectory_kernel(15, generator=torch.Generator().manual_seed(0)).double().numpy()
    kernel /= kernel.sum()
    blurred = apply_kernel(torch.from_numpy(sharp).permute(2, 0, 1), torch.from_numpy(kernel)).permute(1, 2, 0).numpy()
    blurred = to_uint8(blurred) / 255.0  # what a saved blurred image holds
    psnr = lambda x: psnr_images([to_uint8(x)], [to_uint8(sharp)])[0]  # noqa: E731
    base = psnr(blurred)
    assert psnr(richardson_lucy(blurred, kernel)) > base + 1.5
    assert psnr(wiener(blurred, kernel)) > base + 1.5
    assert np.array_equal(wiener(blurred, kernel, seed=3), wiener(blurred, kernel, seed=3))  # seeded sampler
    from skimage.filters import unsharp_mask

    by_channel = np.stack([unsharp_mask(blurred[..., c], radius=2.0, amount=1.0) for c in range(3)], axis=-1)
    np.testing.assert_allclose(unsharp(blurred, 2.0, 1.0), by_channel, atol=1e-12)
    (radius, amount), means = choose_unsharp([(blurred, sharp)])
    assert means[(radius, amount)] == max(means.values())
    assert means[(radius, amount)] == pytest.approx(psnr(unsharp(blurred, radius, amount)))
    with pytest.raises(ValueError, match="true blur kernel"):
        richardson_lucy(blurred, None)
    with pytest.raises(ValueError, match="sum to 1"):
        wiener(blurred, kernel * 2)


def test_cli_errors(paired_dir, tmp_path, capsys):
    assert evaluation.main(["--data", f"paired:{paired_dir}", "--baselines", "rl", "--out", str(tmp_path)]) == 2
    assert "true blur kernel" in capsys.readouterr().err
    assert evaluation.main(["--data", f"paired:{tmp_path / 'missing'}", "--out", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
    assert evaluation.main(["--data", f"paired:{paired_dir}", "--baselines", "sharpen", "--out", str(tmp_path)]) == 2
    assert "unknown baseline" in capsys.readouterr().err
    assert not (tmp_path / "per_image.csv").exists()


def test_models_with_the_same_folder_name_keep_apart(small_model_dir, tmp_path):
    a, b = tmp_path / "run_a" / "best", tmp_path / "run_b" / "best"
    for folder in (a, b):
        shutil.copytree(small_model_dir, folder)
    methods = evaluation.model_methods([str(a), str(b), str(small_model_dir)], precision="fp32")
    assert [m.name for m in methods] == [str(a), str(b), small_model_dir.name]


@pytest.mark.parametrize("size", evaluation.SHAKE_BINS)
def test_camera_shake_benchmark_pairs_are_what_they_say(sharp_dir, size):
    """Fixed for a seed, kernels in their bin and centred, the target the matching (valid) crop."""
    from scipy.signal import convolve2d

    from deblurgan_hf.blur import kernel_support

    source = f"sharp:{sharp_dir}"
    pairs = list(evaluation.PairSource(source, blur="shake", shake_size=size))
    again = list(evaluation.PairSource(source, blur="shake", shake_size=size))
    other = list(evaluation.PairSource(source, blur="shake", shake_size=size, seed=1))
    assert len(pairs) == 3
    for p, q, r in zip(pairs, again, other):
        assert np.array_equal(p.blurred, q.blurred) and not np.array_equal(p.kernel, r.kernel)
        k = p.kernel
        assert size[0] <= kernel_support(k) <= size[1]
        ys, xs = np.mgrid[: k.shape[0], : k.shape[1]]
        assert (k * ys).sum() == pytest.approx((k.shape[0] - 1) / 2, abs=1e-4)
        assert (k * xs).sum() == pytest.approx((k.shape[1] - 1) / 2, abs=1e-4)
        assert p.blurred.shape == p.sharp.shape == (112 - k.shape[0] + 1, 112 - k.shape[1] + 1, 3)
    # the blur is the valid convolution of the photo plus 1% noise: residual std about 0.01
    photo = np.asarray(Image.open(sorted(sharp_dir.glob("*.png"))[0]).convert("RGB"), dtype=np.float64) / 255
    p = pairs[0]
    clean = np.stack([convolve2d(photo[..., c], p.kernel, mode="valid") for c in range(3)], -1)
    pad = p.kernel.shape[0] // 2
    assert np.array_equal(p.sharp, (photo[pad : photo.shape[0] - pad, pad : photo.shape[1] - pad] * 255).round().astype(np.uint8))
    assert 0.008 < float((p.blurred / 255 - clean).std()) < 0.012


def test_camera_shake_variants(sharp_dir):
    source = f"sharp:{sharp_dir}"
    uniform = list(evaluation.PairSource(source, blur="shake", shake_size=(15, 31)))
    rolled = evaluation.PairSource(source, blur="shake", shake_size=(15, 31), shake_variant="rotation")
    dim = list(evaluation.PairSource(source, blur="shake", shake_size=(15, 31), shake_variant="lowlight"))
    assert rolled.has_kernel is False and all(p.kernel is None for p in rolled)  # no single true kernel
    assert all(p.kernel is None for p in dim)
    noise = lambda pairs: np.mean([np.abs(np.diff(p.blurred.astype(float), axis=1)).mean() for p in pairs])  # noqa: E731
    assert noise(dim) > noise(uniform)  # 2-3% noise against 1%
    with pytest.raises(ValueError, match="shake_variant"):
        evaluation.PairSource(source, blur="shake", shake_variant="night")
    # a deconvolution's ceiling in low light: the same pairs, with the camera's kernel, whose support
    # in the bin is what the valid crop took off the photo
    dim_kernels = evaluation.PairSource(source, blur="shake", shake_size=(15, 31), shake_variant="lowlight", camera_kernel=True)
    assert dim_kernels.has_kernel is False  # not the blur itself: no non-blind baselines
    for plain, kept in zip(dim, dim_kernels):
        assert np.array_equal(plain.blurred, kept.blurred) and np.array_equal(plain.sharp, kept.sharp)
        assert 15 <= max(kept.kernel.shape) <= 31 and kept.kernel.sum() == pytest.approx(1.0)
        assert kept.sharp.shape[:2] == (112 - kept.kernel.shape[0] + 1, 112 - kept.kernel.shape[1] + 1)
    with pytest.raises(ValueError, match="camera_kernel needs blur='shake' and a variant without rotation"):
        evaluation.PairSource(source, blur="shake", shake_variant="rotation", camera_kernel=True)


def test_camera_shake_benchmark_table(sharp_dir):
    """The benchmark runs the reference baselines with the true kernel on the uniform variant only,
    and counts images made worse against the same pairs' input."""
    rows = evaluation.camera_shake_benchmark([], [f"sharp:{sharp_dir}"], bins=[(7, 15)], variants=["uniform", "rotation"])
    by = {(r["variant"], r["method"]): r for r in rows}
    assert set(by) == {("uniform", "identity"), ("uniform", "wiener"), ("uniform", "rl"), ("rotation", "identity")}
    assert by["uniform", "rl"]["gain_db"] > 0.5 and 0 <= by["uniform", "rl"]["worse"] < 3
    assert by["uniform", "identity"]["worse"] is None and by["uniform", "identity"]["images"] == 3
    table = evaluation.camera_shake_markdown(rows)
    assert "| 7-15 | uniform | blurred input |" in table and "| 7-15 | uniform | rl |" in table


def test_cli_camera_shake_set(sharp_dir, small_model_dir, tmp_path, capsys):
    code = evaluation.main(["--model", str(small_model_dir), "--data", f"sharp:{sharp_dir}", "--blur", "shake",
                            "--shake-size", "31", "75", "--shake-variant", "uniform", "--baselines", "identity", "rl",
                            "--out", str(tmp_path / "ev")])
    out = capsys.readouterr().out
    assert code == 0 and "camera shake 31-75 px, uniform, seed 0" in out
    with open(tmp_path / "ev" / "per_image.csv") as f:
        assert {r["method"] for r in csv.DictReader(f)} == {small_model_dir.name, "identity", "rl"}
