"""Put a database file into, or out of, the OS page cache, so the bench measures both a
cold start (every page read from disk) and a warm server (the file in the page cache).

Both are real conditions. A freshly booted machine, or one whose kernel reclaims file
pages that were not touched for a while (the VM these figures were measured on pages
out unmapped file cache left untouched for a minute or more), reads every page of a recall
from disk;
a busy server on a machine with free memory finds them cached. Reporting only one of
the two would mislead.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def _files(db: Path) -> list[Path]:
    return [p for p in (db, Path(f"{db}-wal")) if p.exists()]


def evict(db: Path) -> bool:
    """Drop the file's clean pages from the page cache (POSIX_FADV_DONTNEED; no root needed).
    Pages mapped by a live process stay. Returns False where the OS lacks fadvise."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for path in _files(db):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # only clean pages can be dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def prime(db: Path) -> float:
    """Read the whole file once (sequentially) so its pages are cached; returns seconds."""
    t0 = time.perf_counter()
    for path in _files(db):
        with path.open("rb", buffering=0) as fh:
            while fh.read(1 << 22):
                pass
    return time.perf_counter() - t0
