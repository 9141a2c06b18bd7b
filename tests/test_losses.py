"""Losses on small crops of real GoPro pairs: values, gradients and the properties each loss promises."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from deblurgan_hf.losses import (
    MultiScaleL2Loss,
    PerceptualLoss,
    build_adversarial_loss,
    build_content_loss,
    build_perceptual_loss,
    charbonnier_loss,
    fft_loss,
    gradient_penalty,
    perceptual_weights_path,
)
from deblurgan_hf.models import build_critic, build_generator

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PAIR = "GOPR0384_11_00-000002.png"


def _crop(kind: str, box=(600, 300, 664, 364)) -> torch.Tensor:
    img = Image.open(DATA / "gopro_real" / "train" / kind / PAIR).convert("RGB").crop(box)
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float().div(255)


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    """(blur, sharp), each 2 x 3 x 64 x 64: two real crops of one GoPro pair."""
    boxes = [(600, 300, 664, 364), (200, 400, 264, 464)]
    blur = torch.stack([_crop("blur", b) for b in boxes])
    sharp = torch.stack([_crop("sharp", b) for b in boxes])
    return blur, sharp


# ----------------------------------------------------------------------------- content


def test_pixel_losses_match_numpy_and_vanish_on_identity(pair):
    blur, sharp = pair
    diff = blur.numpy() - sharp.numpy()
    assert build_content_loss("l1")(blur, sharp).item() == pytest.approx(np.abs(diff).mean(), rel=1e-5)
    assert build_content_loss("l2")(blur, sharp).item() == pytest.approx((diff**2).mean(), rel=1e-5)
    eps = 1e-3
    assert charbonnier_loss(blur, sharp, eps).item() == pytest.approx(np.sqrt(diff**2 + eps**2).mean(), rel=1e-5)
    for name in ("l1", "l2", "fft"):
        assert build_content_loss(name)(sharp, sharp).item() == 0.0
    assert charbonnier_loss(sharp, sharp, eps).item() == pytest.approx(eps)
    # a list output (multiscale generator): non-multiscale losses use the last, full-size level
    half = F.avg_pool2d(blur, 2)
    assert build_content_loss("l1")([half, blur], sharp).item() == build_content_loss("l1")(blur, sharp).item()


@pytest.mark.parametrize("name", ["l1", "l2", "charbonnier", "fft"])
def test_content_loss_gradient_step_reduces_it(pair, name):
    blur, sharp = pair
    loss_fn = build_content_loss(name)
    pred = blur.clone().requires_grad_(True)
    loss = loss_fn(pred, sharp)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    with torch.no_grad():
        stepped = pred - 0.05 * pred.grad / pred.grad.abs().max()
    assert loss_fn(stepped, sharp).item() < loss.item()


def test_fft_loss_is_absolutely_homogeneous(pair):
    # L1 of a linear transform: scaling the error by c scales the loss by |c|
    blur, sharp = pair
    d = blur - sharp
    base = fft_loss(sharp + d, sharp).item()
    assert base > 0
    assert fft_loss(sharp + 0.5 * d, sharp).item() == pytest.approx(0.5 * base, rel=1e-4)
    assert fft_loss(sharp - 2.0 * d, sharp).item() == pytest.approx(2.0 * base, rel=1e-4)


def test_multiscale_l2_uses_every_level_with_its_weight(pair):
    blur, sharp = pair
    gen = build_generator("multiscale", width=8, n_blocks=1)
    exact = gen.pyramid(sharp)  # the sharp image at each level's scale: zero loss
    assert MultiScaleL2Loss((0.25, 0.5, 1.0))(exact, sharp).item() == pytest.approx(0.0, abs=1e-10)
    levels = gen.pyramid(blur)
    per_level = [F.mse_loss(lv, t).item() for lv, t in zip(levels, gen.pyramid(sharp))]
    w = (0.25, 0.5, 1.0)
    expected = sum(wi * li for wi, li in zip(w, per_level)) / sum(w)
    assert MultiScaleL2Loss(w)(levels, sharp).item() == pytest.approx(expected, rel=1e-5)
    assert MultiScaleL2Loss((0, 0, 1))(levels, sharp).item() == pytest.approx(per_level[-1], rel=1e-5)
    with pytest.raises(ValueError, match="3 levels but 2 weights"):
        MultiScaleL2Loss((1.0, 1.0))(levels, sharp)
    out = gen(blur)
    MultiScaleL2Loss(w)(out, sharp).backward()
    assert all(torch.isfinite(p.grad).all() for p in gen.parameters() if p.grad is not None)


def test_unknown_loss_names_are_errors():
    with pytest.raises(ValueError, match="unknown content loss 'l3'"):
        build_content_loss("l3")
    with pytest.raises(ValueError, match="unknown adversarial loss"):
        build_adversarial_loss("wgan")
    with pytest.raises(ValueError, match="unknown perceptual network"):
        build_perceptual_loss("resnet50")
    assert build_adversarial_loss("none") is None and build_perceptual_loss("none") is None


# ----------------------------------------------------------------------------- perceptual


def test_perceptual_layers_normalisation_and_gradients(pair):
    blur, sharp = pair
    torch.manual_seed(0)
    vgg19 = PerceptualLoss("vgg19", random_weights_for_tests=True)
    last = vgg19.features[-1]
    assert isinstance(last, torch.nn.Conv2d) and last.out_channels == 256 and len(vgg19.features) == 15  # conv3_3
    vgg16 = PerceptualLoss("vgg16", random_weights_for_tests=True)
    assert isinstance(vgg16.features[-1], torch.nn.ReLU) and vgg16.features[-2].out_channels == 256  # block3_conv3
    assert torch.allclose(vgg19.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    assert torch.allclose(vgg19.std.flatten(), torch.tensor([0.229, 0.224, 0.225]))
    assert vgg19(sharp, sharp).item() == 0.0
    pred = blur.clone().requires_grad_(True)
    loss = vgg19(pred, sharp)
    loss.backward()
    assert loss.item() > 0 and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in vgg19.features.parameters())
    vgg19.train()
    assert not vgg19.features.training  # frozen extractor stays in eval mode


def test_perceptual_loads_torchvision_weights_from_the_hub_cache_offline(tmp_path, monkeypatch, pair):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # closed port: offline, without any network traffic
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    path = perceptual_weights_path("vgg19")
    assert path == str(tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth")

    with pytest.raises(RuntimeError) as err:
        build_perceptual_loss("vgg19")
    msg = str(err.value)
    assert path in msg and "--perceptual none" in msg and "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in msg

    # A file in the cache is used without any download (here a stand-in with the right layout).
    torch.manual_seed(1)
    reference = torchvision.models.vgg19(weights=None)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save(reference.state_dict(), path)
    loss = build_perceptual_loss("vgg19")
    assert torch.equal(loss.features[14].weight, reference.features[14].weight)
    blur, sharp = pair
    assert loss(blur, sharp).item() > 0


# ----------------------------------------------------------------------------- adversarial


class LinearCritic(torch.nn.Module):
    """D(x) = <w, x> per image, a list with one (N, 1) score tensor; Lipschitz constant ||w||_2."""

    def __init__(self, shape, norm: float, seed: int = 0):
        super().__init__()
        w = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
        self.w = torch.nn.Parameter(w * norm / w.norm())

    def forward(self, x):
        return [(x * self.w).flatten(1).sum(1, keepdim=True)]


def test_gradient_penalty_of_linear_critics(pair):
    blur, sharp = pair
    one_lipschitz = LinearCritic(sharp.shape[1:], norm=1.0)
    assert gradient_penalty(one_lipschitz, sharp, blur).item() == pytest.approx(0.0, abs=1e-8)
    two_lipschitz = LinearCritic(sharp.shape[1:], norm=2.0)
    assert gradient_penalty(two_lipschitz, sharp, blur).item() == pytest.approx(1.0, rel=1e-5)
    # the penalty trains the critic back towards norm 1
    gp = gradient_penalty(two_lipschitz, sharp, blur)
    gp.backward()
    with torch.no_grad():
        two_lipschitz.w -= 0.1 * two_lipschitz.w.grad
    assert two_lipschitz.w.norm().item() < 2.0


def test_wgan_gp_losses_are_the_wasserstein_estimate(pair):
    blur, sharp = pair
    critic = LinearCritic(sharp.shape[1:], norm=1.0)
    loss = build_adversarial_loss("wgan-gp", gp_weight=10.0)
    d_loss, logs = loss.critic_loss(critic, sharp, blur)
    real, fake = critic(sharp)[0].mean(), critic(blur)[0].mean()
    assert logs["wasserstein"] == pytest.approx((real - fake).item(), rel=1e-5)
    assert d_loss.item() == pytest.approx(-(real - fake).item(), rel=1e-4, abs=1e-6)  # gp ~ 0 for norm 1
    assert loss.generator_loss(critic, sharp, blur).item() == pytest.approx(-fake.item(), rel=1e-5)


class ConstantCritic(torch.nn.Module):
    """Scores `real_value` on the sharp batch and `fake_value` on anything else (two identical scales)."""

    def __init__(self, sharp, real_value: float, fake_value: float):
        super().__init__()
        self.sharp, self.real_value, self.fake_value = sharp, real_value, fake_value
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        v = self.real_value if torch.equal(x, self.sharp) else self.fake_value
        s = self.scale * torch.full((x.shape[0], 1, 4, 4), v) + 0 * x.mean()
        return [s, s]


def test_least_squares_vanilla_and_relativistic_losses_at_known_points(pair):
    blur, sharp = pair
    perfect = ConstantCritic(sharp, 1.0, 0.0)
    ls = build_adversarial_loss("lsgan")
    assert ls.critic_loss(perfect, sharp, blur)[0].item() == pytest.approx(0.0)
    assert ls.generator_loss(perfect, sharp, blur).item() == pytest.approx(1.0)
    ra = build_adversarial_loss("ragan-ls")
    assert ra.critic_loss(perfect, sharp, blur)[0].item() == pytest.approx(0.0)
    assert ra.generator_loss(perfect, sharp, blur).item() == pytest.approx(4.0)  # 0.5 * ((1+1)^2 + (-1-1)^2)
    confident = ConstantCritic(sharp, 20.0, -20.0)  # logits
    van = build_adversarial_loss("vanilla")
    assert van.critic_loss(confident, sharp, blur)[0].item() == pytest.approx(0.0, abs=1e-6)
    assert van.generator_loss(confident, sharp, blur).item() == pytest.approx(20.0, rel=1e-4)  # -log(sigmoid(-20))


@pytest.mark.parametrize("name", ["wgan-gp", "lsgan", "vanilla", "ragan-ls"])
def test_adversarial_losses_train_a_real_patchgan(pair, name):
    blur, sharp = pair
    torch.manual_seed(0)
    critic = build_critic(width=8, n_layers=2, double_scale=True)
    loss = build_adversarial_loss(name)
    d_loss, _ = loss.critic_loss(critic, sharp, blur)
    d_loss.backward()
    grads = [p.grad for p in critic.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # a few critic steps lower the critic loss on this fixed pair
    opt = torch.optim.Adam(critic.parameters(), lr=1e-3)
    first = d_loss.item()
    for _ in range(10):
        opt.zero_grad()
        d, _ = loss.critic_loss(critic, sharp, blur)
        d.backward()
        opt.step()
    assert loss.critic_loss(critic, sharp, blur)[0].item() < first
    # the generator loss sends finite gradients to the generator output
    fake = blur.clone().requires_grad_(True)
    loss.generator_loss(critic, sharp, fake).backward()
    assert torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0
