"""The package as users get it: declared dependencies and extras, the entry points, model cards the
Hub renders right, and a wheel that deblurs a real photo outside the checkout (issue 13)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tomllib
from huggingface_hub import EvalResult, ModelCard
from PIL import Image

from conftest import DATA, REPO
from deblurgan_hf import DEFAULT_MODEL, PRETRAINED_DIR, DeblurGAN, __version__
from deblurgan_hf._extras import EXTRAS
from deblurgan_hf.cards import HUB_ID, base_model_id, eval_dataset, hub_dataset, project_urls
from deblurgan_hf.metrics import psnr_images

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
CORE = {"torch", "torchvision", "huggingface-hub", "safetensors", "numpy", "pillow", "scipy", "tqdm"}
VAL = DATA / "gopro_real" / "val"


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pins() -> dict[str, str]:
    lines = (line.split("#", 1)[0].strip() for line in (REPO / "requirements.txt").read_text().splitlines())
    return {_name(line): line for line in lines if line}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return psnr_images([a], [b])[0]


# ----------------------------------------------------------------------------- dependencies


def test_core_is_small_and_extras_match_what_the_code_imports():
    assert {_name(d) for d in PYPROJECT["dependencies"]} == CORE
    extras = PYPROJECT["optional-dependencies"]
    assert set(extras) == set(EXTRAS) | {"dev"}
    for extra, modules in EXTRAS.items():
        assert {_name(d) for d in extras[extra]} == set(modules), extra  # deblurgan_hf/_extras.py agrees
    assert f"deblurgan-hf[{','.join(EXTRAS)}]" in extras["dev"]


def test_requirements_txt_pins_the_full_set():
    """requirements.txt (behind `make demo` / `make test`) pins the core, every extra and dev."""
    declared = CORE | {_name(d) for deps in PYPROJECT["optional-dependencies"].values() for d in deps}
    declared.discard("deblurgan-hf")
    pins = _pins()
    assert declared <= set(pins), sorted(declared - set(pins))
    assert all("==" in pins[name] for name in declared)


def test_license_is_an_spdx_expression_with_its_file():
    assert PYPROJECT["license"] == "Apache-2.0"
    assert "Apache License" in (REPO / PYPROJECT["license-files"][0]).read_text()


def test_a_missing_extra_is_named(tmp_path):
    """An optional module that is not installed (None in sys.modules stands for it) names its extra."""
    hide = "import sys; sys.modules['skimage'] = None; sys.modules['datasets'] = None; "
    code = hide + "import deblurgan_hf.baselines"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 1 and "pip install 'deblurgan-hf[eval]'" in out.stderr, out.stderr
    code = hide + f"from deblurgan_hf.data import load_pairs; load_pairs('paired:{VAL}')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert "No module named 'datasets': it comes with deblurgan-hf's [train] or [eval] extra" in out.stderr
    code = hide + "from deblurgan_hf.cli import main; sys.exit(main(['evaluate', '--help']))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.startswith("deblurgan evaluate: error: No module named 'skimage'")
    assert "Traceback" not in out.stderr


def test_version_from_the_console_script_and_python_m(tmp_path):
    deblurgan = str(Path(sys.executable).with_name("deblurgan"))
    for command in ([deblurgan, "--version"], [sys.executable, "-m", "deblurgan_hf", "--version"]):
        out = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=True)
        assert out.stdout.strip() == f"deblurgan {__version__}"


# ----------------------------------------------------------------------------- model cards


def test_one_card_template_inside_the_package():
    assert not (REPO / "model_card.md").exists()
    template = REPO / "deblurgan_hf" / "model_card.md"
    assert template.is_file() and not template.is_symlink()


def test_data_sources_map_to_hub_ids_never_to_local_paths():
    assert hub_dataset(f"paired:{VAL}") == eval_dataset([f"paired:{VAL}"])
    assert (hub_dataset(f"paired:{VAL}").id, hub_dataset(f"paired:{VAL}").split) == ("deblurgan-hf/gopro-large", "test")
    assert hub_dataset("hub:someone/pairs?split=validation").split == "validation"
    assert hub_dataset(f"sharp:{DATA / 'sharp' / 'cbsd68'}") is None  # no known Hub copy: left out
    mixed = eval_dataset([f"paired:{VAL}", f"sharp:{DATA / 'sharp' / 'cbsd68'}"])
    assert mixed.id == "imagefolder" and str(DATA) not in mixed.name and "cbsd68" in mixed.name
    assert base_model_id(DEFAULT_MODEL) == f"deblurgan-hf/{Path(DEFAULT_MODEL).name}"
    assert base_model_id(f"pretrained/{Path(DEFAULT_MODEL).name}") == base_model_id(DEFAULT_MODEL)  # the old path
    assert base_model_id("someone/model") == "someone/model"
    assert base_model_id("runs/x/best") is None and base_model_id(None) is None


def test_card_has_hub_metadata_and_the_mixin_links(tmp_path):
    class Linked(DeblurGAN, repo_url="https://code.example/deblurgan-hf", docs_url="https://docs.example/deblurgan-hf"):
        pass

    model = Linked("nafnet", {"width": 8, "enc_blocks": [1], "dec_blocks": [1], "middle_blocks": 1})
    result = EvalResult(task_type="image-to-image", dataset_type="someone/pairs", dataset_name="pairs",
                        dataset_split="test", metric_type="psnr", metric_value=30.0)
    model.save_pretrained(tmp_path, model_card_kwargs={"datasets": ["someone/pairs"], "base_model": "someone/base",
                                                       "eval_results": [result], "model_name": "tiny"})
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.metrics == ["psnr", "ssim"] and card.data.datasets == ["someone/pairs"]
    assert card.data.base_model == "someone/base"
    assert (card.data.eval_results[0].dataset_type, card.data.eval_results[0].dataset_split) == ("someone/pairs", "test")
    assert "- Code: https://code.example/deblurgan-hf" in card.text and "- Docs: https://docs.example/deblurgan-hf" in card.text
    assert "https://arxiv.org/abs/2204.04676" in card.text  # NAFNet, the generator's paper
    if "Paper" in project_urls():  # [project.urls] reaches DeblurGAN's own cards through the mixin
        assert project_urls()["Paper"] in card.text


def test_bundled_cards_file_results_under_hub_ids():
    for readme in sorted(PRETRAINED_DIR.glob("*/README.md")):
        data = ModelCard.load(readme).data
        assert data.metrics == ["psnr", "ssim"] and data.datasets, readme
        assert all(HUB_ID.match(d) for d in data.datasets), data.datasets
        for r in data.eval_results:
            assert HUB_ID.match(r.dataset_type) and r.dataset_split, (readme, r.dataset_type, r.dataset_split)


# ----------------------------------------------------------------------------- the wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(REPO)],
                   check=True, capture_output=True, text=True)
    [built] = dist.glob("deblurgan_hf-*.whl")
    return built


@pytest.mark.slow
def test_wheel_ships_the_bundled_models_and_their_cards(wheel):
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        metadata = whl.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    for folder in sorted(PRETRAINED_DIR.glob("*/config.json")):
        for file in ("config.json", "model.safetensors", "README.md"):
            assert f"deblurgan_hf/pretrained/{folder.parent.name}/{file}" in names
    assert "deblurgan_hf/model_card.md" in names and "deblurgan_hf/metrics/ssim/ssim.py" in names
    assert not any(n.endswith(".png") for n in names)  # the cards' figures stay in the repo
    assert wheel.stat().st_size < 20_000_000 * max(1, len(list(PRETRAINED_DIR.glob("*/config.json"))))
    assert "License-Expression: Apache-2.0" in metadata and "Provides-Extra: train" in metadata


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_deblurs_a_real_photo_outside_the_checkout(wheel, tmp_path):
    """A non-editable install of the core only: torch from the workplace's pinned local wheels
    (requirements.txt as constraints), nothing from the project's own venv."""
    venv, work = tmp_path / "venv", tmp_path / "elsewhere"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "-c", str(REPO / "requirements.txt"), str(wheel)],
                   check=True, capture_output=True, text=True)
    name = sorted((VAL / "blur").iterdir())[0].name
    Image.open(VAL / "blur" / name).save(work / "photo.png")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(args, capture_output=True, text=True, cwd=work, env=env, check=check)

    code = ("import deblurgan_hf, sys; from deblurgan_hf import DeblurGAN, DEFAULT_MODEL; "
            "print(deblurgan_hf.__file__); DeblurGAN.from_pretrained(DEFAULT_MODEL).deblur('photo.png').save('sharp.png')")
    where = run(str(py), "-c", code).stdout.strip()
    assert where.startswith(str(venv)) and not where.startswith(str(REPO))
    blurred, sharp = (np.asarray(Image.open(p).convert("RGB")) for p in (VAL / "blur" / name, VAL / "sharp" / name))
    restored = np.asarray(Image.open(work / "sharp.png").convert("RGB"))
    assert psnr(restored, sharp) > psnr(blurred, sharp) + 1.0

    run(str(venv / "bin" / "deblurgan"), "deblur", "photo.png", "-o", "out")
    assert Image.open(work / "out" / "photo.png").size == (1280, 720)
    assert run(str(py), "-m", "deblurgan_hf", "--version").stdout.strip() == f"deblurgan {__version__}"
    # the core install has no evaluation stack: the command says which extra brings it
    missing = run(str(venv / "bin" / "deblurgan"), "evaluate", "--help", check=False)
    assert missing.returncode == 2 and "pip install 'deblurgan-hf[eval]'" in missing.stderr, missing.stderr
    installed = run(str(py), "-m", "pip", "list", "--format=freeze").stdout.lower()
    assert "gradio" not in installed and "datasets" not in installed and "torch==2.14.1" in installed


# ----------------------------------------------------------------------------- the front page


def test_readme_is_a_front_page_whose_links_resolve():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    setup = re.search(r"```bash\n(.*?)```", readme.split("## Quick start", 1)[1], re.S).group(1)
    assert [line.split("#")[0].strip() for line in setup.splitlines()] == ["make demo", "make test"]
    assert "make test\n" in (REPO / ".ci" / "run").read_text()  # CI runs the README's test command
    assert not re.search(r"\d \s*dB\b|\d\s*(MB|MiB|GFLOP)", readme)  # figures live in docs/results
    for page in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith(("http://", "https://")):
                assert (page.parent / target).exists(), f"{page.relative_to(REPO)}: broken link {target}"
