"""The blind-deconvolution stage: kernel estimation and deconvolution on real photos with camera-shake
kernels of the benchmark, the choice between it and the generator, and its config checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import DATA
from deblurgan_hf import DEFAULT_MODEL, PRETRAINED_DIR, DeblurGAN
from deblurgan_hf.deconvolution import (
    BlindDeconvolution,
    _extent,
    clipped_regions,
    deconvolve,
    estimate_kernel,
    kernel_agreement,
    low_frequency_change,
    noise_level,
    prefers_deconvolution,
    reblur_residual,
)
from deblurgan_hf.evaluation import PairSource
from deblurgan_hf.metrics import psnr_images

KODAK = f"sharp:{DATA / 'sharp' / 'kodak24'}"


def shake_pair(size: tuple[int, int], index: int):
    """Photo `index` of Kodak24 with the camera-shake benchmark's blur of that size bin (true kernel kept)."""
    pairs = list(PairSource(KODAK, limit=index + 1, blur="shake", shake_size=size))
    return pairs[index]


def chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255


def uint8(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return psnr_images([a], [b])[0]


def centred_on(kernel: np.ndarray, size: int) -> torch.Tensor:
    out = np.zeros((size, size))
    o = (size - kernel.shape[0]) // 2
    out[o : o + kernel.shape[0], o : o + kernel.shape[1]] = kernel
    return torch.from_numpy(out).float()


def test_deconvolution_with_the_true_kernel_sharpens_a_real_photo():
    pair = shake_pair((15, 31), 1)
    out = uint8(deconvolve(chw(pair.blurred), torch.from_numpy(pair.kernel).float()))
    assert out.shape == pair.sharp.shape  # valid blur: output and target are the blurred image's size
    assert psnr(out, pair.sharp) > psnr(pair.blurred, pair.sharp) + 2.0


@pytest.mark.slow
def test_the_estimated_kernel_is_the_true_one_and_deconvolves_nearly_as_well():
    """Blind: only the blurred photo goes in; the estimate matches the kernel the benchmark drew."""
    pair = shake_pair((15, 31), 2)
    blurred = chw(pair.blurred)
    estimate = estimate_kernel(blurred.mean(0), 45)
    truth = centred_on(pair.kernel, 45)
    similarity = float((estimate * truth).sum() / (estimate.norm() * truth.norm()))
    assert similarity > 0.5, similarity
    with_estimate = psnr(uint8(deconvolve(blurred, estimate)), pair.sharp)
    with_truth = psnr(uint8(deconvolve(blurred, truth)), pair.sharp)
    assert with_estimate > psnr(pair.blurred, pair.sharp) + 2.0
    assert with_estimate > with_truth - 1.5


def test_refining_the_true_kernel_keeps_it_and_a_wrong_start_moves():
    """`initial`: alternations at full resolution only, from the given kernel. From the true kernel of a
    real photo they stay near it, and it still deconvolves the photo; from the same path turned a
    quarter, they leave that start."""
    pair = shake_pair((15, 31), 1)
    gray, truth = chw(pair.blurred).mean(0), centred_on(pair.kernel, 41)
    kept = estimate_kernel(gray, 41, iterations=4, initial=truth)
    assert kept.shape == (41, 41) and kept.sum() == pytest.approx(1.0) and kept.min() >= 0
    assert kernel_agreement(kept, truth) > 0.8
    assert psnr(uint8(deconvolve(chw(pair.blurred), kept)), pair.sharp) > psnr(pair.blurred, pair.sharp) + 2.0
    turned = truth.T.flip(0)
    # 4 alternations, not 2: after 2 the turned start's agreement with itself (0.82) sat 0.02 under the
    # bound below, a margin one CPU's rounding could cross; after 4 it is 0.69, 0.12 under
    moved = estimate_kernel(gray, 41, iterations=4, initial=turned)
    assert kernel_agreement(moved, turned) < kernel_agreement(kept, truth) - 0.1
    with pytest.raises(ValueError, match=r"initial must be an odd square kernel of at most 41 px, got \(43, 43\)"):
        estimate_kernel(gray, 41, initial=centred_on(pair.kernel, 43))


@pytest.mark.slow
def test_the_long_kernel_weight_floor_acts_on_long_kernels_only():
    """`long_kernel_weight_floor` changes the estimates of a 31-75 px shake and leaves a 7-15 px one's
    (a single estimate at the photo's scale) as it was."""
    default, lower = BlindDeconvolution(), BlindDeconvolution(long_kernel_weight_floor=1e-4)
    long = chw(shake_pair((31, 75), 0).blurred)
    assert not default.estimate(long).kernel.equal(lower.estimate(long).kernel)
    short = chw(shake_pair((7, 15), 0).blurred)
    assert default.estimate(short).kernel.equal(lower.estimate(short).kernel)


def test_a_wrong_kernel_changes_the_low_frequencies_more_and_the_right_one_passes_the_check():
    pair = shake_pair((15, 31), 1)
    blurred, truth = chw(pair.blurred), torch.from_numpy(pair.kernel).float()
    wrong = truth.T.flip(0).contiguous()  # the path turned by 90 degrees: a plausible but wrong kernel
    scale = 2 * truth.shape[-1]
    right_change = low_frequency_change(blurred, deconvolve(blurred, truth), scale)
    wrong_change = low_frequency_change(blurred, deconvolve(blurred, wrong), scale)
    assert right_change < wrong_change
    assert right_change < BlindDeconvolution().max_low_frequency_change


def test_config_is_checked_field_by_field(tmp_path):
    with pytest.raises(ValueError, match=r"deconvolution.max_kernel must be in \[3, 101\]"):
        BlindDeconvolution.from_config({"max_kernel": 10**6})
    with pytest.raises(ValueError, match=r"deconvolution.threshold must be a number, got 'x'"):
        BlindDeconvolution.from_config({"threshold": "x"})
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['kernel'\]"):
        BlindDeconvolution.from_config({"kernel": 3})
    with pytest.raises(ValueError, match="must be a JSON object"):
        BlindDeconvolution.from_config([1])
    with pytest.raises(ValueError, match=r"deconvolution.choose_by_residual must be true or false, got 1"):
        BlindDeconvolution.from_config({"choose_by_residual": 1})
    # the same check on loading, naming the file
    folder = tmp_path / "model"
    DeblurGAN.from_pretrained(DEFAULT_MODEL).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "deconvolution": {"estimate_pixels": float("nan")}}))
    with pytest.raises(ValueError, match=r"model/config.json: deconvolution.estimate_pixels must be an integer"):
        DeblurGAN.from_pretrained(folder)


def test_the_stage_is_saved_loaded_and_can_be_switched_off(tmp_path):
    model = DeblurGAN.from_pretrained(PRETRAINED_DIR / "nafnet-motion-s")  # a generator with no stage
    assert model.deconvolution is None
    staged = DeblurGAN(model.generator_name, model.generator_kwargs, deconvolution={"max_kernel": 31})
    staged.generator.load_state_dict(model.generator.state_dict())
    staged.save_pretrained(tmp_path / "staged")
    loaded = DeblurGAN.from_pretrained(tmp_path / "staged")
    assert loaded.deconvolution == BlindDeconvolution(max_kernel=31)
    assert loaded.for_inference().deconvolution == loaded.deconvolution
    pair = shake_pair((7, 15), 1)
    generator_only = np.asarray(loaded.deblur(pair.blurred, deconvolve=False))
    assert np.array_equal(generator_only, np.asarray(model.deblur(pair.blurred)))
    staged_out = np.asarray(loaded.deblur(pair.blurred))
    assert staged_out.shape == pair.blurred.shape
    assert psnr(staged_out, pair.sharp) > psnr(generator_only, pair.sharp)


def test_the_prior_grows_with_the_kernel_past_prior_from_and_with_noise():
    stage = BlindDeconvolution(prior_weight=5e-4, prior_from=15, prior_noise_power=1.5)
    assert stage.prior_for(9, 0.006) == stage.prior_for(15, 0.003) == 5e-4  # short kernel, at most 1% noise
    assert stage.prior_for(45, 0.006) == pytest.approx(3 * 5e-4)
    assert stage.prior_for(15, 4 * 0.006) == pytest.approx(8 * 5e-4)


def test_the_default_prior_deconvolves_short_kernels_better_than_the_previous_rule():
    """With the true kernel, so the estimate's luck plays no part: the previous rule's weight (1e-3 up to
    30 px) smoothed 7-15 px kernels' deconvolutions more than their 1% noise needs."""
    stage, previous = BlindDeconvolution(), BlindDeconvolution(prior_weight=1e-3, prior_from=30, prior_noise_power=1.0)
    gains = []
    for index in range(2):
        pair = shake_pair((7, 15), index)
        x, kernel = chw(pair.blurred), torch.from_numpy(pair.kernel).float()
        extent, noise = _extent(kernel), noise_level(x.mean(0))
        new, old = (psnr(uint8(deconvolve(x, kernel, prior_weight=s.prior_for(extent, noise))), pair.sharp)
                    for s in (stage, previous))
        gains.append(new - old)
    assert min(gains) > 0, gains


def test_noise_level_reads_the_noise_of_a_blurred_real_photo():
    pair = shake_pair((15, 31), 1)  # 1% Gaussian noise in each channel, after the blur
    red = chw(pair.blurred)[0]
    assert 0.008 < noise_level(red) < 0.013
    noisier = (red + 0.03 * torch.randn(red.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert 0.025 < noise_level(noisier) < 0.036


def test_images_too_small_for_a_kernel_keep_the_generator_output():
    stage = BlindDeconvolution()
    for size in ((1, 1), (20, 300)):
        blurred, restored = torch.rand(3, *size), torch.rand(3, *size)
        assert stage(blurred, restored) is restored


def test_deblur_keeps_whichever_output_changed_the_photo_more():
    pair = shake_pair((15, 31), 0)
    x = chw(pair.blurred)
    sharpened = deconvolve(x, torch.from_numpy(pair.kernel).float())
    gently = (x + 0.5 * (sharpened - x)).clamp(0, 1)  # half way: changed the photo less
    assert prefers_deconvolution(x, sharpened, gently)
    assert not prefers_deconvolution(x, gently, sharpened)
    assert not prefers_deconvolution(x, None, x)  # the stage declined: the generator's, even unchanged


@pytest.mark.slow
def test_a_kernel_longer_than_the_support_is_estimated_again_at_a_smaller_scale():
    """A 57 px straight shake (longer than the 45 px support) on a real photo: the stage's second
    estimate, on a 0.45x copy, is longer than the support; without it the estimate is cut at 45 px.
    It overshoots this straight kernel (97 px on the machine that wrote this test), as did the 0.6x copy
    it replaced (74 px, its support's limit): it gains on the benchmark's curved kernels (see the
    card), not on this straight one."""
    from scipy.signal import fftconvolve

    from deblurgan_hf.deconvolution import _extent

    sharp = next(iter(PairSource(KODAK, limit=1, blur="none"))).sharp.astype(np.float64) / 255
    t = np.linspace(-30, 30, 400)
    kernel = np.zeros((61, 61))
    np.add.at(kernel, (np.round(30 + t * np.sin(0.35)).astype(int), np.round(30 + t * np.cos(0.35)).astype(int)), 1)
    kernel /= kernel.sum()
    blurred = np.stack([fftconvolve(sharp[..., c], kernel, mode="valid") for c in range(3)], -1)
    blurred = np.clip(blurred + np.random.default_rng(0).normal(0, 0.01, blurred.shape), 0, 1)
    x = torch.from_numpy(blurred).permute(2, 0, 1).float()
    once = BlindDeconvolution(long_kernel_scale=1.0).estimate(x).kernel
    again = BlindDeconvolution().estimate(x).kernel
    assert _extent(once) <= 45 < 55 <= _extent(again), (_extent(once), _extent(again))


def test_a_kernel_estimated_on_a_smaller_copy_is_magnified_to_its_true_length():
    """A 61 px shake path seen on a copy 0.38-0.53 times smaller (each axis its own scale, as rounding
    gives) comes back 61 px long along either axis (its standard deviation within 0.5%), not stretched
    by an odd-size resize (1-2.5% too long)."""
    from deblurgan_hf.deconvolution import _magnified_kernel

    def spread(kernel: torch.Tensor, axis: int) -> float:
        profile = kernel.double().sum(axis)
        offsets = torch.arange(profile.numel(), dtype=torch.float64) - profile.numel() // 2
        return float(((profile * offsets**2).sum() / profile.sum()).sqrt())

    line = torch.zeros(81, 81)
    line[40, 10:71] = 1 / 61
    for rows, cols in [(31, 33), (37, 35), (43, 43)]:  # the copy's size of the 81 x 81 kernel window
        for kernel, axis in [(line, 0), (line.T, 1)]:
            small = torch.nn.functional.interpolate(kernel[None, None], size=(rows, cols), mode="bilinear",
                                                    antialias=True, align_corners=False)[0, 0]
            side = max(rows, cols)  # the estimate is square: pad the shorter axis on both sides
            small = torch.nn.functional.pad(small, ((side - cols) // 2,) * 2 + ((side - rows) // 2,) * 2)
            magnified = _magnified_kernel(small / small.sum(), rows / 81, cols / 81)
            assert magnified.sum() == pytest.approx(1.0) and magnified.min() >= 0
            assert spread(magnified, axis) == pytest.approx(spread(kernel, axis), rel=0.005), (rows, cols, axis)


def test_kernel_agreement_tells_the_same_kernel_from_another():
    """1 for a kernel and itself shifted by a few pixels (estimates are re-centred, not aligned to the
    pixel), low for a shake path of another direction."""
    line = torch.zeros(31, 31)
    line[15, 5:26] = 1
    line /= line.sum()
    assert kernel_agreement(line, line) == pytest.approx(1.0, abs=1e-6)
    assert kernel_agreement(line, torch.roll(line, 3, dims=1)) == pytest.approx(1.0, abs=1e-6)
    assert kernel_agreement(line, torch.roll(line, 9, dims=1)) < 1.0  # beyond the shifts it tries
    assert kernel_agreement(line, line.T) < 0.3
    wider = torch.zeros(41, 41)
    wider[20, 10:31] = 1 / 21
    assert kernel_agreement(line, wider) == pytest.approx(1.0, abs=1e-6)  # sizes are padded to match


@pytest.mark.slow
def test_a_long_kernel_estimate_is_checked_at_neighbouring_scales():
    """On a real photo with 31-75 px camera shake the long-kernel estimate is repeated on a smaller and a
    larger copy: their agreement is reported, and below `min_agreement` the stage declines. Off (None)
    with `agreement_scale` 1 and for a kernel too short for the long-kernel estimate; on by default."""
    x = chw(shake_pair((31, 75), 0).blurred)
    checked = BlindDeconvolution().estimate(x)
    assert _extent(checked.kernel) * checked.scale >= 30 and 0 < checked.agreement <= 1
    plain = BlindDeconvolution(agreement_scale=1.0).estimate(x)
    assert checked.kernel.equal(plain.kernel) and plain.agreement is None  # the check leaves the estimate alone
    out, info = BlindDeconvolution(agreement_scale=1.2, min_agreement=1.0).restore(x, checked)
    assert out is None and info["declined"] == "estimate unstable across scales"
    out, info = BlindDeconvolution(agreement_scale=1.2, min_agreement=0.0).restore(x, checked)
    assert "declined" not in info or info["declined"] != "estimate unstable across scales"
    short = BlindDeconvolution().estimate(chw(shake_pair((7, 15), 0).blurred))
    assert short.agreement is None and short.neighbours == ()


def test_reblur_residual_is_least_for_the_kernel_that_blurred_the_photo():
    """A real photo blurred by a shake kernel (true convolution) is explained by that kernel, not by the
    same kernel turned, nor by none."""
    pair = shake_pair((15, 31), 1)
    sharp, kernel = chw(pair.sharp), torch.from_numpy(pair.kernel).float()
    pad = kernel.shape[-1] // 2
    blurred = torch.nn.functional.conv2d(sharp[:, None], kernel.flip(-2, -1)[None, None], padding=pad)[:, 0]
    dot = torch.zeros_like(kernel)
    dot[pad, pad] = 1
    right = reblur_residual(blurred, sharp, kernel)
    assert right < 1e-10
    assert reblur_residual(blurred, sharp, kernel.T.contiguous()) > 1e-5 < reblur_residual(blurred, sharp, dot)


def test_reblur_residual_leaves_out_what_the_camera_clipped():
    """Near a saturated light the recorded photo is the clipped blur of more light than any result in
    [0, 1] holds: the right kernel leaves a residual there unless the clipped pixels are left out."""
    pair = shake_pair((15, 31), 1)
    sharp, kernel = chw(pair.sharp), torch.from_numpy(pair.kernel).float()
    pad = kernel.shape[-1] // 2
    scene = sharp.clone()
    scene[:, 100:106, 100:110] = 4.0  # a light four times brighter than the sensor records
    blurred = torch.nn.functional.conv2d(scene[:, None], kernel.flip(-2, -1)[None, None], padding=pad)[:, 0].clamp(0, 1)
    clipped = clipped_regions(blurred, 0.98)
    assert clipped.any()
    assert reblur_residual(blurred, sharp, kernel) > 1e-5
    assert reblur_residual(blurred, sharp, kernel, clipped=clipped) < 1e-10


@pytest.mark.slow
def test_choosing_by_residual_keeps_the_estimate_that_best_explains_the_photo():
    """With `choose_by_residual` the long kernel's three estimates (two smaller and larger copies) are
    deconvolution candidates where they agree with another: the result kept is the one whose reblurred
    photo is closest to the input; where none agree, the stage declines."""
    x = chw(shake_pair((31, 75), 0).blurred)
    stage = BlindDeconvolution(choose_by_residual=True, min_agreement=0.0, max_low_frequency_change=1.0)
    estimate = stage.estimate(x)
    trio = (estimate.kernel, *estimate.neighbours)
    assert len(trio) == 3
    out, info = stage.restore(x, estimate)
    alone = BlindDeconvolution(agreement_scale=1.0, max_low_frequency_change=1.0)
    singles = [alone.restore(x, estimate._replace(kernel=k, agreement=None, neighbours=()))[0] for k in trio]
    margin = 2 * (max(k.shape[-1] for k in trio) // 2)  # all three judged on the same pixels
    residuals = [reblur_residual(x, singles[i], trio[i], margin) for i in range(3)]
    chosen, worst = min(range(3), key=residuals.__getitem__), max(range(3), key=residuals.__getitem__)
    assert info["kernel"] is trio[chosen] and out.equal(singles[chosen])
    # with the worst-explaining estimate in the middle (whichever it is on this CPU), the choice still
    # finds the best, and the noise gate keeps the middle one: the photo's 1% noise is not under 0
    assert chosen != worst
    worst_middle = estimate._replace(kernel=trio[worst], neighbours=tuple(k for i, k in enumerate(trio) if i != worst))
    assert stage.restore(x, worst_middle)[1]["kernel"] is trio[chosen]
    gated = BlindDeconvolution(choose_by_residual=True, residual_noise_below=0.0, min_agreement=0.0,
                               max_low_frequency_change=1.0)
    assert gated.restore(x, worst_middle)[1]["kernel"] is trio[worst]
    out, info = BlindDeconvolution(choose_by_residual=True, min_agreement=1.0).restore(x, estimate)
    assert out is None and info["declined"] == "estimate unstable across scales"


def test_edge_selection_keeps_enough_of_the_strongest_edges_in_every_direction():
    """The kernel is fitted on the strongest gradients of a real photo, but on enough of them in each of
    four directions that no direction of the shake path goes unconstrained."""
    import math

    from deblurgan_hf.deconvolution import _edge_threshold, _gradients

    gx, gy = _gradients(chw(shake_pair((15, 31), 1).sharp).mean(0))
    mask = torch.ones_like(gx)
    mask[:8] = 0  # pixels outside the mask (the padding) are not counted
    keep = 500
    threshold = _edge_threshold(gx, gy, mask, keep)
    strong = ((gx**2 + gy**2 >= threshold) & (mask > 0)).flatten()
    bins = (torch.atan2(gy, gx).remainder(math.pi) / (math.pi / 4)).long().clamp(max=3).flatten()
    counts = [int((strong & (bins == b)).sum()) for b in range(4)]
    assert min(counts) >= keep, counts
    assert strong.sum() < 0.5 * mask.sum()  # a selection, not every gradient
    assert _edge_threshold(gx, gy, mask, 4 * keep) < threshold  # more edges asked for: a lower bar


def lights_pair(size: tuple[int, int], index: int, noise: float = 0.01):
    """Kodak24 photo `index` with six small lights four times brighter than white, blurred by the
    benchmark's kernel of that bin (valid convolution), `noise` (Gaussian, each channel), clipped to
    [0, 1] as a camera does:
    (blurred (3, H, W), true kernel, target: the matching crop of the photo, lights at white)."""
    from scipy.signal import fftconvolve

    kernel = shake_pair(size, index).kernel
    sharp = list(PairSource(KODAK, limit=index + 1, blur="none"))[index].sharp.astype(np.float64) / 255
    h, w = sharp.shape[:2]
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:h, :w]
    radiance = sharp.copy()
    for cy, cx in rng.uniform((0.2 * h, 0.2 * w), (0.8 * h, 0.8 * w), (6, 2)):
        radiance[(yy - cy) ** 2 + (xx - cx) ** 2 < 36] = 4.0
    blurred = np.stack([fftconvolve(radiance[..., c], kernel, mode="valid") for c in range(3)], -1)
    blurred = np.clip(blurred + rng.normal(0, noise, blurred.shape), 0, 1)
    kh, kw = kernel.shape
    target = np.clip(radiance, 0, 1)[kh // 2 : kh // 2 + blurred.shape[0], kw // 2 : kw // 2 + blurred.shape[1]]
    return (torch.from_numpy(blurred).permute(2, 0, 1).float(), torch.from_numpy(kernel).float(),
            (target * 255).round().astype(np.uint8))


def test_clipped_lights_are_re_estimated_in_the_deconvolution():
    """Given the true kernel: a clipped light's edge rings across the photo when its recorded value is
    taken as exact, less when it is taken as at least that (0.25-0.5 dB on these two photos)."""
    stage = BlindDeconvolution(clipped_level=0.98)
    for index in (1, 2):
        x, kernel, target = lights_pair((15, 31), index)
        weight = stage.prior_for(_extent(kernel), noise_level(x.mean(0)))
        aware = psnr(uint8(deconvolve(x, kernel, prior_weight=weight, clipped_level=stage.clipped_level)), target)
        plain = psnr(uint8(deconvolve(x, kernel, prior_weight=weight)), target)
        assert aware > plain + 0.1, (index, aware, plain)


def test_clipped_regions_are_saturated_areas_not_lone_bright_pixels():
    x, _, _ = lights_pair((15, 31), 1)
    lights = clipped_regions(x, 0.98)
    assert 0 < lights.float().mean() < 0.05  # the lights' blurred streaks, not the photo
    dark = x * 0.5
    dark[:, 100, 100] = 1.0  # one pixel that noise lifted to white
    assert not clipped_regions(dark, 0.98).any()
    assert clipped_regions(x, 2.0).sum() == 0  # over 1: switched off


def test_clipped_lights_are_set_apart_in_noisy_photos_only():
    """Dim light (2.5% noise) gets the clipped-light handling; the same photo at daylight's 1% noise
    does not (there a clipped area is more often a bright surface whose edges the kernel fit needs)."""
    stage = BlindDeconvolution()
    daylight, _, _ = lights_pair((15, 31), 1)
    dim, _, _ = lights_pair((15, 31), 1, noise=0.025)
    assert stage.clipped_level_for(daylight) is None and stage._clipped(daylight) is None
    assert stage.clipped_level_for(dim) == stage.clipped_level
    assert stage._clipped(dim).equal(clipped_regions(dim, stage.clipped_level))
    assert BlindDeconvolution(clipped_noise_from=0.0).clipped_level_for(daylight) == stage.clipped_level
    assert BlindDeconvolution(clipped_level=2.0).clipped_level_for(dim) is None  # over 1: off everywhere


def test_the_low_frequency_check_leaves_out_blocks_with_clipped_lights():
    """The true kernel restores light that clipping took away around the lights: over the whole photo
    the low frequencies moved, away from the lights they did not."""
    stage = BlindDeconvolution(clipped_level=0.98)
    x, kernel, _ = lights_pair((15, 31), 1)
    out = deconvolve(x, kernel, prior_weight=stage.prior_weight, clipped_level=stage.clipped_level)
    scale = 2 * kernel.shape[-1]
    everywhere = low_frequency_change(x, out, scale)
    away = low_frequency_change(x, out, scale, clipped_regions(x, stage.clipped_level))
    assert away < everywhere
    assert away < stage.max_low_frequency_change


def test_a_kernel_scattered_into_many_pieces_keeps_its_heaviest():
    """Twelve equal pieces each hold under 10% of the mass; dropping them all left a kernel of zeros
    (0 / 0 downstream: a crash on a low-light photo of the camera-shake benchmark)."""
    from deblurgan_hf.deconvolution import _clean_kernel

    kernel = torch.zeros(45, 45)
    kernel[0::4, 5] = 1.0
    kernel[8, 5] = 1.1  # the heaviest, 9% of the mass
    cleaned = _clean_kernel(kernel, 0.1)
    assert torch.isfinite(cleaned).all() and cleaned.sum() == pytest.approx(1.0)
    assert cleaned[8, 5] == 1.0
