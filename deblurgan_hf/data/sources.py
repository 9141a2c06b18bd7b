"""Data sources: the source-string grammar, image verification and the loaders.

A source is a string a CLI flag can carry, ``KIND:LOCATION[?key=value&...]``:

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

Without a ``KIND:`` prefix the kind is detected from what the folder holds. `load_pairs` turns a
source into a ``datasets.Dataset`` with Image columns ``blur`` (absent for sharp-only sources) and
``sharp`` and a string column ``name``.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

from PIL import Image as PILImage

from .._extras import needs
from ..files import atomic_write_text
from ..imaging import IMAGE_EXTENSIONS

__all__ = ["SOURCE_KINDS", "GOPRO_BLUR_DIRS", "SourceSpec", "parse_source", "detect_kind", "load_pairs"]
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
        return _load_metadata_folder(root, verify)
    else:
        raise ValueError(f"{root} is not a paired folder: found {_describe(root)}; expected blur/ and sharp/ "
                         "subfolders or a metadata.jsonl with blur_file_name and sharp_file_name")
    _check_pair_files(blur, sharp, verify)
    return _pairs_dataset([str(p) for p in blur], [str(p) for p in sharp], stems)


def _load_metadata_folder(root: Path, verify: bool):
    """An imagefolder whose ``metadata.jsonl`` names each pair's files (``blur_file_name``,
    ``sharp_file_name``, optional ``name``), read by datasets' own imagefolder builder."""
    with needs("train", "eval"):
        import datasets

    meta = root / "metadata.jsonl"
    try:
        ds = datasets.load_dataset("imagefolder", data_dir=str(root), split="train")
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{meta} names a file that does not exist: {exc.filename or exc}") from None
    except ValueError as exc:  # pyarrow's JSON errors are ValueErrors
        raise ValueError(f"{meta}: not valid JSON lines ({exc})") from None
    if len(ds) == 0:
        raise ValueError(f"empty paired dataset: {meta} lists no pairs")
    present = [c for c in ("blur", "sharp") if c in ds.column_names]
    raw = ds.cast_column(present[0], datasets.Image(decode=False)) if present else ds
    for col in present[1:]:
        raw = raw.cast_column(col, datasets.Image(decode=False))
    columns = {c: raw[c] for c in present}
    for i in range(len(raw)):  # a pair per non-empty line
        missing = [f"{c}_file_name" for c in ("blur", "sharp") if c not in columns or columns[c][i] is None]
        if missing:
            row = raw[i]
            fields = sorted(f"{k}_file_name" if k in columns else k for k in row if row[k] is not None)
            raise ValueError(f"{meta} line {i + 1}: missing field(s) {missing}; has {fields}; "
                             "expected 'blur_file_name' and 'sharp_file_name'")
    if "name" not in ds.column_names:  # the sharp file's path inside the folder, without suffix
        names = [Path(os.path.relpath(v["path"], root)).with_suffix("").as_posix() for v in columns["sharp"]]
        ds = ds.add_column("name", names)
    ds = _standardise(ds, f"paired:{root}", "blur", "sharp", "name")
    if verify:
        _verify_dataset(ds, str(meta))
    return ds


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
