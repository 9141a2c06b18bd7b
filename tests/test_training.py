"""train_accelerate.py end to end: the real script in subprocesses, tiny models on tiny crops of real images."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from PIL import Image
from safetensors.torch import load_file

from deblurgan_hf import DeblurGAN
from deblurgan_hf.training.checkpoints import list_checkpoints, resolve_resume_checkpoint
from deblurgan_hf.training.recipes import load_config
from deblurgan_hf.training.schedules import build_lr_scheduler, lr_factor
from hub_server import HubServer

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SCRIPT = REPO / "train_accelerate.py"
HOOKED = REPO / "tests" / "train_hooked.py"  # the script with test-only hooks (NaN batches, random VGG weights)
sys.path.insert(0, str(REPO))  # the training script is a file at the repository root, not in the package
from train_accelerate import build_arg_parser, parse_args  # noqa: E402

TINY_MODELS = {
    "nafnet": {"width": 8, "enc_blocks": [1], "dec_blocks": [1], "middle_blocks": 1},
    "resnet": {"width": 8, "n_blocks": 2},
    "multiscale": {"width": 8, "n_blocks": 1},
    "unet": {"width": 8, "depth": 2, "blocks_per_level": 1, "middle_blocks": 1},
}
TINY_CRITIC = {"width": 8, "n_layers": 2}


# ----------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """96 px crops of real images: 3 GoPro train pairs, 2 val pairs, 3 sharp CBSD68 photos, and one
    64 px pair (4 copies, so a batch of 4 fits) for the learning test."""
    root = tmp_path_factory.mktemp("tiny_data")
    gopro = DATA / "gopro_real"
    for split, n in (("train", 3), ("val", 2)):
        for f in sorted((gopro / split / "blur").glob("*.png"))[:n]:
            for kind in ("blur", "sharp"):
                (root / f"paired_{split}" / kind).mkdir(parents=True, exist_ok=True)
                Image.open(gopro / split / kind / f.name).crop((560, 300, 656, 396)).save(root / f"paired_{split}" / kind / f.name)
    (root / "sharp").mkdir()
    for f in sorted((DATA / "sharp" / "cbsd68").glob("*.png"))[:3]:
        Image.open(f).crop((100, 100, 196, 196)).save(root / "sharp" / f.name)
    pair = "GOPR0384_11_00-000002.png"  # a textured region whose blurred input is at 25 dB
    for kind in ("blur", "sharp"):
        (root / "one_pair" / kind).mkdir(parents=True)
        crop = Image.open(gopro / "train" / kind / pair).crop((704, 512, 768, 576))
        for i in range(4):
            crop.save(root / "one_pair" / kind / f"copy{i}.png")
    return root


def base_config(data: Path, **overrides) -> dict:
    config = {
        "train_sources": [f"paired:{data / 'paired_train'}", f"sharp:{data / 'sharp'}"],
        "val_sources": [f"paired:{data / 'paired_val'}"],
        "blur": {"mode": "kernel", "size": 9},
        "crop_size": 32,
        "val_center_crop": 48,
        "train_batch_size": 2,
        "max_train_steps": 3,
        "checkpointing_steps": 1,
        "checkpoints_total_limit": 2,
        "validation_steps": 1,
        "logging_steps": 1,
        "num_threads": 1,
        "seed": 0,
    }
    config.update(overrides)
    return config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_training(tmp_path: Path, config: dict, *extra: str, processes: int = 1, check: bool = True,
                 timeout: float = 300, env: dict | None = None, hooks: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Write `config` as a recipe and run the real script (`accelerate launch` for several processes).

    `hooks`: test-only options of tests/train_hooked.py, which then runs the script in its place.
    """
    recipe = tmp_path / f"recipe_{abs(hash(json.dumps(config, sort_keys=True)))}.yaml"
    recipe.write_text(yaml.safe_dump(config))
    args = [*hooks, "--config", str(recipe), *extra]
    script = HOOKED if hooks else SCRIPT
    env = {**(os.environ if env is None else env), "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"}
    if processes == 1:
        cmd = [sys.executable, str(script), *args]
    else:
        # `--cpu --num_processes 2` would silently run one process; --multi_gpu + ACCELERATE_USE_CPU runs DDP (gloo).
        env["ACCELERATE_USE_CPU"] = "1"
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), str(script), *args]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"training failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def read_log(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]


def losses(records: list[dict]) -> dict[int, dict]:
    return {r["step"]: {k: v for k, v in r.items() if k.startswith("loss/")} for r in records if "loss/total" in r}


# ----------------------------------------------------------------------------- recipes and schedules (in process)


def test_recipe_keys_are_flags_and_flags_override(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"train_sources": ["sharp:x"], "learning_rate": 1e-4, "generator": "unet"}))
    args = parse_args(["--config", str(recipe), "--learning_rate", "2e-4"])
    assert args.learning_rate == 2e-4 and args.generator == "unet" and args.train_sources == ["sharp:x"]
    recipe.write_text(yaml.safe_dump({"train_sources": ["sharp:x"], "learning_rat": 1e-4}))
    with pytest.raises(ValueError, match="unknown key 'learning_rat'"):
        parse_args(["--config", str(recipe)])
    with pytest.raises(SystemExit):  # argparse error: nothing to train on
        parse_args(["--train_sources", "sharp:x", "--content_loss", "none"])
    recipe.write_text(yaml.safe_dump({"lr_scheduler": "exponential"}))
    with pytest.raises(ValueError, match="lr_scheduler: 'exponential' is not allowed"):
        load_config(recipe, build_arg_parser())


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "configs").glob("*.yaml")))
def test_bundled_recipes_parse(name):
    args = parse_args(["--config", str(REPO / "configs" / f"{name}.yaml")])
    if name == "nafnet_motion_s_wide":  # stage 2 starts from stage 1's export
        stage1 = parse_args(["--config", str(REPO / "configs" / "nafnet_motion_s.yaml")])
        assert args.init_from == f"{stage1.output_dir}/best" and args.output_dir != stage1.output_dir
    if name == "deblurgan_v1":  # the paper's recipe
        assert (args.generator, args.adversarial, args.gp_weight, args.critic_steps) == ("resnet", "wgan-gp", 10.0, 5)
        assert (args.perceptual, args.perceptual_weight, args.learning_rate) == ("vgg19", 100.0, 1e-4)
        assert (args.adam_beta1, args.adam_beta2, args.crop_size, args.train_batch_size) == (0.5, 0.999, 256, 1)
        assert (args.lr_scheduler, args.num_train_epochs, args.lr_constant_fraction) == ("constant_then_linear", 300, 0.5)
    else:
        assert args.generator == "nafnet" and args.adversarial == "none" and args.perceptual == "none"


def test_lr_schedules():
    # DeblurGAN: constant for the first half, then linear to zero
    f = [lr_factor("constant_then_linear", s, 300, constant_fraction=0.5) for s in (0, 149, 150, 225, 299, 300)]
    assert f == pytest.approx([1, 1, 1, 0.5, 1 / 150, 0])
    assert lr_factor("cosine", 50, 100) == pytest.approx(0.5)
    assert lr_factor("cosine", 100, 100, min_ratio=0.01) == pytest.approx(0.01)
    assert lr_factor("linear", 0, 10, warmup=4) == pytest.approx(0.2)


def test_scheduler_counts_updates_not_process_steps():
    # The script steps each schedule once per optimizer update on every process (its Accelerator has
    # step_scheduler_with_optimizer=False), so the LR follows the updates whatever the number of
    # processes: test_two_process_ddp compares 2 processes with 1 on the real script.
    def lr_after(updates: int) -> float:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = build_lr_scheduler(opt, "linear", num_training_steps=10)
        for _ in range(updates):
            opt.step()
            sched.step()
        return sched.get_last_lr()[0]

    assert lr_after(4) == pytest.approx(0.6)
    assert lr_after(5) == pytest.approx(0.5) and lr_after(10) == pytest.approx(0.0)


def test_latest_is_the_highest_complete_checkpoint(tmp_path):
    for step in (2, 4):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "training_state.json").write_text("{}")
    (tmp_path / "checkpoint-6").mkdir()  # no training state: incomplete
    (tmp_path / ".tmp-checkpoint-8").mkdir()  # killed while saving
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 4]
    assert resolve_resume_checkpoint("latest", tmp_path) == tmp_path / "checkpoint-4"
    assert resolve_resume_checkpoint("latest", tmp_path / "empty") is None
    with pytest.raises(FileNotFoundError, match="incomplete checkpoint"):
        resolve_resume_checkpoint(str(tmp_path / "checkpoint-6"), tmp_path)


def test_steps_report_and_skip_a_nonfinite_update(tiny_data):
    """critic_step / generator_step in process, on a real crop: losses, finiteness, and no update when not finite."""
    from accelerate import Accelerator

    from deblurgan_hf.losses import build_adversarial_loss
    from deblurgan_hf.training.steps import critic_step, generator_step

    accelerator = Accelerator(cpu=True)
    model = DeblurGAN("nafnet", TINY_MODELS["nafnet"], critic_kwargs=TINY_CRITIC)
    opt_g = torch.optim.AdamW(model.generator.parameters(), lr=1e-3)
    opt_d = torch.optim.AdamW(model.critic.parameters(), lr=1e-3)
    generator, critic, opt_g, opt_d = accelerator.prepare(model.generator, model.critic, opt_g, opt_d)
    name = sorted((tiny_data / "paired_train" / "blur").iterdir())[0].name
    blur, sharp = (torch.from_numpy(np.array(Image.open(tiny_data / "paired_train" / kind / name).crop((0, 0, 32, 32))))
                   .permute(2, 0, 1)[None].float() / 255 for kind in ("blur", "sharp"))
    wgan = build_adversarial_loss("wgan-gp")

    def weights(module):
        return {k: v.clone() for k, v in module.state_dict().items()}

    def changed(before, module):
        return any(not torch.equal(v, before[k]) for k, v in module.state_dict().items())

    g0, d0 = weights(generator), weights(critic)
    fake = generator(blur)
    nan_critic = critic_step(accelerator, critic, opt_d, wgan, sharp, torch.full_like(fake, float("nan")), updates=2,
                             max_grad_norm=None)
    assert not nan_critic.finite and not changed(d0, critic)
    done = critic_step(accelerator, critic, opt_d, wgan, sharp, fake, updates=2, max_grad_norm=None)
    assert done.finite and set(done.losses) == {"loss/critic", "wasserstein", "gradient_penalty"} and changed(d0, critic)

    terms = {"content": (fake - sharp).abs().mean(), "nan": torch.tensor(float("nan"))}
    nan_gen = generator_step(accelerator, generator, opt_g, terms, max_grad_norm=0.5)
    assert not nan_gen.finite and math.isnan(nan_gen.losses["loss/total"]) and not changed(g0, generator)
    fake = generator(blur)  # an earlier part of the update (a micro-batch, the critic) was not finite: skipped
    skipped = generator_step(accelerator, generator, opt_g, {"content": (fake - sharp).abs().mean()},
                             max_grad_norm=0.5, finite_so_far=False)
    assert not skipped.finite and math.isfinite(skipped.losses["loss/total"]) and not changed(g0, generator)
    fake = generator(blur)
    good = generator_step(accelerator, generator, opt_g, {"content": (fake - sharp).abs().mean()}, max_grad_norm=0.5)
    assert good.finite and set(good.losses) == {"loss/content", "loss/total"} and changed(g0, generator)
    assert 0 < float(good.grad_norm) < math.inf


# ----------------------------------------------------------------------------- the script


GENERATOR_RECIPES = {
    # generator: its typical losses (tiny sizes)
    "resnet": {"adversarial": "wgan-gp", "critic_kwargs": TINY_CRITIC, "critic_steps": 2, "content_loss": "none",
               "perceptual": "vgg19", "perceptual_weight": 100.0,
               "optimizer": "adam", "adam_beta1": 0.5, "lr_scheduler": "constant_then_linear"},
    "nafnet": {"content_loss": "charbonnier", "fft_weight": 0.1, "lr_scheduler": "cosine", "max_grad_norm": 0.5},
    "multiscale": {"content_loss": "multiscale_l2", "multiscale_weights": [0.25, 0.5, 1.0]},
    "unet": {"content_loss": "l1", "adversarial": "lsgan", "adversarial_weight": 0.01,
             "critic_kwargs": {**TINY_CRITIC, "double_scale": True}, "mixed_precision": "bf16"},
}
# The ImageNet VGG weights are not on this offline machine: the perceptual loss runs with random ones.
GENERATOR_HOOKS = {"resnet": ("--random_vgg_weights",)}


@pytest.mark.parametrize("generator", list(GENERATOR_RECIPES))
def test_each_generator_trains_checkpoints_and_exports(tmp_path, tiny_data, generator):
    out = tmp_path / "run"
    config = base_config(tiny_data, generator=generator, generator_kwargs=TINY_MODELS[generator],
                         **GENERATOR_RECIPES[generator])
    if generator == "nafnet":  # also push best/ to a local Hub server (tests/hub_server.py)
        with HubServer(tmp_path / "hub") as hub:
            run_training(tmp_path, config, "--output_dir", str(out), "--push_to_hub", "--hub_model_id", "user/tiny",
                         env=hub.client_env(tmp_path / "hf_home"))
            pushed = hub.files("user/tiny")
        for f in (out / "best").iterdir():
            assert pushed[f.name] == f.read_bytes(), f.name
    else:
        run_training(tmp_path, config, "--output_dir", str(out), hooks=GENERATOR_HOOKS.get(generator, ()))

    records = read_log(out)
    per_step = losses(records)
    assert sorted(per_step) == [1, 2, 3]
    assert all(math.isfinite(v) for terms in per_step.values() for v in terms.values())
    if "adversarial" in config:
        assert all("loss/adversarial" in t and "loss/critic" in t for t in per_step.values())
    if generator == "resnet":
        assert all("loss/perceptual" in t for t in per_step.values())
    # checkpoints every step, the last two kept, each with both models when there is a critic
    assert [s for s, _ in list_checkpoints(out)] == [2, 3]
    files = {p.name for p in (out / "checkpoint-3").iterdir()}
    assert {"model.safetensors", "optimizer.bin", "scheduler.bin", "training_state.json"} <= files
    assert ("model_1.safetensors" in files) == ("critic_kwargs" in config)

    # best/ is the generator at the best validation step, loadable from the Hub-ready folder
    state = json.loads((out / "checkpoint-3" / "training_state.json").read_text())
    val = {r["step"]: r["val_psnr"] for r in records if "val_psnr" in r}
    assert state["best_step"] == max(val, key=val.get) and state["best_val_psnr"] == pytest.approx(max(val.values()))
    best = DeblurGAN.from_pretrained(out / "best")
    assert best.generator_name == generator and best.critic is None
    if state["best_step"] in (2, 3):
        ckpt = load_file(out / f"checkpoint-{state['best_step']}" / "model.safetensors")
        for k, v in best.generator.state_dict().items():
            assert torch.equal(v, ckpt[k]), k
    card = (out / "best" / "README.md").read_text()
    assert "val_psnr" in card and "train_accelerate.py" in card
    results = {r.metric_type: r.metric_value for r in ModelCard.load(out / "best" / "README.md").data.eval_results}
    assert results["psnr"] == pytest.approx(state["best_val_psnr"], abs=1e-4) and 0 < results["ssim"] < 1
    assert (out / "best" / "training_curves.png").is_file() and (out / "training_curves.png").is_file()
    grid = Image.open(out / "val_grid_step0000003.png")
    assert grid.width == 3 * 48  # blur | output | sharp
    final = DeblurGAN.from_pretrained(out / "final")
    ckpt = load_file(out / "checkpoint-3" / "model.safetensors")
    assert all(torch.equal(v, ckpt[k]) for k, v in final.generator.state_dict().items())


def gan_config(data: Path, **overrides) -> dict:
    """Two models, two optimizers, two schedules: what resume and DDP must get right."""
    return base_config(
        data, generator="resnet", generator_kwargs=TINY_MODELS["resnet"], critic_kwargs=TINY_CRITIC,
        adversarial="wgan-gp", critic_steps=2, content_loss="l1", adversarial_weight=0.01,
        lr_scheduler="cosine", lr_warmup_steps=1, max_train_steps=4, checkpointing_steps=2, validation_steps=2,
        checkpoints_total_limit=None, **overrides,
    )


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, tiny_data) -> Path:
    """4 unbroken steps (3 per epoch: crosses an epoch boundary), a checkpoint at 2 and 4."""
    tmp = tmp_path_factory.mktemp("straight")
    run_training(tmp, gan_config(tiny_data), "--output_dir", str(tmp / "run"))
    return tmp / "run"


def test_resume_equals_an_unbroken_run(tmp_path, tiny_data, straight_run):
    out = tmp_path / "resumed"
    out.mkdir()
    shutil.copytree(straight_run / "checkpoint-2", out / "checkpoint-2")  # the state after 2 steps
    (out / ".tmp-checkpoint-3").mkdir()  # a save that was killed half-way: never "latest"
    (out / ".tmp-checkpoint-3" / "model.safetensors").write_bytes(b"truncated")
    (out / ".best.tmp-999999").mkdir()  # an export killed half-way (deblurgan_hf.files.atomic_write's name)
    proc = run_training(tmp_path, gan_config(tiny_data), "--output_dir", str(out), "--resume_from_checkpoint", "latest")
    assert "resumed from" in proc.stderr and "at step 2 (epoch 0, skipping 2 batches)" in proc.stderr
    assert not (out / ".tmp-checkpoint-3").exists() and not (out / ".best.tmp-999999").exists()

    for name in ("model.safetensors", "model_1.safetensors"):  # generator and critic
        a, b = load_file(straight_run / "checkpoint-4" / name), load_file(out / "checkpoint-4" / name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.allclose(a[k], b[k], atol=1e-6, rtol=0), (name, k, (a[k] - b[k]).abs().max())
    straight, resumed = losses(read_log(straight_run)), losses(read_log(out))
    assert sorted(resumed) == [3, 4]  # the log was continued, not restarted
    for step in (3, 4):
        assert resumed[step] == pytest.approx(straight[step], rel=1e-5)


def test_resume_from_a_checkpoint_that_counted_process_steps(tmp_path, tiny_data, straight_run):
    # Checkpoints saved before the schedules counted updates hold (updates x processes) in their
    # scheduler state, as a 2-process run saved them: resuming must continue the schedule of updates.
    out = tmp_path / "resumed"
    shutil.copytree(straight_run / "checkpoint-2", out / "checkpoint-2")
    for name in ("scheduler.bin", "scheduler_1.bin"):  # generator's and critic's
        state = torch.load(out / "checkpoint-2" / name, weights_only=True)
        assert state["last_epoch"] == 2
        torch.save({**state, "last_epoch": 4, "_step_count": 5}, out / "checkpoint-2" / name)
    run_training(tmp_path, gan_config(tiny_data), "--output_dir", str(out), "--resume_from_checkpoint", "latest")
    lr = {r["step"]: r["lr"] for r in read_log(out) if "lr" in r}
    lr_straight = {r["step"]: r["lr"] for r in read_log(straight_run) if "lr" in r}
    assert sorted(lr) == [3, 4] and lr == pytest.approx({s: lr_straight[s] for s in (3, 4)}, rel=1e-9)
    for name in ("model.safetensors", "model_1.safetensors"):
        a, b = load_file(straight_run / "checkpoint-4" / name), load_file(out / "checkpoint-4" / name)
        assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a), name


def test_two_process_ddp(tmp_path, tiny_data, straight_run):
    out = tmp_path / "ddp"
    # 1 per process x 2 processes = the straight run's batch of 2: same steps, same schedule
    run_training(tmp_path, gan_config(tiny_data, train_batch_size=1), "--output_dir", str(out), processes=2)
    records = read_log(out)
    (checksums,) = [r["process_weight_checksums"] for r in records if "process_weight_checksums" in r]
    assert len(checksums) == 2 and checksums[0] == checksums[1]  # both ranks end with identical weights
    assert {p.name for p in (out / "checkpoint-4").iterdir()} >= {"random_states_0.pkl", "random_states_1.pkl"}
    lr_ddp = {r["step"]: r["lr"] for r in records if "lr" in r}
    lr_single = {r["step"]: r["lr"] for r in read_log(straight_run) if "lr" in r}
    assert sorted(lr_ddp) == [1, 2, 3, 4] and lr_ddp == pytest.approx(lr_single, rel=1e-9)
    assert lr_ddp[4] == pytest.approx(0.0, abs=1e-12) and lr_ddp[2] < lr_ddp[1]
    assert all(math.isfinite(v) for t in losses(records).values() for v in t.values())
    DeblurGAN.from_pretrained(out / "best")


def test_nonfinite_losses_are_skipped_then_stop_the_run(tmp_path, tiny_data):
    out = tmp_path / "nan"
    config = base_config(tiny_data, generator="nafnet", generator_kwargs=TINY_MODELS["nafnet"], content_loss="l1",
                         max_train_steps=6, checkpoints_total_limit=None, validation_steps=100,
                         max_nonfinite_in_a_row=3)
    proc = run_training(tmp_path, config, "--output_dir", str(out), check=False, hooks=("--nan_at_steps", "2,3,4,5"))
    assert proc.returncode != 0
    assert "stopped at step 4: 3 non-finite losses in a row" in proc.stderr
    assert f"last good checkpoint is {out / 'checkpoint-3'}" in proc.stderr
    records = read_log(out)
    assert [r["step"] for r in records if r.get("nonfinite")] == [2, 3, 4]
    assert [s for s, _ in list_checkpoints(out)] == [1, 2, 3]
    # skipped steps do not touch the weights: checkpoint-3 holds step 1's finite weights
    w1, w3 = load_file(out / "checkpoint-1" / "model.safetensors"), load_file(out / "checkpoint-3" / "model.safetensors")
    assert all(torch.isfinite(v).all() and torch.equal(v, w3[k]) for k, v in w1.items())


@pytest.mark.slow
def test_learning_works_on_one_pair(tmp_path, tiny_data):
    out = tmp_path / "learn"
    config = base_config(tiny_data, train_sources=[f"paired:{tiny_data / 'one_pair'}"], val_sources=[],
                         train_batch_size=4, max_train_steps=200, logging_steps=10, checkpointing_steps=1000,
                         generator="nafnet", generator_kwargs={"width": 8, "enc_blocks": [1, 1], "dec_blocks": [1, 1],
                                                               "middle_blocks": 1},
                         content_loss="l1", learning_rate=2e-3)
    run_training(tmp_path, config, "--output_dir", str(out))
    psnr = [r["train_psnr"] for r in read_log(out) if "train_psnr" in r]
    assert len(psnr) == 20
    first, last = psnr[0], sum(psnr[-3:]) / 3
    assert last - first >= 5.0, f"training PSNR {first:.2f} -> {last:.2f} dB"


def test_gradient_accumulation_equals_the_larger_batch(tmp_path, tiny_data):
    # 2 micro-batches of 1 per update = batches of 2: same samples, same (mean) gradients, same clipping
    config = base_config(tiny_data, generator="nafnet", generator_kwargs=TINY_MODELS["nafnet"],
                         content_loss="charbonnier", fft_weight=0.1, max_grad_norm=0.5, lr_scheduler="cosine",
                         learning_rate=1e-3, val_sources=[], max_train_steps=2, checkpointing_steps=1)
    run_training(tmp_path, config, "--output_dir", str(tmp_path / "batch2"))
    run_training(tmp_path, {**config, "train_batch_size": 1, "gradient_accumulation_steps": 2},
                 "--output_dir", str(tmp_path / "accum2"))
    a1, a2 = (load_file(tmp_path / "batch2" / f"checkpoint-{s}" / "model.safetensors") for s in (1, 2))
    b1, b2 = (load_file(tmp_path / "accum2" / f"checkpoint-{s}" / "model.safetensors") for s in (1, 2))
    assert max((a2[k] - a1[k]).abs().max().item() for k in a1) > 1e-4  # the second update is real
    for a, b in ((a1, b1), (a2, b2)):
        for k in a:
            assert torch.allclose(a[k], b[k], atol=1e-6, rtol=1e-5), (k, (a[k] - b[k]).abs().max())


def test_export_script_cards_a_two_stage_chain(tmp_path, tiny_data):
    """scripts/export_default_model.py on a real 2-stage chain (stage 2 `init_from` stage 1's best/)."""
    kwargs = {"generator": "nafnet", "generator_kwargs": TINY_MODELS["nafnet"], "max_train_steps": 2}
    stage1, stage2 = tmp_path / "stage1", tmp_path / "stage2"
    run_training(tmp_path, base_config(tiny_data, **kwargs), "--output_dir", str(stage1))
    run_training(tmp_path, base_config(tiny_data, **kwargs, seed=1), "--output_dir", str(stage2),
                 "--init_from", str(stage1 / "best"))
    shake, real = tmp_path / "shake_photos", tmp_path / "real_photos"
    shake.mkdir()
    real.mkdir()
    Image.open(sorted((DATA / "sharp" / "kodak24").glob("*.png"))[0]).crop((100, 100, 340, 340)).save(shake / "k.png")
    Image.open(DATA / "real_blur_only" / "srn-real-4c6.png").convert("RGB").resize((96, 64)).save(real / "r.png")
    script = [sys.executable, str(REPO / "scripts" / "export_default_model.py"), "--run", str(stage2),
              "--val", f"paired:{tiny_data / 'paired_val'}", "--kodak", f"sharp:{tiny_data / 'sharp'}",
              "--shake", f"sharp:{shake}", "--real-photos", str(real)]
    env = {**os.environ, "TQDM_DISABLE": "1"}

    wrong = subprocess.run(script + ["--out", str(tmp_path / "x"), "--wall-minutes", "5"], env=env,
                           capture_output=True, text=True)
    assert wrong.returncode == 2 and "1 value(s) for 2 stage(s)" in wrong.stderr and not (tmp_path / "x").exists()

    out = tmp_path / "model"
    subprocess.run(script + ["--out", str(out), "--wall-minutes", "5", "1"], env=env, check=True, capture_output=True)
    exported, best = DeblurGAN.from_pretrained(out), DeblurGAN.from_pretrained(stage2 / "best")
    assert all(torch.equal(v, best.generator.state_dict()[k]) for k, v in exported.generator.state_dict().items())
    card = (out / "README.md").read_text()
    configs = [json.loads((run / "recipe.json").read_text())["config"] for run in (stage1, stage2)]
    commands = [line for line in card.splitlines() if line.startswith("accelerate launch")]
    assert commands == [f"accelerate launch train_accelerate.py --config {c}" for c in configs]
    assert "Stage 1" in card and "Stage 2" in card and "Kodak24 sharp input" in card
    assert "Fine-tuned from" not in card and "Then fine-tuned on" not in card  # a chain from scratch has no origin
    assert {"sample.png", "validation_per_image.csv", "model.safetensors", "real_photos.png",
            "camera_shake_per_image.csv"} <= {p.name for p in out.iterdir()}
    assert Image.open(out / "real_photos.png").size[0] == 1400
    # the camera-shake table: every bin and variant, its figures those of the per-image file
    shake_rows = list(csv.DictReader((out / "camera_shake_per_image.csv").open()))
    for bin_px in ("7-15", "15-31", "31-75"):
        for variant in ("uniform", "rotation", "lowlight"):
            mine = [float(r["psnr"]) for r in shake_rows if (r["kernel_px"], r["variant"], r["method"]) == (bin_px, variant, "model fp32")]
            assert len(mine) == 1 and f"| {bin_px} | {variant} | model fp32 | {mine[0]:.2f} |" in card
    assert "| 15-31 | uniform | rl |" in card and "| 15-31 | rotation | rl |" not in card
    claimed = {r.metric_type: r.metric_value for r in ModelCard.load(out / "README.md").data.eval_results}
    rows = list(csv.DictReader((out / "validation_per_image.csv").open()))
    fp32 = [float(r["psnr"]) for r in rows if r["method"] == "model fp32"]
    assert len(fp32) == 2 and claimed["psnr"] == pytest.approx(sum(fp32) / 2, abs=1e-3)


def test_export_script_cards_a_fine_tune_of_a_bundled_model(tmp_path, tiny_data):
    """A run `init_from` an exported model (not a run): its card carries that model's training data,
    recipe and commands first, and a benchmark photo set the origin trained on is marked as such."""
    origin = REPO / "deblurgan_hf" / "pretrained" / "nafnet-motion-s"
    run = tmp_path / "fine_tune"
    run_training(tmp_path, base_config(tiny_data, max_train_steps=2, init_from=str(origin)), "--output_dir", str(run))
    shake = tmp_path / "sharp" / "cbsd68"  # the origin's card credits CBSD68 as training data
    shake.mkdir(parents=True)
    Image.open(sorted((DATA / "sharp" / "cbsd68").glob("*.png"))[0]).crop((0, 0, 240, 240)).save(shake / "c.png")
    out = tmp_path / "model"
    subprocess.run([sys.executable, str(REPO / "scripts" / "export_default_model.py"), "--run", str(run),
                    "--val", f"paired:{tiny_data / 'paired_val'}", "--kodak", f"sharp:{tiny_data / 'sharp'}",
                    "--shake", f"sharp:{shake}", "--real-photos", "", "--out", str(out)],
                   env={**os.environ, "TQDM_DISABLE": "1"}, check=True, capture_output=True)
    card, sections = (out / "README.md").read_text(), {}
    for part in card.split("\n## ")[1:]:
        sections[part.partition("\n")[0].strip()] = part.partition("\n")[2]
    origin_card = (origin / "README.md").read_text()
    assert "Fine-tuned from the generator of `deblurgan_hf/pretrained/nafnet-motion-s`" in sections["Training recipe"]
    assert "**CBSD68**" in sections["Training data"] and "Then fine-tuned on:" in sections["Training data"]
    assert "of which cbsd68 WAS in the training data" in card
    commands = [line for line in card.splitlines() if line.startswith(("accelerate launch", "python scripts/"))]
    origin_commands = [line for line in origin_card.splitlines() if line.startswith(("accelerate launch", "python scripts/"))]
    config = json.loads((run / "recipe.json").read_text())["config"]
    assert commands[: len(origin_commands)] == origin_commands
    assert commands[len(origin_commands)] == f"accelerate launch train_accelerate.py --config {config}"
    assert ModelCard.load(out / "README.md").data.base_model == "deblurgan-hf/nafnet-motion-s"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("mixed_precision", ["bf16", "fp16"])
def test_trains_on_cuda_with_mixed_precision(tmp_path, tiny_data, mixed_precision):
    """Accelerate places everything: generator, critic, VGG perceptual loss, gradient penalty."""
    if mixed_precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    out = tmp_path / "run"
    config = base_config(tiny_data, generator="resnet", generator_kwargs=TINY_MODELS["resnet"],
                         **{**GENERATOR_RECIPES["resnet"], "mixed_precision": mixed_precision})
    run_training(tmp_path, config, "--output_dir", str(out), hooks=GENERATOR_HOOKS["resnet"])
    per_step = losses(read_log(out))
    assert sorted(per_step) == [1, 2, 3]
    assert all(math.isfinite(v) for terms in per_step.values() for v in terms.values())
    assert all("loss/perceptual" in t for t in per_step.values())
