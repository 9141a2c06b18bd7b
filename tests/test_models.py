"""Generators and critic: shapes at any size, gradients, residual skip, parameter counts, errors, bf16."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import gopro_frame
from deblurgan_hf.models import GENERATORS, build_critic, build_generator
from deblurgan_hf.models.layers import LayerNorm2d, crop_to, pad_to_multiple

# Small configurations of every generator, so forward + backward stay fast on 2 cores.
SMALL_GENERATORS = {
    "resnet": dict(width=8, n_blocks=2),
    "resnet-resize": dict(width=8, n_blocks=2, upsample="resize", resize_mode="nearest"),
    "unet": dict(width=8, depth=2, blocks_per_level=1, middle_blocks=1),
    "multiscale": dict(width=8, n_blocks=1),
    "nafnet": dict(width=8, enc_blocks=[1, 1], middle_blocks=1, dec_blocks=[1, 1]),
    "nafnet-unshuffle": dict(width=8, enc_blocks=[1, 1], middle_blocks=1, dec_blocks=[1, 1], pixel_unshuffle=2),
}
SMALL_CRITICS = {
    "patch": dict(width=8),
    "patch-batch-2layers": dict(width=8, n_layers=2, norm_layer="batch"),
    "double": dict(width=8, double_scale=True),
    "double-scalar-nonorm": dict(width=8, double_scale=True, scalar_head=True, norm_layer="none"),
}


def _tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return np.asarray(gopro_frame(0))


def _make(key: str) -> nn.Module:
    torch.manual_seed(0)
    return build_generator(key.split("-")[0], **SMALL_GENERATORS[key])


def _first_conv(model: nn.Module) -> nn.Module:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


def _final(out):
    return out[-1] if isinstance(out, list) else out


@pytest.mark.parametrize("size", [(97, 131), (3, 5), (1, 1)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("key", list(SMALL_GENERATORS))
def test_generator_forward_backward(key, size, frame):
    g = _make(key).train()
    x = _tensor(frame[340 : 340 + size[0], 560 : 560 + size[1]]).requires_grad_(True)  # mid-tones: no clamping
    out = g(x)
    y = _final(out)
    assert y.shape == x.shape
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    # Only the final output is used, so for multiscale the gradient must flow through the
    # coarse levels' outputs to reach the coarsest level's first conv.
    (y - x.detach()).square().mean().backward()
    first = _first_conv(g)
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_every_registered_generator_is_covered():
    assert {k.split("-")[0] for k in SMALL_GENERATORS} == set(GENERATORS) == {"resnet", "unet", "multiscale", "nafnet"}


def test_multiscale_returns_coarse_to_fine_levels(real_crop):
    g = _make("multiscale").eval()
    x = _tensor(real_crop)  # 97x131
    outs = g(x)
    assert [o.shape[-2:] for o in outs] == [(25, 33), (49, 66), (97, 131)]
    assert [p.shape for p in g.pyramid(x)] == [o.shape for o in outs]
    assert torch.equal(g.pyramid(x)[-1], x)


@pytest.mark.parametrize("key", list(SMALL_GENERATORS))
def test_zeroed_last_layer_returns_input(key, real_crop):
    """The global skip: with the last conv zeroed the residual is 0 and the output is the input."""
    g = _make(key).eval()
    with torch.no_grad():
        for m in g.modules():
            if hasattr(m, "out_conv"):
                m.out_conv.weight.zero_()
                m.out_conv.bias.zero_()
        x = _tensor(real_crop)
        out = g(x)
    if isinstance(out, list):
        for o, p in zip(out, g.pyramid(x)):
            torch.testing.assert_close(o, p, atol=1e-6, rtol=0)
    else:
        torch.testing.assert_close(out, x, atol=1e-6, rtol=0)


def test_resnet_matches_official_parameter_count():
    # 11,378,179: DeblurGAN's ResnetGenerator (KupynOrest/DeblurGAN models/networks.py,
    # resnet_9blocks, ngf=64, norm='instance' so convs have biases): 9,472 (7x7 in) + 73,856 +
    # 295,168 (down) + 9 x 2 x 590,080 (blocks) + 295,040 + 73,792 (transposed up) + 9,411 (7x7 out).
    assert sum(p.numel() for p in build_generator("resnet").parameters()) == 11_378_179
    # Resize + 3x3 conv has exactly the weights of the 3x3 transposed conv it replaces.
    assert sum(p.numel() for p in build_generator("resnet", upsample="resize").parameters()) == 11_378_179


def test_nafnet_default_parameter_count():
    n = sum(p.numel() for p in build_generator("nafnet").parameters())
    assert n == 1_991_923
    assert 1.8e6 < n < 2.2e6


def test_critic_default_matches_official_patchgan():
    # 2,764,737: DeblurGAN's NLayerDiscriminator(ndf=64, n_layers=3, instance norm):
    # 3,136 + 131,200 + 524,544 + 2,097,664 + 8,193 (final 1-channel 4x4 conv).
    c = build_critic()
    assert sum(p.numel() for p in c.parameters()) == 2_764_737
    scores = c(torch.rand(1, 3, 256, 256))
    assert len(scores) == 1 and scores[0].shape == (1, 1, 35, 35)  # padding 2, as in the original


@pytest.mark.parametrize("size", [(97, 131), (64, 64)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("key", list(SMALL_CRITICS))
def test_critic_forward_backward(key, size, frame):
    cfg = SMALL_CRITICS[key]
    torch.manual_seed(0)
    c = build_critic(**cfg).train()
    x = torch.cat([_tensor(frame[300 : 300 + size[0], 500 : 500 + size[1]]), _tensor(frame[:size[0], :size[1]])])
    scores = c(x)
    assert isinstance(scores, list) and len(scores) == (2 if cfg.get("double_scale") else 1)
    for s in scores:
        assert torch.isfinite(s).all()
        if cfg.get("scalar_head"):
            assert s.shape == (2, 1)
        else:
            assert s.ndim == 4 and s.shape[:2] == (2, 1) and min(s.shape[-2:]) >= 1
    if len(scores) == 2 and not cfg.get("scalar_head"):
        assert scores[1].shape[-1] < scores[0].shape[-1]  # the second scale sees a half-size image
    sum(s.mean() for s in scores).backward()
    for sub in c.critics:  # every scale has its own weights and all of them get gradients
        assert sub.body[0].weight.grad.abs().sum() > 0


def test_critic_smallest_inputs():
    assert [s.shape for s in build_critic(width=4)(torch.rand(1, 3, 2, 2))] == [(1, 1, 4, 4)]
    assert len(build_critic(width=4, double_scale=True)(torch.rand(1, 3, 4, 4))) == 2
    with pytest.raises(ValueError, match=r"critic: input 3x1 is too small; both sides must be >= 2"):
        build_critic(width=4)(torch.rand(1, 3, 3, 1))
    with pytest.raises(ValueError, match=r"input 3x9 .* >= 4"):
        build_critic(width=4, double_scale=True)(torch.rand(1, 3, 3, 9))


def test_unknown_generator_name():
    with pytest.raises(ValueError, match=r"unknown generator 'srgan'.*\['multiscale', 'nafnet', 'resnet', 'unet'\]"):
        build_generator("srgan")


def test_wrong_kwargs_are_named_with_accepted_ones():
    with pytest.raises(ValueError, match=r"\['widht'\].*accepted: \['in_channels', 'width', 'enc_blocks'"):
        build_generator("nafnet", widht=16)
    with pytest.raises(ValueError, match=r"critic.*\['layers'\].*'n_layers'"):
        build_critic(layers=3)


def test_bad_values_are_named():
    with pytest.raises(ValueError, match=r"norm_layer 'group'.*'instance'"):
        build_generator("unet", norm_layer="group")
    with pytest.raises(ValueError, match=r"act_layer 'swish'.*'leaky_relu'"):
        build_generator("multiscale", act_layer="swish")
    with pytest.raises(ValueError, match=r"upsample 'pixelshuffle'.*'transpose', 'resize'"):
        build_generator("resnet", upsample="pixelshuffle")
    with pytest.raises(ValueError, match=r"enc_blocks \[1, 1\] and dec_blocks \[1\]"):
        build_generator("nafnet", enc_blocks=[1, 1], dec_blocks=[1])


def test_norm_and_activation_accept_classes():
    g = build_generator("unet", width=8, depth=1, blocks_per_level=1, middle_blocks=0, norm_layer=nn.BatchNorm2d, act_layer=nn.GELU)
    assert any(isinstance(m, nn.BatchNorm2d) for m in g.modules())
    assert any(isinstance(m, nn.GELU) for m in g.modules())


def test_constructor_defaults_are_json_serialisable():
    from deblurgan_hf.models import Critic

    for cls in [*GENERATORS.values(), Critic]:
        defaults = {n: p.default for n, p in inspect.signature(cls.__init__).parameters.items() if n != "self"}
        assert json.loads(json.dumps(defaults)) is not None


def test_pad_to_multiple_reflects_then_replicates():
    x = torch.arange(6.0).reshape(1, 1, 2, 3)  # [[0, 1, 2], [3, 4, 5]]
    y, size = pad_to_multiple(x, 4)
    assert size == (2, 3) and y.shape == (1, 1, 4, 4)
    # Width 3 -> 4: one reflected column. Height 2 -> 4: one reflected row (pad < size), then replicate.
    expected = torch.tensor([[0, 1, 2, 1], [3, 4, 5, 4], [0, 1, 2, 1], [0, 1, 2, 1]], dtype=torch.float32)
    assert torch.equal(y[0, 0], expected)
    assert torch.equal(crop_to(y, size), x)
    one, _ = pad_to_multiple(torch.full((1, 3, 1, 1), 0.25), 16)
    assert one.shape == (1, 3, 16, 16) and torch.all(one == 0.25)
    big, _ = pad_to_multiple(torch.rand(1, 1, 5, 5), 2, min_size=12)
    assert big.shape[-2:] == (12, 12)
    same = torch.rand(1, 1, 8, 16)
    assert pad_to_multiple(same, 8)[0] is same


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_layernorm2d_normalises_channels(memory_format, real_crop):
    torch.manual_seed(0)
    ln = LayerNorm2d(3)
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.uniform_(-0.5, 0.5)
    x = _tensor(real_crop).contiguous(memory_format=memory_format)
    mu = x.mean(1, keepdim=True)
    var = x.var(1, keepdim=True, unbiased=False)
    ref = (x - mu) / (var + ln.eps).sqrt() * ln.weight[:, None, None] + ln.bias[:, None, None]
    y = ln(x)
    torch.testing.assert_close(y, ref, atol=1e-4, rtol=1e-4)
    if memory_format == torch.channels_last:
        assert y.is_contiguous(memory_format=torch.channels_last)


def test_nafnet_bf16_channels_last_close_to_fp32(frame):
    torch.manual_seed(0)
    g = build_generator("nafnet").eval()
    with torch.no_grad():  # non-zero branch scales, so every block takes part (they start at zero)
        for name, p in g.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.normal_(0, 0.3)
    x = _tensor(frame[200:456, 400:656])
    with torch.inference_mode():
        ref = g(x)
        g_cl = g.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = g_cl(x.contiguous(memory_format=torch.channels_last))

    def psnr(a, b):
        return (10 * torch.log10(1 / F.mse_loss(a.float(), b.float()))).item()

    assert fast.shape == ref.shape and fast.dtype == torch.float32
    assert psnr(ref, x) < 35  # the net really changes the image, so the comparison below means something
    assert psnr(fast, ref) > 35
