"""Blur synthesis on real images: kernels, convolution, GoPro-like trajectory blur and its calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from deblurgan_hf.blur import (
    BlurSynthesizer,
    apply_kernel,
    random_trajectory_kernel,
    sample_camera_paths,
    trajectory_blur,
)
from deblurgan_hf.metrics import psnr_torch

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL = DATA / "gopro_real"


def load(path: Path, scale: float = 1.0) -> torch.Tensor:
    im = Image.open(path).convert("RGB")
    if scale != 1.0:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.array(im, dtype=np.float32) / 255).permute(2, 0, 1).contiguous()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of (3, H, W) images in [0, 1], on uint8 levels (the project's one PSNR)."""
    return float(psnr_torch(a[None], b[None]))


def grad_energy(x: torch.Tensor) -> float:
    return float(x.diff(dim=-1).pow(2).mean() + x.diff(dim=-2).pow(2).mean())


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def kodak() -> torch.Tensor:
    return load(sorted((DATA / "sharp" / "kodak24").glob("*.png"))[2])  # 500x500 real photo


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------- kernels

@pytest.mark.parametrize("size", [9, 31, 64])
def test_kernel_nonnegative_normalised_reproducible(size):
    k = random_trajectory_kernel(size, generator=gen(3))
    assert k.shape == (size, size) and k.dtype == torch.float32
    assert float(k.min()) >= 0
    assert abs(float(k.sum()) - 1) < 1e-5
    assert torch.equal(k, random_trajectory_kernel(size, generator=gen(3)))
    assert not torch.equal(k, random_trajectory_kernel(size, generator=gen(4)))
    assert int((k > 0).sum()) > size // 3  # a path, not a dot


def test_kernel_centred_and_exposure_shortens():
    k = random_trajectory_kernel(41, generator=gen(5))
    ys, xs = torch.meshgrid(torch.arange(41.0), torch.arange(41.0), indexing="ij")
    # centre of mass at the kernel centre: blurring does not shift the image
    assert abs(float((k * xs).sum()) - 20) < 1e-3 and abs(float((k * ys).sum()) - 20) < 1e-3
    short = random_trajectory_kernel(41, exposure=0.1, generator=gen(5))
    assert int((short > 1e-6).sum()) < int((k > 1e-6).sum())


@pytest.mark.parametrize("size", [7, 15, 31])  # conv2d path (<= 15) and FFT path
def test_point_image_gives_back_kernel(size):
    k = random_trajectory_kernel(size, generator=gen(size))
    point = torch.zeros(3, 80, 90)
    point[:, 40, 45] = 1
    out = apply_kernel(point, k)
    r = size // 2
    for c in range(3):
        torch.testing.assert_close(out[c, 40 - r : 40 + r + 1, 45 - r : 45 + r + 1], k, atol=1e-6, rtol=0)
    assert abs(float(out.sum()) - 3) < 1e-4


@pytest.mark.parametrize("size", [11, 25])
def test_apply_kernel_matches_scipy_with_reflect_border(kodak, size):
    """Border handling is documented as reflect (scipy's 'mirror'); check it on a real crop."""
    img = kodak[:, 100:196, 50:170]
    k = random_trajectory_kernel(size, generator=gen(1))
    out = apply_kernel(img, k)
    ref = np.stack([ndimage.convolve(img[c].double().numpy(), k.double().numpy(), mode="mirror") for c in range(3)])
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-5)


def test_apply_kernel_batched_per_image(kodak):
    imgs = torch.stack([kodak[:, :64, :64], kodak[:, 200:264, 300:364]])
    ks = torch.stack([random_trajectory_kernel(13, generator=gen(i)) for i in range(2)])
    out = apply_kernel(imgs, ks)
    for i in range(2):
        torch.testing.assert_close(out[i], apply_kernel(imgs[i], ks[i]))
    with pytest.raises(ValueError, match="kernels must be"):
        apply_kernel(imgs, ks[:1].expand(3, 13, 13))


# ---------------------------------------------------------------------------------------------- trajectory blur

NO_MOTION = dict(length=0.0, rotation=0.0, zoom=0.0, perspective=0.0, object_prob=0.0, noise=0.0)


def test_no_motion_gives_back_input(kodak):
    x = kodak[:, :160, :200]
    out = trajectory_blur(x, generator=gen(0), **NO_MOTION)
    torch.testing.assert_close(out, x, atol=2e-4, rtol=0)
    # linear light: x ** (1/2.2) turns float32 grid rounding (~1e-5 px) into ~1e-3 at dark edges
    out = trajectory_blur(x, generator=gen(0), space="linear", **NO_MOTION)
    torch.testing.assert_close(out, x, atol=3e-3, rtol=0)
    assert float((out - x).abs().mean()) < 2e-5


def test_motion_lowers_gradient_energy_and_grows_with_length(kodak):
    x = kodak[:, 100:356, 100:356]
    lengths = [0.01, 0.03, 0.06]
    energies = [grad_energy(trajectory_blur(x, generator=gen(7), length=L, object_prob=0, noise=0, frame_diag=707.0))
                for L in lengths]
    assert energies[0] < 0.8 * grad_energy(x)
    assert energies[0] > energies[1] > energies[2]


def test_trajectory_blur_reproducible_and_batched(kodak):
    x = torch.stack([kodak[:, :96, :128], kodak[:, 300:396, 200:328]])
    a, info = trajectory_blur(x, generator=gen(11), return_info=True, jpeg_prob=0.5, object_prob=0.5)
    b = trajectory_blur(x, generator=gen(11), jpeg_prob=0.5, object_prob=0.5)
    assert torch.equal(a, b)
    assert not torch.equal(a, trajectory_blur(x, generator=gen(12)))
    assert a.shape == x.shape and a.dtype == torch.float32 and 0 <= float(a.min()) and float(a.max()) <= 1
    assert info["n_frames"] % 2 == 1 and info["n_frames"] >= 7


def test_crop_blurred_like_full_frame(kodak):
    """Motion is relative to the full frame: blurring a crop with the frame's diagonal and centre
    (and enough context) gives the same pixels as cropping the blurred full frame."""
    full = kodak[:, :300, :400]
    paths = sample_camera_paths(1, generator=gen(2), object_prob=1.0)
    blurred_full = trajectory_blur(full, paths=paths, noise=0.0, n_frames=31)
    diag = float(np.hypot(300, 400))
    margin = int(np.ceil(float(paths.max_displacement()[0]) * diag)) + 2
    top, left, c = 120, 150, 64
    t0, l0 = top - margin, left - margin
    region = full[:, t0 : top + c + margin, l0 : left + c + margin]
    centre = torch.tensor([(400 - 1) / 2 - l0, (300 - 1) / 2 - t0])
    out = trajectory_blur(region, paths=paths, noise=0.0, n_frames=31, frame_diag=diag, center=centre)
    crop = out[:, margin : margin + c, margin : margin + c]
    torch.testing.assert_close(crop, blurred_full[:, top : top + c, left : left + c], atol=2e-4, rtol=0)


def test_moving_object_changes_only_its_region(kodak):
    x = kodak[:, :200, :200]
    out, info = trajectory_blur(x, generator=gen(4), return_info=True, **{**NO_MOTION, "object_prob": 1.0},
                                object_motion=0.05)
    changed = (out - x).abs().amax(0) > 2e-3
    assert 0.005 < float(changed.float().mean()) < 0.6
    p = info["paths"]
    # pixels well outside the (moving) ellipse are untouched
    ys, xs = torch.meshgrid(torch.arange(200.0), torch.arange(200.0), indexing="ij")
    half = np.hypot(200, 200) / 2
    d = torch.stack([(xs - 99.5) / half - p.obj_center[0, 0], (ys - 99.5) / half - p.obj_center[0, 1]]).norm(dim=0)
    far = d > float(p.obj_axes[0].max()) + float(p.obj_velocity[0].norm()) + 0.02
    assert int(far.sum()) > 0 and not bool(changed[far].any())


def test_linear_space_and_highlights_brighten_streaks(kodak):
    # a bright real highlight: white square on a real dark background
    x = kodak[:, :128, :128] * 0.3
    x[:, 54:74, 54:74] = 1.0
    common = dict(length=0.1, rotation=0, zoom=0, perspective=0, object_prob=0, noise=0)
    srgb = trajectory_blur(x, generator=gen(9), **common)
    linear = trajectory_blur(x, generator=gen(9), space="linear", **common)
    boosted = trajectory_blur(x, generator=gen(9), space="linear", highlight_prob=1.0, highlight_gain=(4.0, 4.0), **common)
    # averaging in linear light makes bright streaks brighter than averaging sRGB values
    assert float(linear.mean()) > float(srgb.mean())
    assert float(boosted.mean()) > float(linear.mean()) + 0.005
    assert float(boosted.max()) <= 1.0


def test_noise_and_jpeg(kodak):
    x = kodak[:, :128, :128]
    noisy = trajectory_blur(x, generator=gen(0), **{**NO_MOTION, "noise": 0.05})
    assert 0.04 < float((noisy - x).std()) < 0.06
    jpg = trajectory_blur(x, generator=gen(0), **NO_MOTION, jpeg_prob=1.0, jpeg_quality=(30, 30))
    err = float((jpg - x).abs().mean())
    assert 0.002 < err < 0.05


def test_default_psnr_spread_covers_real_gopro_pairs():
    """Default settings on the real GoPro sharp frames vs the real blurred/sharp pairs, both at 1/4
    scale (320x180) for speed: the synthetic PSNR range must cover the real one, means within 1 dB."""
    scale = 0.25
    real, synth = [], []
    for split in ("train", "val"):
        for blur_file in sorted((REAL / split / "blur").glob("*.png")):
            sharp = load(REAL / split / "sharp" / blur_file.name, scale)
            real.append(psnr(load(blur_file, scale), sharp))
            for _ in range(2):
                synth.append(psnr(trajectory_blur(sharp, generator=gen(len(synth))), sharp))
    real, synth = np.array(real), np.array(synth)
    assert len(real) == 20
    assert 18.0 < real.mean() < 24.0  # sanity: strong blur at this scale
    assert synth.min() <= real.min() + 0.5, (synth.min(), real.min())
    assert synth.max() >= real.max() - 0.5, (synth.max(), real.max())
    assert abs(synth.mean() - real.mean()) < 1.0, (synth.mean(), real.mean())


# ---------------------------------------------------------------------------------------------- synthesizer

def test_synthesizer_kernel_mode_returns_the_kernel(kodak):
    synth = BlurSynthesizer("kernel", size=21, noise=0.0)
    x = torch.stack([kodak[:, :80, :80], kodak[:, 100:180, 100:180]])
    blurred, info = synth(x, gen(0))
    assert info["kernel"].shape == (2, 21, 21)
    torch.testing.assert_close(blurred, apply_kernel(x, info["kernel"]).clamp(0, 1))
    b2, _ = synth(x, gen(0))
    assert torch.equal(blurred, b2)
    single, info1 = synth(x[0], gen(0))
    assert single.shape == x[0].shape and info1["kernel"].shape == (1, 21, 21)


def test_synthesizer_trajectory_mode(kodak):
    synth = BlurSynthesizer.from_config({"mode": "trajectory", "length": [0.02, 0.03], "object_prob": 0})
    blurred, info = synth(kodak[:, :96, :96], gen(1))
    assert blurred.shape == (3, 96, 96) and "paths" in info
    assert grad_energy(blurred) < grad_energy(kodak[:, :96, :96])
    assert synth.margin(1000.0, synth.sample_paths(1, gen(1))) > 0


@pytest.mark.parametrize(
    "args, match",
    [
        (("blurry",), "blur mode must be one of"),
        (("trajectory",), "unknown trajectory-blur parameter"),
        (("kernel",), "unknown kernel-blur parameter"),
    ],
)
def test_synthesizer_bad_settings(args, match):
    with pytest.raises(ValueError, match=match):
        BlurSynthesizer(*args, lenght=0.1) if args[0] != "blurry" else BlurSynthesizer(*args)


def test_bad_arguments(kodak):
    with pytest.raises(ValueError, match="space must be"):
        trajectory_blur(kodak, space="log")
    with pytest.raises(ValueError, match="length must be"):
        trajectory_blur(kodak, length=(0.05, 0.01))
    with pytest.raises(ValueError, match="exposure"):
        random_trajectory_kernel(15, exposure=0.0)
    with pytest.raises(ValueError, match="too small for reflect"):
        apply_kernel(torch.rand(3, 8, 8), random_trajectory_kernel(31, generator=gen(0)))


def test_visualize_blur_script_writes_grid(tmp_path):
    """scripts/visualize_blur.py on real Kodak photos: a labelled PNG grid of the expected size."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import visualize_blur

    out = tmp_path / "grid.png"
    args = ["--source", f"sharp:{DATA / 'sharp' / 'kodak24'}", "--real", f"paired:{REAL / 'val'}",
            "--n", "2", "--crop", "64", "--out", str(out), "--blur", '{"object_prob": 1.0}']
    assert visualize_blur.main(args) == 0
    grid = np.asarray(Image.open(out).convert("RGB"))
    rows, cols = 4, 4  # kernels, trajectory, kernel, real; 2 pairs = 4 tiles per row
    gap, label = visualize_blur.GAP, visualize_blur.LABEL_H
    assert grid.shape == (rows * (64 + label + gap) + gap, cols * (64 + gap) + gap, 3)
    y = gap + label  # first kernel tile: black background with a bright path
    tile = grid[y : y + 64, gap : gap + 64]
    assert tile.max() == 255 and np.median(tile) == 0
    y = (64 + label + gap) + gap + label  # second row (trajectory): the blurred tile is smoother
    sharp, blurred = (grid[y : y + 64, x : x + 64].astype(float) for x in (gap, 2 * gap + 64))
    assert np.abs(np.diff(blurred, axis=1)).mean() < np.abs(np.diff(sharp, axis=1)).mean()


# ---------------------------------------------------------------------------------------------- camera shake

SHAKE_CLEAN = {"noise": 0.0, "jpeg_prob": 0.0, "linear_prob": 0.0, "rotation_prob": 0.0}


@pytest.mark.parametrize("size", [(7, 15), (15, 31), (31, 75)])
def test_shake_kernels_in_size_range_centred_and_normalised(size, kodak):
    from deblurgan_hf.blur import camera_shake_blur, kernel_support

    g = gen(11)
    for _ in range(12):
        _, info = camera_shake_blur(kodak[:, :160, :160], generator=g, size=size, **SHAKE_CLEAN)
        k = info["kernel"][0].double()
        assert k.shape[0] % 2 == 1 and k.min() >= 0 and k.sum().item() == pytest.approx(1.0, abs=1e-6)
        assert size[0] <= kernel_support(k) == int(info["size"][0]) <= size[1]
        ys, xs = torch.meshgrid(torch.arange(k.shape[0]), torch.arange(k.shape[1]), indexing="ij")
        centre = (k.shape[0] - 1) / 2
        assert float((k * ys).sum()) == pytest.approx(centre, abs=1e-4)
        assert float((k * xs).sum()) == pytest.approx(centre, abs=1e-4)


def test_shake_paths_vary_in_speed():
    """Re-timing makes samples bunch where the hand slows: step lengths spread far more than at constant speed."""
    from deblurgan_hf.blur import camera_shake_path

    steady = camera_shake_path(40, speed_variation=0.0, loop_prob=1.0, generator=gen(5))
    varied = camera_shake_path(40, speed_variation=2.0, loop_prob=1.0, generator=gen(5))
    spread = lambda p: float(p.diff(dim=0).norm(dim=1).std() / p.diff(dim=0).norm(dim=1).mean())  # noqa: E731
    assert spread(steady) < 0.05 < spread(varied)


def test_shake_valid_convolution_matches_direct_convolution(kodak):
    """Valid mode: no border is invented; each output pixel is the kernel applied to real pixels only."""
    from scipy.signal import convolve2d

    from deblurgan_hf.blur import camera_shake_blur

    x = kodak[:, 100:180, 200:290]
    out, info = camera_shake_blur(x, generator=gen(3), size=(15, 21), valid=True, **SHAKE_CLEAN)
    k = info["kernel"][0].double().numpy()
    ref = np.stack([convolve2d(x[c].double().numpy(), k, mode="valid") for c in range(3)])
    top, left, h, w = info["valid_crop"]
    assert out.shape[-2:] == ref.shape[-2:] == (h, w) and top == left == k.shape[0] // 2
    assert np.abs(out.double().numpy() - np.round(ref * 255) / 255).max() <= 1 / 255 + 1e-6
    assert abs(out.double().numpy() - ref).max() <= 0.5 / 255 + 1e-5  # quantised to 8 bits, nothing else


def test_shake_rotation_varies_the_blur_over_the_frame():
    """A roll about the optical axis smears points near the corners more than at the centre;
    without roll every point gets the same kernel."""
    from deblurgan_hf.blur import camera_shake_blur

    x = torch.zeros(3, 241, 241)
    spots = {"centre": (120, 120), "corner": (15, 15), "other corner": (225, 225)}
    for y, xx in spots.values():
        x[:, y, xx] = 1.0

    def spread(img, at):  # pixels lit around a point: the local kernel's area
        y, xx = at
        return int((img[0, y - 14 : y + 15, xx - 14 : xx + 15] > 1e-3).sum())

    common = dict(size=(9, 9), noise=0.0, jpeg_prob=0.0, linear_prob=0.0)
    still, _ = camera_shake_blur(x, generator=gen(8), rotation_prob=0.0, **common)
    rolled, info = camera_shake_blur(x, generator=gen(8), rotation_prob=1.0, rotation=(2.0, 2.0), **common)
    assert info["rotation"][0] > 0
    assert len({spread(still, at) for at in spots.values()}) == 1
    assert spread(rolled, spots["corner"]) > 1.5 * spread(rolled, spots["centre"])
    assert spread(rolled, spots["other corner"]) > 1.5 * spread(rolled, spots["centre"])


def test_shake_crop_blurred_like_full_frame(kodak):
    """The training pipeline blurs a crop with a margin of context: same pixels as the full frame's blur."""
    synth = BlurSynthesizer("shake", size=(20, 30), rotation_prob=1.0, noise=0.0, jpeg_prob=0.0)
    full = kodak[:, :300, :400]
    blurred_full, _ = synth(full, gen(6))
    m = synth.margin(float(np.hypot(300, 400)))
    top, left, c = 120, 150, 64
    t0, l0 = top - m, left - m
    region = full[:, t0 : top + c + m, l0 : left + c + m]
    centre = torch.tensor([(400 - 1) / 2 - l0, (300 - 1) / 2 - t0])
    crop, _ = synth(region, gen(6), frame_diag=float(np.hypot(300, 400)), center=centre, output_box=(m, m, c, c))
    # the local kernels of a crop sit at other anchors than the full frame's: close, not identical
    assert psnr(crop, blurred_full[:, top : top + c, left : left + c]) > 40


def test_shake_lowlight_streaks_and_noise(kodak):
    from deblurgan_hf.blur import camera_shake_blur

    x = kodak[:, :200, :200].clone()
    x[:, 95:105, 95:105] = 1.0  # a light
    common = dict(size=(25, 25), rotation_prob=0.0, jpeg_prob=0.0, noise=0.0)
    srgb, _ = camera_shake_blur(x, generator=gen(2), linear_prob=0.0, **common)
    lit, _ = camera_shake_blur(x, generator=gen(2), linear_prob=1.0, highlight_prob=1.0, highlight_gain=(8, 8), **common)
    assert (lit >= 0.99).sum() > 3 * (srgb >= 0.99).sum()  # the light smears into a saturated streak
    noisy, info = camera_shake_blur(x, generator=gen(2), linear_prob=0.0, **{**common, "noise": 0.03})
    assert 0.02 < float((noisy - srgb).std()) < 0.04 and info["noise_sigma"][0] == pytest.approx(0.03)


def test_mix_mode_draws_components_by_weight(kodak):
    synth = BlurSynthesizer.from_config({"mode": "mix", "components": [
        {"mode": "shake", "weight": 3}, {"mode": "trajectory", "weight": 1}]})
    g = gen(0)
    modes = [synth.pick(g).mode for _ in range(400)]
    assert 0.68 < modes.count("shake") / 400 < 0.82 and set(modes) == {"shake", "trajectory"}
    with pytest.raises(ValueError, match="components"):
        BlurSynthesizer("mix")
    with pytest.raises(ValueError, match="weight"):
        BlurSynthesizer.from_config({"mode": "mix", "components": [{"mode": "shake", "weight": -1}]})
    with pytest.raises(ValueError, match="unknown shake-blur"):
        BlurSynthesizer("shake", kernel_size=5)


def test_valid_convolution_is_refused_for_datasets():
    from deblurgan_hf.data import build_train_dataset

    with pytest.raises(ValueError, match="valid convolution"):
        build_train_dataset([f"sharp:{DATA / 'sharp' / 'kodak24'}"], crop_size=64, blur={"mode": "shake", "valid": True})
