"""Paired deblurring data: loaders (``datasets``), paired transforms and the training/validation datasets.

Value-range convention (the whole project): images inside are float32 torch tensors of shape (3,H,W)
or (N,3,H,W), RGB, values in [0, 1]. ``uint8``/PIL exist only at the edges (files, Hub datasets).

Sources (`load_pairs`, and the ``sources`` lists of `build_train_dataset` / `build_val_dataset`) are
strings a CLI flag can carry, ``KIND:LOCATION[?key=value&...]``:

==========  =====================================================================================
``hub``     a Hub dataset id, ``hub:user/name?split=train&blur_column=input&sharp_column=target``
            (also a local folder in Hub layout: parquet files or an imagefolder)
``disk``    a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``
``gopro``   the GOPRO_Large layout ``{train,test}/<SEQ>/{blur,blur_gamma,sharp}/*.png``;
            ``?blur=blur`` (default; the sRGB average all papers report on) or ``?blur=blur_gamma``
``paired``  ``blur/`` and ``sharp/`` subfolders with matching file names, or an imagefolder with a
            ``metadata.jsonl`` holding ``blur_file_name`` and ``sharp_file_name``
``sharp``   a folder of sharp photos only (directly inside it): blur is synthesised on the fly
==========  =====================================================================================

Without a ``KIND:`` prefix the kind is detected from what the folder holds.

Determinism: a training item depends only on (seed, epoch, index): its crop, flips and synthetic blur
come from a ``torch.Generator`` seeded from that triple, so resumed runs and any number of DataLoader
workers see the same samples. Call ``dataset.set_epoch(epoch)`` before ``iter(loader)`` each epoch; the
epoch lives in shared memory, so persistent DataLoader workers see it too.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np
import torch
from PIL import Image as PILImage

from ._extras import needs
from .files import atomic_write_text
from .imaging import IMAGE_EXTENSIONS, to_uint8
from .blur import BlurSynthesizer

__all__ = [
    "IMAGE_EXTENSIONS",
    "SOURCE_KINDS",
    "SourceSpec",
    "parse_source",
    "detect_kind",
    "load_pairs",
    "PairedTransform",
    "PairedTrainDataset",
    "PairedValDataset",
    "build_train_dataset",
    "build_val_dataset",
    "check_enough",
    "image_to_tensor",
    "tensor_to_image",
]

SOURCE_KINDS = ("hub", "disk", "gopro", "paired", "sharp")
GOPRO_BLUR_DIRS = ("blur", "blur_gamma")


# ----------------------------------------------------------------------------------------------
# Source specs
# ----------------------------------------------------------------------------------------------

@dataclass
class SourceSpec:
    """A parsed source string: ``kind`` (None: auto-detect), ``location`` and ``options``."""

    kind: str | None
    location: str
    options: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        opts = "&".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.kind + ':' if self.kind else ''}{self.location}{'?' + opts if opts else ''}"


def parse_source(source: str | os.PathLike) -> SourceSpec:
    """Parse ``KIND:LOCATION?key=value&...`` (the prefix and the options are optional)."""
    text = os.fspath(source)
    kind = None
    head, sep, rest = text.partition(":")
    if sep and head in SOURCE_KINDS:
        kind, text = head, rest
    elif sep and head.isalpha() and len(head) > 1 and not rest.startswith("\\"):
        raise ValueError(f"unknown source kind {head!r} in {os.fspath(source)!r}; expected one of {SOURCE_KINDS}")
    location, _, query = text.partition("?")
    if not location:
        raise ValueError(f"empty location in source {os.fspath(source)!r}")
    return SourceSpec(kind, location, dict(parse_qsl(query, keep_blank_values=True)))


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _describe(folder: Path, limit: int = 8) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    return ", ".join(names[:limit]) + (f", ... ({len(names)} entries)" if len(names) > limit else "") or "nothing"


def detect_kind(location: str | os.PathLike) -> str:
    """Guess the source kind of a local folder (or ``hub`` for a non-existing ``user/name``)."""
    path = Path(location)
    if not path.exists():
        parts = os.fspath(location).split("/")
        if len(parts) == 2 and all(parts) and not os.fspath(location).startswith((".", "/", "~")):
            return "hub"
        raise FileNotFoundError(f"data source {os.fspath(location)!r} does not exist (and is not a Hub id 'user/name')")
    if not path.is_dir():
        raise ValueError(f"data source {path} is a file; expected a folder ({', '.join(SOURCE_KINDS)})")
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        return "disk"
    if (path / "blur").is_dir() and (path / "sharp").is_dir():
        return "paired"
    if (path / "metadata.jsonl").exists():
        return "paired"
    for split in ("train", "test"):
        if (path / split).is_dir() and any((seq / "sharp").is_dir() for seq in (path / split).iterdir() if seq.is_dir()):
            return "gopro"
    if any(path.rglob("*.parquet")):
        return "hub"
    if _images_in(path):
        return "sharp"
    raise ValueError(
        f"cannot tell what kind of data {path} holds: found {_describe(path)}; expected blur/ + sharp/ folders "
        "(paired), a metadata.jsonl (paired), train|test/<SEQ>/sharp (gopro), a save_to_disk folder (disk), "
        f"parquet files (hub) or images {IMAGE_EXTENSIONS} (sharp)"
    )


# ----------------------------------------------------------------------------------------------
# Image IO and verification
# ----------------------------------------------------------------------------------------------

def _open_checked(source: str | Path | bytes, label: str) -> tuple[int, int]:
    """Decode an image fully once and return its (width, height); clear error naming `label` if it
    does not decode. PIL's ``verify`` alone passes a truncated JPEG, or a PNG whose compressed data
    is corrupt under valid checksums, which then stopped training at the step that first read it.
    Images that decoded are remembered (`_DecodeChecks`), so later runs only read their headers."""
    try:
        key = _DECODED.key(source)
        known = _DECODED.get(key)
        if known is not None:
            return known
        with PILImage.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            im.verify()  # checksums first: cheap, and its message is the clearer one
        with PILImage.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            im.load()
            _DECODED.add(key, im.size)
            return im.size
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {label}") from None
    except Exception as exc:  # PIL raises many types for broken files
        raise ValueError(f"cannot read image {label}: {type(exc).__name__}: {exc}") from None


class _DecodeChecks:
    """Images known to decode completely: a file's path, size and mtime (or the sha256 of in-memory
    bytes) -> (width, height), kept in ``$DEBLURGAN_DATA_CACHE/decoded-images.json`` (default
    ``~/.cache/deblurgan-hf``) so each image is fully decoded once, not at every run. Written to a
    temp name and renamed: concurrent writers may drop entries, never corrupt the file."""

    MAX_ENTRIES = 200_000

    def __init__(self) -> None:
        self.known: dict[str, list[int]] | None = None
        self.added = 0

    @property
    def path(self) -> Path:
        folder = os.environ.get("DEBLURGAN_DATA_CACHE") or Path(
            os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "deblurgan-hf"
        return Path(folder) / "decoded-images.json"

    @staticmethod
    def key(source: str | Path | bytes) -> str:
        if isinstance(source, bytes):
            return "sha256:" + hashlib.sha256(source).hexdigest()
        stat = os.stat(source)
        return f"{os.path.realpath(source)}|{stat.st_size}|{stat.st_mtime_ns}"

    def _load(self) -> dict[str, list[int]]:
        if self.known is None:
            self.known = self._read()
        return self.known

    def _read(self) -> dict[str, list[int]]:
        try:
            known = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return known if isinstance(known, dict) else {}

    def get(self, key: str) -> tuple[int, int] | None:
        size = self._load().get(key)
        return (int(size[0]), int(size[1])) if isinstance(size, list) and len(size) == 2 else None

    def add(self, key: str, size: tuple[int, int]) -> None:
        self._load()[key] = list(size)
        self.added += 1

    def save(self) -> None:
        if not self.added:
            return
        path = self.path
        # Keep what other processes added meanwhile; drop files that are gone (temporary datasets).
        known = {k: v for k, v in {**self._read(), **self._load()}.items()
                 if k.startswith("sha256:") or os.path.exists(k.rsplit("|", 2)[0])}
        known = dict(list(known.items())[-self.MAX_ENTRIES:])
        try:
            atomic_write_text(path, json.dumps(known))
            self.known, self.added = known, 0
        except OSError as err:  # a read-only home only costs the full decode again next run
            warnings.warn(f"could not save the decoded-image cache {path}: {err}", stacklevel=2)


_DECODED = _DecodeChecks()


def _load_rgb(value: dict | PILImage.Image | str) -> np.ndarray:
    """Decode an Image-column value (``{"path", "bytes"}`` with decode=False) to an (H,W,3) uint8 array."""
    if isinstance(value, PILImage.Image):
        return np.asarray(value.convert("RGB"))
    if isinstance(value, dict):
        value = io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"]
    with PILImage.open(value) as im:
        return np.asarray(im.convert("RGB"))


def image_to_tensor(image: np.ndarray | PILImage.Image) -> torch.Tensor:
    """(H,W,3) uint8 array or PIL image -> (3,H,W) float32 in [0, 1]."""
    arr = np.asarray(image.convert("RGB")) if isinstance(image, PILImage.Image) else image
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an (H,W,3) uint8 array or a PIL image, got {arr.dtype} array of shape {arr.shape}")
    return torch.from_numpy(np.array(arr, dtype=np.float32)).div_(255).permute(2, 0, 1).contiguous()


def tensor_to_image(tensor: torch.Tensor) -> PILImage.Image:
    """(3,H,W) float in [0, 1] -> PIL RGB image (rounded to uint8)."""
    arr = to_uint8(tensor).permute(1, 2, 0).cpu().numpy()
    return PILImage.fromarray(arr)


# ----------------------------------------------------------------------------------------------
# Loaders -> datasets.Dataset with Image columns "blur", "sharp" and a string column "name"
# ----------------------------------------------------------------------------------------------

def _pairs_dataset(blur: list[str] | None, sharp: list[str], names: list[str]):
    with needs("train", "eval"):
        import datasets

    data = {"sharp": sharp, "name": names}
    features = {"sharp": datasets.Image(), "name": datasets.Value("string")}
    if blur is not None:
        data = {"blur": blur, **data}
        features = {"blur": datasets.Image(), **features}
    return datasets.Dataset.from_dict(data, features=datasets.Features(features))


def _check_pair_files(blur: list[Path], sharp: list[Path], verify: bool) -> None:
    for b, s in zip(blur, sharp):
        if not verify:
            for p in (b, s):
                if not p.is_file():
                    raise FileNotFoundError(f"image file not found: {p}")
            continue
        bs, ss = _open_checked(b, str(b)), _open_checked(s, str(s))
        if bs != ss:
            raise ValueError(f"pair size mismatch: {b} is {bs[0]}x{bs[1]} but {s} is {ss[0]}x{ss[1]}")


def _load_paired_folder(root: Path, verify: bool):
    meta = root / "metadata.jsonl"
    if (root / "blur").is_dir() and (root / "sharp").is_dir():
        blur_files = {p.name: p for p in _images_in(root / "blur")}
        sharp_files = {p.name: p for p in _images_in(root / "sharp")}
        if not blur_files and not sharp_files:
            raise ValueError(f"empty paired folder {root}: no images {IMAGE_EXTENSIONS} in blur/ or sharp/")
        for a, b, name_a, name_b in ((blur_files, sharp_files, "blur", "sharp"), (sharp_files, blur_files, "sharp", "blur")):
            lonely = sorted(set(a) - set(b))
            if lonely:
                more = f" (and {len(lonely) - 1} more)" if len(lonely) > 1 else ""
                raise FileNotFoundError(f"{root / name_a / lonely[0]} has no partner {root / name_b / lonely[0]}{more}")
        names = sorted(blur_files)
        blur, sharp = [blur_files[n] for n in names], [sharp_files[n] for n in names]
        stems = [Path(n).stem for n in names]
    elif meta.exists():
        blur, sharp, stems = [], [], []
        for lineno, line in enumerate(meta.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{meta} line {lineno}: invalid JSON ({exc})") from None
            missing = [k for k in ("blur_file_name", "sharp_file_name") if k not in row]
            if missing:
                raise ValueError(f"{meta} line {lineno}: missing field(s) {missing}; has {sorted(row)}; "
                                 "expected 'blur_file_name' and 'sharp_file_name'")
            b, s = root / row["blur_file_name"], root / row["sharp_file_name"]
            for p, other in ((b, s), (s, b)):
                if not p.is_file():
                    raise FileNotFoundError(f"{meta} line {lineno}: {p} not found (partner of {other})")
            blur.append(b)
            sharp.append(s)
            stems.append(str(row.get("name", Path(row["sharp_file_name"]).with_suffix("").as_posix())))
        if not blur:
            raise ValueError(f"empty paired dataset: {meta} lists no pairs")
    else:
        raise ValueError(f"{root} is not a paired folder: found {_describe(root)}; expected blur/ and sharp/ "
                         "subfolders or a metadata.jsonl with blur_file_name and sharp_file_name")
    _check_pair_files(blur, sharp, verify)
    return _pairs_dataset([str(p) for p in blur], [str(p) for p in sharp], stems)


def _load_gopro(root: Path, split: str, blur_dir: str, verify: bool):
    if blur_dir not in GOPRO_BLUR_DIRS:
        raise ValueError(f"GOPRO_Large blur folder must be one of {GOPRO_BLUR_DIRS}, got {blur_dir!r}")
    split_dir = root / split
    if not split_dir.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise FileNotFoundError(f"GOPRO_Large split folder {split_dir} not found; {root} has {found}; expected train/ or test/")
    blur, sharp, names = [], [], []
    for seq in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        bdir, sdir = seq / blur_dir, seq / "sharp"
        if not bdir.is_dir() or not sdir.is_dir():
            raise FileNotFoundError(f"GOPRO_Large sequence {seq} lacks {blur_dir}/ or sharp/ (has {_describe(seq)})")
        bfiles = {p.name for p in _images_in(bdir)}
        sfiles = {p.name for p in _images_in(sdir)}
        for a, b, da, db in ((bfiles, sfiles, bdir, sdir), (sfiles, bfiles, sdir, bdir)):
            lonely = sorted(a - b)
            if lonely:
                raise FileNotFoundError(f"{da / lonely[0]} has no partner {db / lonely[0]}")
        for name in sorted(bfiles):
            blur.append(bdir / name)
            sharp.append(sdir / name)
            names.append(f"{seq.name}-{Path(name).stem}")
    if not blur:
        raise ValueError(f"empty GOPRO_Large split {split_dir}: no <SEQ>/{blur_dir}/*.png pairs")
    _check_pair_files(blur, sharp, verify)
    return _pairs_dataset([str(p) for p in blur], [str(p) for p in sharp], names)


def _load_sharp_folder(root: Path, verify: bool):
    files = _images_in(root)
    if not files:
        raise ValueError(f"empty folder {root}: no images {IMAGE_EXTENSIONS} (found {_describe(root)})")
    for p in files:
        if verify:
            _open_checked(p, str(p))
    return _pairs_dataset(None, [str(p) for p in files], [p.stem for p in files])


def _standardise(ds, label: str, blur_column: str | None, sharp_column: str, name_column: str | None):
    """Rename/validate the columns of a datasets.Dataset to blur/sharp/name Image/Image/string."""
    with needs("train", "eval"):
        import datasets

    cols = list(ds.column_names)
    wanted = {"sharp": sharp_column}
    if blur_column is not None:
        wanted["blur"] = blur_column
    for role, col in wanted.items():
        if col not in cols:
            raise ValueError(f"{label} has no column {col!r} for the {role} images (columns: {cols}); "
                             f"pass {role}_column=... (or '?{role}_column=NAME' in the source string)")
        if not isinstance(ds.features[col], datasets.Image):
            raise ValueError(f"{label} column {col!r} is {ds.features[col]!r}, expected an Image feature")
    if name_column is not None and name_column not in cols:
        raise ValueError(f"{label} has no column {name_column!r} for names (columns: {cols})")
    keep = list(wanted.values()) + ([name_column] if name_column else [])
    ds = ds.select_columns(keep)
    ds = ds.rename_columns({col: role for role, col in wanted.items() if col != role} | (
        {name_column: "name"} if name_column and name_column != "name" else {}))
    if "name" not in ds.column_names:
        ds = ds.add_column("name", [f"{i:06d}" for i in range(len(ds))])
    elif ds.features["name"] != datasets.Value("string"):
        ds = ds.cast_column("name", datasets.Value("string"))
    order = [c for c in ("blur", "sharp", "name") if c in ds.column_names]
    ds = ds.select_columns(order)
    if len(ds) == 0:
        raise ValueError(f"{label} is empty")
    return ds


def _verify_dataset(ds, label: str) -> None:
    """Decode every image (once, see `_open_checked`) and check pair sizes."""
    with needs("train", "eval"):
        import datasets

    raw = ds.cast_column("sharp", datasets.Image(decode=False))
    if "blur" in ds.column_names:
        raw = raw.cast_column("blur", datasets.Image(decode=False))
    for i, row in enumerate(raw):
        sizes = {}
        for col in ("blur", "sharp"):
            if col in row:
                v = row[col]
                where = f"{label} row {i} ({row['name']}) column {col!r}" + (f" ({v['path']})" if v.get("path") else "")
                sizes[col] = _open_checked(v["bytes"] if v.get("bytes") else v["path"], where)
        if len(sizes) == 2 and sizes["blur"] != sizes["sharp"]:
            raise ValueError(f"{label} row {i} ({row['name']}): blur is {sizes['blur'][0]}x{sizes['blur'][1]} "
                             f"but sharp is {sizes['sharp'][0]}x{sizes['sharp'][1]}")


def _split_candidates(split: str) -> tuple[str, ...]:
    # validation sets are called test, validation or val on the Hub
    return ("test", "validation", "val") if split == "test" else (split,)


def _saving_decode_checks(fn):
    """Save the images `fn` found decodable, also when it stops at a broken one (only that one is
    decoded again next run)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            _DECODED.save()

    return wrapper


@_saving_decode_checks
def load_pairs(
    source: str | os.PathLike,
    *,
    split: str | None = None,
    blur_column: str | None = None,
    sharp_column: str | None = None,
    name_column: str | None = None,
    gopro_blur: str | None = None,
    sharp_only: bool | None = None,
    verify: bool = True,
    revision: str | None = None,
):
    """Load a paired (or sharp-only) deblurring dataset as a ``datasets.Dataset``.

    Args:
        source: a source string (see the module docstring), e.g. ``"paired:../shared/data/gopro_real/val"``.
        split: split for hub/disk/gopro sources (default ``"train"``; ``"test"`` also accepts a
            ``validation`` or ``val`` split of hub/disk datasets; the spec's ``?split=`` wins).
        blur_column, sharp_column, name_column: column names in hub/disk datasets (default
            ``blur``/``sharp``/``name`` if present).
        gopro_blur: ``"blur"`` (sRGB average; papers use it; default) or ``"blur_gamma"``.
        sharp_only: hub/disk: use only the sharp column and synthesise blur (``None``: a dataset without
            a blur column is an error unless this is True).
        verify: decode every image fully at load time and check pair sizes; images that decoded are
            remembered (``~/.cache/deblurgan-hf/decoded-images.json``), so that happens once per file.
        revision: Hub dataset revision.

    Returns:
        ``datasets.Dataset`` with Image columns ``blur`` (absent for sharp-only sources) and ``sharp``,
        and a string column ``name``.
    """
    spec = parse_source(source)
    opts = dict(spec.options)
    explicit_split = "split" in opts
    split = opts.pop("split", None) or split or "train"
    blur_column = opts.pop("blur_column", None) or blur_column
    sharp_column = opts.pop("sharp_column", None) or sharp_column or "sharp"
    name_column = opts.pop("name_column", None) or name_column
    gopro_blur = opts.pop("blur", None) or gopro_blur or "blur"
    revision = opts.pop("revision", None) or revision
    if "sharp_only" in opts:
        sharp_only = opts.pop("sharp_only").lower() in ("1", "true", "yes")
    if opts:
        raise ValueError(f"unknown option(s) {sorted(opts)} in source {os.fspath(source)!r}; allowed: split, "
                         "blur_column, sharp_column, name_column, blur (gopro), revision, sharp_only")
    kind = spec.kind or detect_kind(spec.location)
    label = f"{kind}:{spec.location}"

    if kind in ("paired", "gopro", "sharp"):
        root = Path(spec.location).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"{kind} source folder {root} not found")
        if kind == "paired":
            return _load_paired_folder(root, verify)
        if kind == "gopro":
            return _load_gopro(root, split, gopro_blur, verify)
        return _load_sharp_folder(root, verify)

    with needs("train", "eval"):
        import datasets

    if kind == "disk":
        root = Path(spec.location).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"save_to_disk folder {root} not found")
        ds = datasets.load_from_disk(str(root))
    elif kind == "hub":
        # a Hub id, or a local folder in Hub layout (parquet / imagefolder), both via load_dataset
        ds = datasets.load_dataset(spec.location, revision=revision)
    else:
        raise ValueError(f"unknown source kind {kind!r}; expected one of {SOURCE_KINDS}")
    if isinstance(ds, datasets.DatasetDict):
        candidates = [split] if explicit_split else list(_split_candidates(split))
        found = next((c for c in candidates if c in ds), None)
        if found is None:
            raise ValueError(f"{label} has no split {' or '.join(map(repr, candidates))}; splits: {list(ds)}; "
                             "choose one with '?split=NAME' in the source string")
        ds = ds[found]
    cols = ds.column_names
    if sharp_only:
        blur_column = None
    elif blur_column is None:
        if "blur" not in cols and sharp_only is None:
            # never silently turn a paired dataset with other column names into a sharp-only one
            raise ValueError(f"{label} has no column 'blur' (columns: {cols}); pass blur_column=NAME "
                             "('?blur_column=NAME'), or sharp_only=True ('?sharp_only=1') to synthesise blur")
        blur_column = "blur"
    ds = _standardise(ds, label, blur_column, sharp_column, name_column or ("name" if "name" in cols else None))
    if verify:
        _verify_dataset(ds, label)
    return ds


# ----------------------------------------------------------------------------------------------
# Paired transforms
# ----------------------------------------------------------------------------------------------

class PairedTransform:
    """The same random crop, flips and 90-degree rotation applied to every image of a pair.

    Args:
        crop_size: side of the square crop (``None``: no crop).
        flips: random horizontal and vertical flips.
        rot90: random rotation by a multiple of 90 degrees (only for square crops).
    """

    def __init__(self, crop_size: int | None, flips: bool = True, rot90: bool = True):
        if crop_size is not None and crop_size < 1:
            raise ValueError(f"crop_size must be >= 1, got {crop_size}")
        self.crop_size, self.flips, self.rot90 = crop_size, flips, rot90

    def __repr__(self) -> str:
        return f"PairedTransform(crop_size={self.crop_size}, flips={self.flips}, rot90={self.rot90})"

    def sample_crop(self, height: int, width: int, generator: torch.Generator | None) -> tuple[int, int]:
        """Top-left corner (top, left) of a random crop of an image of this size."""
        c = self.crop_size
        if c is None:
            return 0, 0
        if height < c or width < c:
            raise ValueError(f"image {width}x{height} is smaller than crop_size {c}")
        top = int(torch.randint(0, height - c + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - c + 1, (1,), generator=generator))
        return top, left

    def sample_geometry(self, generator: torch.Generator | None) -> tuple[bool, bool, int]:
        draws = torch.randint(0, 4, (3,), generator=generator).tolist()  # always drawn: fixed stream
        return (self.flips and draws[0] % 2 == 1, self.flips and draws[1] % 2 == 1,
                draws[2] if self.rot90 and self.crop_size is not None else 0)

    @staticmethod
    def apply_geometry(image: torch.Tensor, geometry: tuple[bool, bool, int]) -> torch.Tensor:
        hflip, vflip, rot = geometry
        if hflip:
            image = image.flip(-1)
        if vflip:
            image = image.flip(-2)
        if rot:
            image = torch.rot90(image, rot, (-2, -1))
        return image.contiguous()

    def __call__(self, *images: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """Transform (3,H,W) images of the same size identically."""
        h, w = images[0].shape[-2:]
        for im in images[1:]:
            if im.shape[-2:] != (h, w):
                raise ValueError(f"paired images differ in size: {tuple(images[0].shape)} vs {tuple(im.shape)}")
        top, left = self.sample_crop(h, w, generator)
        geometry = self.sample_geometry(generator)
        c = self.crop_size
        out = []
        for im in images:
            if c is not None:
                im = im[..., top : top + c, left : left + c]
            out.append(self.apply_geometry(im, geometry))
        return tuple(out)


# ----------------------------------------------------------------------------------------------
# torch datasets
# ----------------------------------------------------------------------------------------------

def item_seed(*keys: int | str) -> int:
    """A 63-bit seed from a tuple of keys, identical in every process (unlike ``hash``).

    Integer-like keys (numpy, 0-d tensors) count as Python ints: ``ds[np.int64(3)]`` is ``ds[3]``.
    """
    keys = tuple(k if isinstance(k, str) else int(k) for k in keys)
    digest = hashlib.blake2b(repr(keys).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


@dataclass
class _Part:
    label: str
    ds: object  # datasets.Dataset with decode=False image columns
    paired: bool
    sizes: list[tuple[int, int]]  # (width, height) per row


def _image_sizes(ds, column: str) -> list[tuple[int, int]]:
    sizes = []
    for v in ds[column]:
        src = io.BytesIO(v["bytes"]) if v.get("bytes") else v["path"]
        with PILImage.open(src) as im:
            sizes.append(im.size)
    return sizes


def _load_part(source: str, split: str | None, verify: bool = True) -> _Part:
    with needs("train", "eval"):
        import datasets

    ds = load_pairs(source, split=split, verify=verify)
    paired = "blur" in ds.column_names
    for col in ("blur", "sharp") if paired else ("sharp",):
        ds = ds.cast_column(col, datasets.Image(decode=False))
    return _Part(os.fspath(source), ds, paired, _image_sizes(ds, "sharp"))


class _DecodeCache:
    """Per-process LRU of decoded uint8 images, bounded in bytes.

    PNG decoding of a 1024-pixel photo costs about as much as synthesising its blurred crop; the
    training sets here (a few hundred MB decoded) fit, so each worker decodes each image once (with
    ``persistent_workers=True``; otherwise once per epoch).
    """

    def __init__(self, max_bytes: int):
        from collections import OrderedDict

        self.max_bytes, self.bytes, self.items = max_bytes, 0, OrderedDict()

    def get(self, key: tuple, value: dict) -> np.ndarray:
        arr = self.items.get(key)
        if arr is not None:
            self.items.move_to_end(key)
            return arr
        arr = _load_rgb(value)
        if arr.nbytes <= self.max_bytes:
            self.items[key] = arr
            self.bytes += arr.nbytes
            while self.bytes > self.max_bytes:
                self.bytes -= self.items.popitem(last=False)[1].nbytes
        return arr

    def __getstate__(self) -> dict:  # workers start with an empty cache, not a pickled copy
        return {"max_bytes": self.max_bytes}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["max_bytes"])


class _SyntheticMixin:
    synth: BlurSynthesizer

    def _synthesize(self, sharp: np.ndarray, box: tuple[int, int, int, int] | None, generator: torch.Generator):
        """Blur a sharp (H,W,3) uint8 image, or the box (top, left, h, w) of it, as the full frame.

        The box is cut with a margin of context (so its blur does not see the crop border) and only the
        box is rendered, with motion relative to the full frame (diagonal and centre).
        """
        fh, fw = sharp.shape[:2]
        top, left, bh, bw = box if box is not None else (0, 0, fh, fw)
        diag = math.hypot(fh, fw)
        synth = self.synth.pick(generator)
        paths = synth.sample_paths(1, generator)
        m = synth.margin(diag, paths)
        t0, l0 = max(top - m, 0), max(left - m, 0)
        t1, l1 = min(top + bh + m, fh), min(left + bw + m, fw)
        region = image_to_tensor(sharp[t0:t1, l0:l1])
        centre = torch.tensor([(fw - 1) / 2 - l0, (fh - 1) / 2 - t0])
        out_box = (top - t0, left - l0, bh, bw)
        if synth.mode == "kernel":
            blurred, _ = synth(region, generator, output_box=out_box)
        else:
            blurred, _ = synth(region, generator, frame_diag=diag, center=centre, paths=paths, output_box=out_box)
        return blurred, region[:, top - t0 : top - t0 + bh, left - l0 : left - l0 + bw].contiguous()


class PairedTrainDataset(_SyntheticMixin, torch.utils.data.Dataset):
    """Random paired crops from real pairs and sharp-only sources (blur synthesised per item).

    An item depends only on (seed, epoch, index). With ``real_fraction`` the epoch has a fixed length
    (all rows of all sources) split into ``round(real_fraction * length)`` real slots and synthetic
    slots; each kind cycles through its rows, starting at an epoch-dependent offset.
    """

    def __init__(self, parts: list[_Part], *, crop_size: int, blur: dict | None, real_fraction: float | None, seed: int,
                 flips: bool = True, rot90: bool = True, cache_bytes: int = 1 << 30):
        self.parts, self.seed = parts, seed
        # in shared memory, so set_epoch reaches DataLoader workers even with persistent_workers=True
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self.cache = _DecodeCache(cache_bytes)
        self.crop_size = crop_size
        self.transform = PairedTransform(crop_size, flips=flips, rot90=rot90)
        self.synth = BlurSynthesizer.from_config(blur)
        self.real_rows = [(p, r) for p, part in enumerate(parts) if part.paired for r in range(len(part.ds))]
        self.synth_rows = [(p, r) for p, part in enumerate(parts) if not part.paired for r in range(len(part.ds))]
        self.length = len(self.real_rows) + len(self.synth_rows)
        if real_fraction is None:
            self.n_real = len(self.real_rows)
        else:
            if not 0 <= real_fraction <= 1:
                raise ValueError(f"real_fraction must be in [0, 1], got {real_fraction}")
            if real_fraction > 0 and not self.real_rows:
                raise ValueError(f"real_fraction={real_fraction} but no source has real pairs (blur + sharp)")
            if real_fraction < 1 and not self.synth_rows:
                raise ValueError(f"real_fraction={real_fraction} but no sharp-only source to synthesise from")
            self.n_real = int(round(real_fraction * self.length))
        self.real_fraction = real_fraction

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (new crops and blur, and the real/synthetic row offsets).

        Call it before ``iter(loader)``; workers (also persistent ones) read it from shared memory.
        """
        self._epoch.fill_(int(epoch))

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    def __len__(self) -> int:
        return self.length

    def row(self, index: int, epoch: int | None = None) -> tuple[int, int]:
        """(part, row) that item ``index`` of ``epoch`` (default: the current one) reads."""
        epoch = self.epoch if epoch is None else epoch
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of {self.length} items")
        if self.real_fraction is None:
            rows = self.real_rows + self.synth_rows
            return rows[index]
        if index < self.n_real:
            return self.real_rows[(index + epoch * self.n_real) % len(self.real_rows)]
        n_syn = self.length - self.n_real
        return self.synth_rows[(index - self.n_real + epoch * n_syn) % len(self.synth_rows)]

    def __getitem__(self, index: int) -> dict:
        index, epoch = int(index), self.epoch
        p, r = self.row(index, epoch)
        part = self.parts[p]
        g = torch.Generator().manual_seed(item_seed(self.seed, epoch, index))
        row = part.ds[r]
        sharp = self.cache.get((p, r, "sharp"), row["sharp"])
        h, w = sharp.shape[:2]
        top, left = self.transform.sample_crop(h, w, g)
        c = self.crop_size
        if part.paired:
            blur = self.cache.get((p, r, "blur"), row["blur"])
            if blur.shape != sharp.shape:
                raise ValueError(f"{part.label} row {r} ({row['name']}): blur {blur.shape} != sharp {sharp.shape}")
            b = image_to_tensor(blur[top : top + c, left : left + c])
            s = image_to_tensor(sharp[top : top + c, left : left + c])
        else:
            b, s = self._synthesize(sharp, (top, left, c, c), g)
        geometry = self.transform.sample_geometry(g)
        return {"blur": self.transform.apply_geometry(b, geometry), "sharp": self.transform.apply_geometry(s, geometry),
                "name": row["name"]}


class PairedValDataset(_SyntheticMixin, torch.utils.data.Dataset):
    """Full images (or centre crops) of real pairs, and synthetic pairs fixed by (seed, index)."""

    def __init__(self, parts: list[_Part], *, blur: dict | None, seed: int, max_size: int | None, center_crop: int | None,
                 cache_bytes: int = 1 << 30):
        self.parts, self.seed, self.max_size, self.center_crop = parts, seed, max_size, center_crop
        self.cache = _DecodeCache(cache_bytes)
        self.synth = BlurSynthesizer.from_config(blur)
        self.rows = [(p, r) for p, part in enumerate(parts) for r in range(len(part.ds))]

    def __len__(self) -> int:
        return len(self.rows)

    def _resize(self, arr: np.ndarray) -> np.ndarray:
        h, w = arr.shape[:2]
        if self.max_size is None or max(h, w) <= self.max_size:
            return arr
        scale = self.max_size / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        return np.asarray(PILImage.fromarray(arr).resize(size, PILImage.Resampling.BICUBIC, reducing_gap=None))

    def _box(self, h: int, w: int) -> tuple[int, int, int, int] | None:
        c = self.center_crop
        if c is None:
            return None
        ch, cw = min(c, h), min(c, w)
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if not 0 <= index < len(self.rows):
            raise IndexError(f"index {index} out of range for a dataset of {len(self.rows)} items")
        p, r = self.rows[index]
        part = self.parts[p]
        row = part.ds[r]
        sharp = self._resize(self.cache.get((p, r, "sharp"), row["sharp"]))
        h, w = sharp.shape[:2]
        box = self._box(h, w)
        if part.paired:
            blur = self._resize(self.cache.get((p, r, "blur"), row["blur"]))
            top, left, bh, bw = box or (0, 0, h, w)
            b = image_to_tensor(blur[top : top + bh, left : left + bw])
            s = image_to_tensor(sharp[top : top + bh, left : left + bw])
        else:
            g = torch.Generator().manual_seed(item_seed(self.seed, "val", index))
            b, s = self._synthesize(sharp, box, g)
        return {"blur": b, "sharp": s, "name": row["name"]}


def _check_blur(blur: dict | None) -> None:
    if BlurSynthesizer.from_config(blur).shrinks:
        raise ValueError(f"blur {blur!r}: valid convolution shrinks the image, so crops would not pair up; "
                         "it is for evaluation (evaluation.PairSource), not for datasets")


def _build_parts(sources: list[str], split: str | None) -> list[_Part]:
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    if not sources:
        raise ValueError("no data sources given; pass e.g. ['sharp:../shared/data/sharp/urban100']")
    return [_load_part(s, split) for s in sources]


def build_train_dataset(
    sources: list[str],
    *,
    crop_size: int,
    blur: dict | None = None,
    real_fraction: float | None = None,
    seed: int = 0,
    min_size: int | None = None,
) -> torch.utils.data.Dataset:
    """The training dataset: random paired crops, synthetic blur for sharp-only sources.

    Args:
        sources: source strings (see module docstring); ``?split=`` selects hub/disk/gopro splits (default train).
        crop_size: side of the square training crops.
        blur: `BlurSynthesizer` config, e.g. ``{"mode": "trajectory"}`` or ``{"mode": "kernel", "size": 31}``.
        real_fraction: share of real pairs per epoch (DeblurGAN: 1/3); ``None``: every row once per epoch.
        seed: with the epoch and the index, fixes each item's crop, flips and blur.
        min_size: drop images whose shorter side is below this (a warning names them; must be >=
            crop_size); ``None``: an image smaller than the crop is an error.

    Returns:
        `PairedTrainDataset`; items ``{"blur": (3,c,c), "sharp": (3,c,c), "name": str}``, with ``set_epoch``.
    """
    if crop_size < 1:
        raise ValueError(f"crop_size must be >= 1, got {crop_size}")
    if min_size is not None and min_size < crop_size:
        raise ValueError(f"min_size ({min_size}) must be >= crop_size ({crop_size})")
    _check_blur(blur)  # bad blur settings fail here, before loading data
    parts = _build_parts(sources, None)
    limit = crop_size if min_size is None else min_size
    for part in parts:
        small = [i for i, (w, h) in enumerate(part.sizes) if min(w, h) < limit]
        if not small:
            continue
        names = [part.ds[i]["name"] for i in small]
        w, h = part.sizes[small[0]]
        if min_size is None:
            raise ValueError(f"{part.label}: image {names[0]!r} is {w}x{h}, smaller than crop_size {crop_size}"
                             f"{f' ({len(small)} such images)' if len(small) > 1 else ''}; lower crop_size or pass "
                             "min_size to skip small images")
        warnings.warn(f"{part.label}: skipping {len(small)} of {len(part.ds)} image(s) smaller than min_size "
                      f"{min_size}: {names[:5]}", stacklevel=2)
        small_set = set(small)
        keep = [i for i in range(len(part.ds)) if i not in small_set]
        part.ds = part.ds.select(keep)
        part.sizes = [part.sizes[i] for i in keep]
    parts = [p for p in parts if len(p.ds)]
    if not parts:
        raise ValueError(f"every image of {list(sources)} is smaller than min_size {min_size}")
    return PairedTrainDataset(parts, crop_size=crop_size, blur=blur, real_fraction=real_fraction, seed=seed)


def build_val_dataset(
    sources: list[str],
    *,
    blur: dict | None = None,
    seed: int = 0,
    max_size: int | None = None,
    center_crop: int | None = None,
) -> torch.utils.data.Dataset:
    """The validation dataset: every row once, synthetic pairs identical on every call for a seed.

    Args:
        sources: source strings; hub/disk/gopro default to the ``test`` split here (``?split=`` wins).
        blur: `BlurSynthesizer` config for sharp-only sources.
        seed: fixes the synthetic blur of each index.
        max_size: downscale (bicubic, antialiased, both images) so the longer side is at most this.
        center_crop: cut a centred square of this side (after ``max_size``); ``None``: full images.

    Returns:
        `PairedValDataset`; items ``{"blur": (3,h,w), "sharp": (3,h,w), "name": str}``.
    """
    _check_blur(blur)
    if max_size is not None and max_size < 1:
        raise ValueError(f"max_size must be >= 1, got {max_size}")
    if center_crop is not None and center_crop < 1:
        raise ValueError(f"center_crop must be >= 1, got {center_crop}")
    parts = _build_parts(sources, "test")
    return PairedValDataset(parts, blur=blur, seed=seed, max_size=max_size, center_crop=center_crop)


def check_enough(dataset: torch.utils.data.Dataset, batch_size: int) -> None:
    """Raise ValueError if ``dataset`` has fewer items than one batch (call before training starts)."""
    n = len(dataset)
    if n < batch_size:
        raise ValueError(f"dataset has {n} item(s), fewer than one batch of {batch_size}; add data or lower the batch size")
