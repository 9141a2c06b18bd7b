"""Assemble a Hugging Face Space folder for the app: `python scripts/make_space.py OUT --model-id USER/MODEL`.

A Space reads its settings from the YAML front matter of its own README.md, while this project's
README.md is the project's; so the Space is a separate folder built from the project files:

    OUT/README.md          front matter (title, sdk gradio + the installed version, python_version,
                           app_file, models, license) and a short description
    OUT/app.py             copied unchanged
    OUT/deblurgan_hf/      the package (importable from the app's folder, no install needed)
    OUT/pretrained/        the bundled models (folders with a config.json)
    OUT/examples/          example images and their ATTRIBUTION.md
    OUT/requirements.txt   the package's runtime dependencies (pyproject), pinned as in requirements.txt;
                           gradio itself comes from the Space's sdk_version

Push it with `hf upload USER/SPACE OUT . --repo-type space` (or with git).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import shutil
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
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


def space_requirements(root: Path = ROOT) -> list[str]:
    """The package's runtime dependencies (pyproject), with the pins of requirements.txt where given."""
    deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {}
    req = root / "requirements.txt"
    if req.is_file():
        for line in req.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                pins[_name(line)] = line
    return [pins.get(_name(d), d) for d in deps]


def front_matter(model_ids: list[str], title: str = "DeblurGAN-HF") -> dict:
    """The Space settings (https://huggingface.co/docs/hub/spaces-config-reference)."""
    license_text = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]["text"]
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
        "license": license_text.lower(),
        "short_description": "Motion deblurring with a before/after slider",
    }


def make_space(out: Path, model_ids: list[str], title: str = "DeblurGAN-HF", force: bool = False) -> Path:
    """Write the Space folder `out` (built in a temp folder beside it, then renamed into place).

    Args:
        out: folder to create; it must not exist unless `force`.
        model_ids: Hub ids of the models the Space uses (its `models:` metadata).
        title: Space title.
        force: replace an existing `out`.
    """
    out = Path(out).resolve()
    if not model_ids or any(not re.fullmatch(r"[\w.-]+/[\w.-]+", m) for m in model_ids):
        raise ValueError(f"model_ids={model_ids!r}: give one or more Hub ids 'user/model'")
    if out.exists() and not force:
        raise FileExistsError(f"{out}: exists; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        shutil.copy2(ROOT / "app.py", tmp / "app.py")
        shutil.copytree(ROOT / "deblurgan_hf", tmp / "deblurgan_hf", ignore=IGNORE)
        shutil.copytree(ROOT / "examples", tmp / "examples", ignore=IGNORE)
        (tmp / "pretrained").mkdir()
        for config in sorted((ROOT / "pretrained").glob("*/config.json")):
            shutil.copytree(config.parent, tmp / "pretrained" / config.parent.name, ignore=IGNORE)
        (tmp / "requirements.txt").write_text("\n".join(space_requirements()) + "\n")
        meta = yaml.safe_dump(front_matter(model_ids, title), sort_keys=False, allow_unicode=True)
        body = SPACE_BODY.format(title=title, model=model_ids[0], space="USER/SPACE")
        (tmp / "README.md").write_text(f"---\n{meta}---\n{body}", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="Space folder to create")
    parser.add_argument("--model-id", action="append", required=True, help="Hub id of a model the Space uses (repeatable)")
    parser.add_argument("--title", default="DeblurGAN-HF")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    args = parser.parse_args(argv)
    out = make_space(args.out, args.model_id, args.title, args.force)
    print(f"Space folder: {out}")


if __name__ == "__main__":
    main()
