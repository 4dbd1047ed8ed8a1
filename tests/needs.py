"""What some tests need from the machine, and what a missing piece means outside and inside CI.

Outside CI a missing tool skips the tests that need it, with the reason and the fix; CI sets
MEMRL_REQUIRE_<WHAT>=1 in .ci/run, which turns the same absence into a failure.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _missing(what: str, reason: str) -> None:
    if os.environ.get(f"MEMRL_REQUIRE_{what}") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def require_java() -> None:
    """The text games (textworld-express) start a JVM."""
    if not shutil.which("java"):
        _missing(
            "JAVA",
            "the text-game tests need Java 17+ on PATH (textworld-express runs a JVM): install "
            "a JRE, e.g. apt-get install openjdk-17-jre-headless",
        )


@contextmanager
def small_filesystem(where: Path, size: str = "8m") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `where` for the duration: a disk that can be filled or
    made read-only for real. Needs root (CI runs as root, and sets MEMRL_REQUIRE_TMPFS=1)."""
    reason = "needs root to mount a small tmpfs (a disk to fill or make read-only)"
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("mount"):
        _missing("TMPFS", reason)
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        _missing("TMPFS", f"{reason}: mount failed: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def remount_read_only(where: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True, capture_output=True)


def fill(where: Path) -> Path:
    """Fill the filesystem at `where` up to the last byte; returns the filler file."""
    filler = where / "filler"
    chunk = b"\0" * (1 << 16)
    with filler.open("wb", buffering=0) as f:
        for size in (1 << 16, 1 << 12, 1 << 8, 1):
            try:
                while True:
                    f.write(chunk[:size])
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
    return filler
