"""The inference path: every input kind, odd and extreme sizes, EXIF, tiling seams, precision."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import gopro_frame, scrambled_
from deblurgan_hf import DeblurGAN
from deblurgan_hf.inference import open_image, tile_starts


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def test_pil_rgb_in_pil_out(small_model, real_crop):
    out = small_model.deblur(Image.fromarray(real_crop))
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == (131, 97)
    assert 15 < psnr(np.asarray(out), real_crop) < 60  # changed, but still the same picture


def test_numpy_kinds_keep_dtype_and_layout(small_model, real_crop):
    ref = small_model.deblur(real_crop)
    assert ref.dtype == np.uint8 and ref.shape == real_crop.shape
    as_float = small_model.deblur(real_crop.astype(np.float32) / 255)
    assert as_float.dtype == np.float32 and np.abs(as_float * 255 - ref).max() <= 1
    as16 = small_model.deblur(real_crop.astype(np.uint16) * 257)
    assert as16.dtype == np.uint16 and np.abs(as16 / 257 - ref).max() <= 1
    gray = real_crop.mean(axis=2).astype(np.uint8)
    assert small_model.deblur(gray).shape == gray.shape
    assert small_model.deblur(gray[..., None]).shape == gray[..., None].shape


def test_rgba_alpha_passes_through(small_model, real_crop):
    alpha = np.tile(np.linspace(0, 255, real_crop.shape[1]).astype(np.uint8), (real_crop.shape[0], 1))
    rgba = np.dstack([real_crop, alpha])
    out = small_model.deblur(rgba)
    assert out.shape == rgba.shape and np.array_equal(out[..., 3], alpha)
    assert np.array_equal(out[..., :3], small_model.deblur(real_crop))
    pil = small_model.deblur(Image.fromarray(rgba, "RGBA"))
    assert pil.mode == "RGBA" and np.array_equal(np.asarray(pil)[..., 3], alpha)


def test_gray_palette_and_16bit_pil(small_model, real_crop):
    rgb = Image.fromarray(real_crop)
    gray = small_model.deblur(rgb.convert("L"))
    assert gray.mode == "L" and gray.size == rgb.size
    palette = small_model.deblur(rgb.convert("P", palette=Image.Palette.ADAPTIVE))
    assert palette.mode == "RGB" and palette.size == rgb.size
    sixteen = np.asarray(rgb.convert("L")).astype(np.uint16) * 257
    buf = io.BytesIO()
    Image.fromarray(sixteen).save(buf, format="PNG")
    out = small_model.deblur(open_image(buf.getvalue()))
    assert out.mode == "I;16" and out.size == rgb.size
    assert np.abs(np.asarray(out).astype(int) // 257 - np.asarray(gray).astype(int)).max() <= 1


def test_torch_kinds(small_model, real_crop):
    x = torch.from_numpy(real_crop).permute(2, 0, 1).float() / 255
    single = small_model.deblur(x)
    assert single.shape == x.shape and single.dtype == torch.float32
    batch = small_model.deblur(torch.stack([x, x.flip(-1)]))
    assert batch.shape == (2, *x.shape)
    torch.testing.assert_close(batch[0], single)
    with pytest.raises(ValueError, match=r"expected float \(3,H,W\)"):
        small_model.deblur(torch.zeros(4, 8, 8))


def test_path_and_exif_orientation(small_model, real_crop, tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: viewers rotate 90 degrees clockwise
    Image.fromarray(real_crop).save(path, exif=exif, quality=95)
    out = small_model.deblur(path)
    assert isinstance(out, Image.Image) and out.size == (97, 131)  # upright, as a viewer shows it
    out_str = small_model.deblur(str(path))
    assert np.array_equal(np.asarray(out), np.asarray(out_str))


def test_unsupported_inputs_say_what_is_allowed(small_model, tmp_path):
    with pytest.raises(ValueError, match="unsupported input type list"):
        small_model.deblur([1, 2, 3])
    with pytest.raises(ValueError, match="dtype int64"):
        small_model.deblur(np.zeros((8, 8, 3), dtype=np.int64))
    with pytest.raises(ValueError, match=r"shape \(8, 8, 5\)"):
        small_model.deblur(np.zeros((8, 8, 5), dtype=np.uint8))
    with pytest.raises(FileNotFoundError, match="missing.png: no such file"):
        small_model.deblur(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="precision='fp16'"):
        small_model.deblur(np.zeros((8, 8, 3), np.uint8), precision="fp16")
    with pytest.raises(ValueError, match="tile=40"):
        small_model.deblur(np.zeros((8, 8, 3), np.uint8), tile=40)


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty"), (b"this is not an image", "not an image"), (None, "truncated")],
)
def test_open_image_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.png"
    if content is None:
        buf = io.BytesIO()
        gopro_frame(0).crop((0, 0, 200, 200)).save(buf, format="PNG")
        content = buf.getvalue()[: len(buf.getvalue()) // 2]
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"bad.png: .*{message}"):
        open_image(path)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("L", (400, 300)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # PIL errors at twice the limit
    with pytest.raises(ValueError, match="bomb.png: too many pixels"):
        open_image(path)


def test_one_pixel_image(small_model):
    pixel = np.array([[[200, 30, 90]]], dtype=np.uint8)
    out = small_model.deblur(pixel)
    assert out.shape == (1, 1, 3) and out.dtype == np.uint8


def test_tile_starts_cover_everything():
    for length in (100, 512, 513, 1000, 4000):
        starts = tile_starts(length, 256, 32)
        assert starts[0] == 0 and starts[-1] + min(256, length) == length
        assert all(b - a <= 256 - 32 for a, b in zip(starts, starts[1:]))


def test_tiled_output_has_no_visible_seams():
    """Tiled vs whole-image output of the default NAFNet on a real 1-megapixel photo: >= 45 dB apart."""
    torch.manual_seed(0)
    model = scrambled_(DeblurGAN()).eval()
    image = gopro_frame(1).resize((1334, 750))  # 1.0 MP
    whole = np.asarray(model.deblur(image, tile=0))
    assert psnr(whole, np.asarray(image)) < 40  # the net really changes the image
    calls = []
    tiled = np.asarray(model.deblur(image, tile=512, overlap=32, progress=lambda done, total: calls.append((done, total))))
    assert calls[-1] == (len(calls), len(calls)) and len(calls) == 6
    assert psnr(tiled, whole) >= 45


def test_bf16_is_close_to_fp32(small_model, real_crop):
    fp32 = small_model.deblur(real_crop, precision="fp32")
    bf16 = small_model.deblur(real_crop, precision="bf16")
    assert psnr(bf16, fp32) > 35


@pytest.mark.slow
def test_twelve_megapixel_image_is_tiled(small_model):
    big = np.asarray(gopro_frame(2).resize((4000, 3000)))
    calls = []
    out = small_model.deblur(big, tile=1024, progress=lambda d, t: calls.append(t))
    assert out.shape == big.shape and calls[-1] == 12  # 3 rows x 4 columns of 1024 px tiles
    # Tiles of a 12 MP image agree with a whole-image run of the same crop region.
    crop = big[1000:1600, 1500:2400]
    assert psnr(out[1000:1600, 1500:2400][100:-100, 100:-100], small_model.deblur(crop)[100:-100, 100:-100]) > 40


def test_auto_precision_is_bf16_only_where_measured_safe(small_model):
    from deblurgan_hf.inference import cpu_has_native_bf16, resolve_precision

    expected = "bf16" if cpu_has_native_bf16() else "fp32"
    assert resolve_precision("auto", small_model) == expected  # NAFNet: measured within 0.05 dB
    resnet = DeblurGAN("resnet", {"width": 8, "n_blocks": 1})
    assert resolve_precision("auto", resnet) == "fp32"  # not measured: stays exact
    assert resolve_precision("fp32", small_model) == "fp32"


def test_deblur_leaves_the_callers_model_as_it_found_it(real_crop):
    """deblur(precision="bf16") used to convert the caller's model to channels_last and leave it in
    eval mode; on AVX2 CPUs fp32 channels_last convs then differed in the last bit from contiguous
    ones, so bit-exact comparisons that ran after it failed (issue 12)."""
    torch.manual_seed(0)
    model = scrambled_(DeblurGAN("nafnet", {"width": 8, "enc_blocks": [1], "dec_blocks": [1], "middle_blocks": 1}))
    model.train()
    model.generator.encoders.eval()  # partly frozen: each module's own flag must come back
    modes = {name: m.training for name, m in model.named_modules()}
    x = torch.from_numpy(real_crop).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        before = model(x)
    for precision in ("bf16", "fp32", "auto"):
        model.deblur(real_crop, precision=precision)
        assert all(p.is_contiguous() for p in model.parameters()), precision
        assert {name: m.training for name, m in model.named_modules()} == modes, precision
        assert {p.device.type for p in model.parameters()} == {"cpu"}
    with torch.inference_mode():
        assert torch.equal(model(x), before)


def test_deblur_restores_modes_when_the_model_raises(real_crop):
    model = DeblurGAN("nafnet", {"width": 8, "enc_blocks": [1], "dec_blocks": [1], "middle_blocks": 1}).train()

    def out_of_memory(_module, _args):
        raise RuntimeError("can't allocate memory")

    model.generator.register_forward_pre_hook(out_of_memory)
    with pytest.raises(RuntimeError, match="allocate"):
        model.deblur(real_crop)
    assert all(m.training for m in model.modules())


def test_tensor_output_keeps_its_dtype_and_device(small_model, real_crop):
    x = torch.from_numpy(real_crop).permute(2, 0, 1).float() / 255
    ref = small_model.deblur(x)
    for dtype in (torch.float64, torch.bfloat16, torch.float16):
        out = small_model.deblur(x.to(dtype))
        assert out.dtype == dtype and out.device == x.device and out.shape == x.shape
        assert (out.float() - ref).abs().max() < 0.02


# The two flag sets of this workplace's CPUs (from /proc/cpuinfo, trimmed).
AVX2_FLAGS = "flags : fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi1 bmi2"
AVX512_BF16_FLAGS = AVX2_FLAGS + " avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bf16"


def test_auto_precision_follows_the_cpu_flags(small_model, monkeypatch):
    """On AVX2 bf16 is emulated and slower than fp32, so "auto" must stay fp32 there."""
    from deblurgan_hf import inference

    assert inference.cpuinfo_has_native_bf16(AVX512_BF16_FLAGS)
    assert inference.cpuinfo_has_native_bf16(AVX2_FLAGS + " amx_bf16 amx_tile")
    assert not inference.cpuinfo_has_native_bf16(AVX2_FLAGS)
    assert not inference.cpuinfo_has_native_bf16(AVX2_FLAGS + " avx512f avx512bw")  # AVX-512 without bf16
    for flags, expected in ((AVX2_FLAGS, "fp32"), (AVX512_BF16_FLAGS, "bf16")):
        monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda f=flags: inference.cpuinfo_has_native_bf16(f))
        assert inference.resolve_precision("auto", small_model) == expected
        assert inference.resolve_precision("auto", DeblurGAN("resnet", {"width": 8, "n_blocks": 1})) == "fp32"
        assert inference.resolve_precision("bf16", small_model) == "bf16"  # asked for: given, if slow


def test_fp16_is_refused_on_the_cpu_with_the_alternatives(small_model):
    with pytest.raises(ValueError, match="precision='fp16': for CUDA and MPS devices only.*fp32 or bf16"):
        small_model.deblur(np.zeros((8, 8, 3), np.uint8), precision="fp16")


def _accelerators() -> list:
    return [
        pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")),
        pytest.param("mps", marks=pytest.mark.skipif(not torch.backends.mps.is_available(), reason="no MPS device")),
    ]


@pytest.mark.parametrize("device", _accelerators())
def test_deblur_runs_on_the_models_device(small_model, real_crop, device):
    """model.to(device) then deblur: the forward sees device tensors, results come back as given."""
    import copy

    model = copy.deepcopy(small_model).to(device)
    seen = []
    model.generator.register_forward_pre_hook(lambda _m, args: seen.append(args[0].device.type))
    pil = model.deblur(Image.fromarray(real_crop), precision="fp32")
    assert isinstance(pil, Image.Image) and seen == [device]
    assert psnr(np.asarray(pil), np.asarray(small_model.deblur(real_crop, precision="fp32"))) > 45
    x = torch.from_numpy(real_crop).permute(2, 0, 1).float() / 255
    assert model.deblur(x).device.type == "cpu"  # a CPU tensor comes back on the CPU
    assert model.deblur(x.to(device)).device.type == device
    tiled = model.deblur(real_crop, tile=64, overlap=16, precision="auto")  # tiles cut and blended there
    assert tiled.shape == real_crop.shape and set(seen) == {device}
    assert {p.device.type for p in model.parameters()} == {device}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_auto_precision_on_cuda(small_model):
    from deblurgan_hf.inference import resolve_precision

    expected = "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp32"
    assert resolve_precision("auto", small_model, "cuda") == expected
    assert resolve_precision("fp16", small_model, "cuda") == "fp16"


@pytest.mark.slow
def test_compile_matches_eager_and_follows_weight_updates(real_crop, tmp_path, monkeypatch):
    """deblur(compile=True): same output as eager (to a level), the cache where asked, and weights that
    change after the compile are used (they are graph inputs, not constants)."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    torch.manual_seed(0)
    model = scrambled_(DeblurGAN("nafnet", {"width": 8, "enc_blocks": [1], "dec_blocks": [1], "middle_blocks": 1})).eval()
    eager = model.deblur(real_crop, precision="fp32").astype(int)
    assert np.abs(model.deblur(real_crop, precision="fp32", compile=True) - eager).max() <= 1
    with torch.no_grad():  # e.g. a training step after the compile
        model.generator.out_conv.bias.add_(0.05)
        model.generator.encoders[0][0].conv1.weight.mul_(1.5)
    eager_after = model.deblur(real_crop, precision="fp32").astype(int)
    assert not np.array_equal(eager_after, eager)
    assert np.abs(model.deblur(real_crop, precision="fp32", compile=True) - eager_after).max() <= 1
    assert any((tmp_path / "inductor").iterdir())
