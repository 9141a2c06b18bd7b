"""Atomic writes: an output is written under a temporary name in its folder, then renamed onto it.

A reader (or a run killed half-way) never sees a half-written file: the path holds either the old
content or the new. The temporary name is hidden and carries the writer's PID (`.NAME.tmp-PID`),
which is how `deblurgan deblur` recognises, and removes, what killed runs left behind.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "temp_name"]


def temp_name(path: Path) -> Path:
    """The hidden temporary sibling of `path` this process writes to."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it is renamed onto `path`, on error removed.

    The caller creates a file or a folder at the yielded path. A folder replaces an existing
    `path` folder as a whole (the old one is moved aside first, then deleted), so a dataset or
    model folder is never half old, half new. The parent folder is created if missing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    _remove(tmp)  # left by an earlier, killed process that had this PID
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {tmp} (the temporary name for {path})")
        if tmp.is_dir() and path.is_dir():
            # os.replace cannot put a folder onto a non-empty one: move the old aside first.
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            _remove(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `path` atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding=encoding)
