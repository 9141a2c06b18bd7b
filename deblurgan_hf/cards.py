"""What model cards say about data, lineage and links, in the Hub's terms.

The Hub links a card's `datasets`, `base_model` and model-index `dataset.type` to Hub pages, so
these are Hub ids, never local paths. Data sources (`deblurgan_hf.data` strings) map to them here:
`hub:` sources name their own id; the public data sets the bundled recipes read from local folders
map through `LOCAL_DATASETS`; anything else is left out of the metadata (and named in the card text).
"""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

# The Hub namespace this project publishes its models and its copy of GOPRO_Large under
# (`scripts/gopro_to_hub.py --push_to_hub deblurgan-hf/gopro-large`); a bundled model folder
# NAME is published as HUB_NAMESPACE/NAME.
HUB_NAMESPACE = "deblurgan-hf"
GOPRO_DATASET = f"{HUB_NAMESPACE}/gopro-large"
# DeblurGAN (Kupyn et al., CVPR 2018), the method this library is named after.
PAPER_URL = "https://arxiv.org/abs/1711.07064"
# The paper of each generator family, linked from the card of a model that uses it.
GENERATOR_PAPERS = {
    "resnet": "https://arxiv.org/abs/1711.07064",  # DeblurGAN
    "multiscale": "https://arxiv.org/abs/1612.02177",  # Nah et al., CVPR 2017
    "nafnet": "https://arxiv.org/abs/2204.04676",  # Chen et al., "Simple Baselines for Image Restoration"
}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


@dataclass(frozen=True)
class HubDataset:
    id: str
    split: str | None = None
    name: str | None = None  # what the card shows; the id when None


# Local folders (the part of the path that identifies them) of public data sets with a Hub copy.
# GOPRO_Large's real pairs here all come from its test split (see ../shared/data/MANIFEST.md).
LOCAL_DATASETS: dict[str, HubDataset] = {
    "gopro_real/val": HubDataset(GOPRO_DATASET, "test", "GOPRO_Large test, sequence GOPR0384_11_05 (11 real pairs)"),
    "gopro_real/train": HubDataset(GOPRO_DATASET, "test", "GOPRO_Large test, sequences GOPR0384_11_00, GOPR0396_11_00"),
    "gopro_real": HubDataset(GOPRO_DATASET, "test", "GOPRO_Large test (real pairs)"),
    "sharp/urban100": HubDataset("eugenesiow/Urban100", None, "Urban100"),
}


def project_urls() -> dict[str, str]:
    """`[project.urls]` of the installed package (pyproject.toml), e.g. {"Paper": ...}; {} if not installed."""
    try:
        entries = importlib.metadata.metadata("deblurgan-hf").get_all("Project-URL") or []
    except importlib.metadata.PackageNotFoundError:
        return {}
    return dict(tuple(part.strip() for part in entry.split(",", 1)) for entry in entries if "," in entry)


def hub_dataset(source: str) -> HubDataset | None:
    """The Hub data set behind a data source string, or None when it has no known Hub id."""
    kind, sep, rest = str(source).partition(":")
    if not sep or "/" in kind or "\\" in kind:  # no KIND: prefix (a bare folder, kind detected by data.py)
        kind, rest = "", str(source)
    location, _, query = rest.partition("?")
    options = dict(parse_qsl(query))
    if kind == "hub":
        return HubDataset(location, options.get("split"))
    if kind == "gopro":
        return HubDataset(GOPRO_DATASET, options.get("split", "train"), f"GOPRO_Large {options.get('split', 'train')}")
    parts = Path(location).resolve().as_posix() if location else ""
    for key, dataset in LOCAL_DATASETS.items():  # most specific first (dict order)
        if parts.endswith("/" + key):
            return dataset
    return None


def hub_datasets(sources: list[str] | tuple[str, ...]) -> list[str]:
    """The distinct Hub ids of `sources`, in order (for the card's `datasets` list)."""
    ids: list[str] = []
    for source in sources:
        found = hub_dataset(source)
        if found and found.id not in ids:
            ids.append(found.id)
    return ids


def base_model_id(init_from: str | None) -> str | None:
    """The Hub id of the model a run was fine-tuned from (`--init_from`): a Hub id as given; a bundled
    model folder (also under its old `pretrained/NAME` path) as HUB_NAMESPACE/NAME; None otherwise."""
    if not init_from:
        return None
    from . import PRETRAINED_DIR

    path = Path(init_from)
    bundled = PRETRAINED_DIR / path.name
    if (bundled / "config.json").is_file() and (path.resolve() == bundled.resolve() or path.parent.name == "pretrained"):
        return f"{HUB_NAMESPACE}/{path.name}"
    if HUB_ID.match(str(init_from)) and not path.exists():
        return str(init_from)
    return None


def eval_dataset(sources: list[str] | tuple[str, ...]) -> HubDataset:
    """The data set a model-index result is filed under, for a metric averaged over `sources`.

    One Hub data set: its id and split. Anything else (local data with no Hub copy, or a mean over
    several data sets) is filed as `imagefolder`, the `datasets` loader for local image folders,
    named by the folders' last two path parts, so no local path reaches the card.
    """
    found = {hub_dataset(s) for s in sources}
    if len(found) == 1 and None not in found:
        return next(iter(found))
    names = []
    for source in sources:
        dataset = hub_dataset(source)
        location = str(source).partition(":")[2].partition("?")[0] if ":" in str(source) else str(source)
        names.append(dataset.name or dataset.id if dataset else "/".join(Path(location).parts[-2:]))
    return HubDataset("imagefolder", "validation", " + ".join(names))
