"""Assemble a Hugging Face Space folder for the app: `python scripts/make_space.py OUT --space-id USER/SPACE --model-id USER/MODEL`.

A Space reads its settings from the YAML front matter of its own README.md, while this project's
README.md is the project's; so the Space is a separate folder built from the project files:

    OUT/README.md          front matter (title, sdk gradio + the installed version, python_version,
                           app_file, models, preload_from_hub, suggested_hardware, license) and a short
                           description whose API example names the Space by its id
    OUT/app.py             copied unchanged
    OUT/deblurgan_hf/      the package with its bundled models (importable from the app's folder, no install)
    OUT/examples/          example images and their ATTRIBUTION.md
    OUT/requirements.txt   the package's runtime dependencies (pyproject), pinned as in requirements.txt;
                           on CPU hardware torch and torchvision come from PyTorch's CPU wheel index (the
                           default Linux wheels carry several GB of CUDA libraries a CPU Space never uses);
                           gradio itself comes from the Space's sdk_version

The models given by Hub id are downloaded when the Space is built (`preload_from_hub`), so typing one
in the app's Hub field loads it from the Space's disk. Push with `hf upload USER/SPACE OUT . --repo-type space`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import shutil
import sys
from pathlib import Path

import tomllib
import yaml

from deblurgan_hf.files import atomic_write

ROOT = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CPU_HARDWARE = ("cpu-basic", "cpu-upgrade")
SPACE_BODY = """
# {title}

Blind motion deblurring (DeblurGAN-style, model [{model}](https://huggingface.co/{model})) with a
before/after slider. Upload, paste or take a photo, press **Deblur**, drag the
slider, download the full-resolution PNG. The same app runs locally with `python app.py`.

The API endpoint `/deblur` can be called with `gradio_client`:

```python
from gradio_client import Client, handle_file
client = Client("{space}")
(blurred, sharp), png, summary = client.predict(handle_file("photo.jpg"), api_name="/deblur")
```

Example images: real blurred frames from GOPRO_Large (S. Nah, T. H. Kim, K. M. Lee, CVPR 2017),
CC BY 4.0; see `examples/ATTRIBUTION.md`.
"""


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def space_requirements(root: Path = ROOT, hardware: str = "cpu-basic") -> list[str]:
    """The package's runtime dependencies and its `app` extra but Gradio (pyproject), with the pins of
    requirements.txt where given; on CPU hardware the CPU builds of torch and torchvision (`+cpu`,
    from PyTorch's CPU index)."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    # The Space's SDK installs Gradio itself (sdk_version); the rest of the app extra (PyAV) it does not.
    app = [d for d in project["optional-dependencies"]["app"] if _name(d) != "gradio"]
    deps = [*project["dependencies"], *app]
    pins = {}
    req = root / "requirements.txt"
    if req.is_file():
        for line in req.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                pins[_name(line)] = line
    lines = [pins.get(_name(d), d) for d in deps]
    if hardware not in CPU_HARDWARE:
        return lines
    # An extra index, not the only one: the other packages still come from PyPI. The +cpu local
    # version exists only there, so pip cannot fall back to the CUDA wheel.
    cpu = [f"{line}+cpu" if _name(line) in ("torch", "torchvision") and "==" in line else line for line in lines]
    return [f"--extra-index-url {TORCH_CPU_INDEX}", *cpu]


def front_matter(model_ids: list[str], title: str = "DeblurGAN-HF", hardware: str = "cpu-basic") -> dict:
    """The Space settings (https://huggingface.co/docs/hub/spaces-config-reference)."""
    license_text = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    return {
        "title": title,
        "emoji": "📷",
        "colorFrom": "gray",
        "colorTo": "blue",
        "sdk": "gradio",
        "sdk_version": importlib.metadata.version("gradio"),
        "python_version": f"{sys.version_info.major}.{sys.version_info.minor}",
        "app_file": "app.py",
        "models": list(model_ids),
        "preload_from_hub": list(model_ids),
        "suggested_hardware": hardware,
        "license": license_text.lower(),
        "short_description": "Motion deblurring with a before/after slider",
    }


def make_space(out: Path, model_ids: list[str], space_id: str, title: str = "DeblurGAN-HF", force: bool = False,
               hardware: str = "cpu-basic") -> Path:
    """Write the Space folder `out` (built in a temp folder beside it, then renamed into place).

    Args:
        out: folder to create; it must not exist unless `force`.
        model_ids: Hub ids of the models the Space uses (its `models:` metadata, preloaded at build).
        space_id: the Space's own id "user/space", for the API example in its README.
        title: Space title.
        force: replace an existing `out`.
        hardware: the Space hardware it is meant for (`suggested_hardware`); CPU ones get CPU torch.
    """
    out = Path(out).resolve()
    if not model_ids or any(not HUB_ID.fullmatch(m) for m in model_ids):
        raise ValueError(f"model_ids={model_ids!r}: give one or more Hub ids 'user/model'")
    if not HUB_ID.fullmatch(space_id or ""):
        raise ValueError(f"space_id={space_id!r}: give the Space's Hub id 'user/space'")
    if out.exists() and not force:
        raise FileExistsError(f"{out}: exists; pass --force to replace it")
    with atomic_write(out) as tmp:
        tmp.mkdir()
        shutil.copy2(ROOT / "app.py", tmp / "app.py")
        shutil.copytree(ROOT / "deblurgan_hf", tmp / "deblurgan_hf", ignore=IGNORE)
        shutil.copytree(ROOT / "examples", tmp / "examples", ignore=IGNORE)
        (tmp / "requirements.txt").write_text("\n".join(space_requirements(hardware=hardware)) + "\n")
        meta = yaml.safe_dump(front_matter(model_ids, title, hardware), sort_keys=False, allow_unicode=True)
        body = SPACE_BODY.format(title=title, model=model_ids[0], space=space_id)
        (tmp / "README.md").write_text(f"---\n{meta}---\n{body}", encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="Space folder to create")
    parser.add_argument("--space-id", required=True, help="the Space's Hub id, user/space (named in its README)")
    parser.add_argument("--model-id", action="append", required=True, help="Hub id of a model the Space uses (repeatable)")
    parser.add_argument("--title", default="DeblurGAN-HF")
    parser.add_argument("--hardware", default="cpu-basic", help="suggested_hardware (cpu-basic, t4-small, ...)")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    args = parser.parse_args(argv)
    out = make_space(args.out, args.model_id, args.space_id, args.title, args.force, args.hardware)
    print(f"Space folder: {out}\nupload: hf upload {args.space_id} {out} . --repo-type space")


if __name__ == "__main__":
    main()
