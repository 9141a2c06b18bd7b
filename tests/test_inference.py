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
