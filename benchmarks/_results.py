"""Where measured figures live: each benchmark prints Markdown and also writes it to docs/results/NAME.md,
headed by the exact command, the date and the machine it ran on. The docs, the README and the model
cards link to these files instead of copying numbers, so a re-measurement updates every reader.

    with recorded("inference"):    # in a benchmark's `if __name__ == "__main__":`
        main()

RESULTS_DIR=DIR writes elsewhere (a quick check that must not replace the published figures);
RESULTS_DIR= (empty) writes nothing.
"""

from __future__ import annotations

import io
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

from deblurgan_hf.files import atomic_write_text

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


class _Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def machine() -> str:
    """CPU model, cores and load average: figures from a busy machine are not an idle machine's."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return f"{cpu}, {os.cpu_count()} cores, load average {load}"


def code_version() -> str:
    """The commit the figures were measured at, and whether the working tree differed from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=RESULTS.parents[1], capture_output=True, text=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "deblurgan_hf", "benchmarks", "scripts")
    except OSError:
        return "an unknown commit (no git)"
    if not commit:
        return "an unknown commit (not a git checkout)"
    return f"commit {commit}" + (" with uncommitted changes to the code" if dirty else "")


def header(command: str, started: str, machine_at_start: str, version: str) -> str:
    return (f"<!-- Written by `{command}`; do not edit by hand: re-run the command. -->\n\n"
            f"Measured {started} at {version} on {machine_at_start} "
            f"(at the end: {machine().split('load average ')[-1]}).\n\n")


@contextmanager
def recorded(name: str, skip_flags: tuple[str, ...] = ()) -> Iterator[None]:
    """Tee stdout into docs/results/NAME.md (written atomically when the block ends without error).

    skip_flags: command-line flags of a script's internal worker processes, which record nothing.
    """
    target = os.environ.get("RESULTS_DIR", str(RESULTS))
    if not target or any(flag in sys.argv for flag in skip_flags):
        yield
        return
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0]), *sys.argv[1:]])
    started, at_start, version = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), machine(), code_version()
    buffer = io.StringIO()
    with redirect_stdout(_Tee(sys.stdout, buffer)):
        yield
    path = Path(target) / f"{name}.md"
    atomic_write_text(path, header(command, started, at_start, version) + buffer.getvalue())
    print(f"\nwrote {os.path.relpath(path)}", file=sys.stderr)
