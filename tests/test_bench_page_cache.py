"""The bench's page-cache helpers really move a file out of and into the OS page cache."""

from __future__ import annotations

import ctypes
import mmap
import os
import sys
from pathlib import Path

import pytest
from memrl_clients.bench import page_cache

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="mincore/posix_fadvise as on Linux"
)


def resident_pages(path: Path) -> int:
    """Pages of `path` in the page cache (mincore over a private map, never written)."""
    size = path.stat().st_size
    page = os.sysconf("SC_PAGE_SIZE")
    vec = (ctypes.c_ubyte * ((size + page - 1) // page))()
    libc = ctypes.CDLL(None, use_errno=True)
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_COPY) as m:
        view = ctypes.c_char.from_buffer(m)
        try:
            rc = libc.mincore(ctypes.c_void_p(ctypes.addressof(view)), ctypes.c_size_t(size), vec)
        finally:
            del view
    if rc != 0:
        pytest.skip(f"mincore failed (errno {ctypes.get_errno()})")
    return sum(v & 1 for v in vec)


def test_evict_then_prime(tmp_path: Path) -> None:
    db = tmp_path / "file.db"
    db.write_bytes(os.urandom(8 << 20))  # 2,048 pages, all cached after the write
    assert page_cache.evict(db)
    after_evict = resident_pages(db)
    assert page_cache.prime(db) >= 0
    after_prime = resident_pages(db)
    if after_evict > 1024:
        pytest.skip("this file system ignores POSIX_FADV_DONTNEED (e.g. tmpfs)")
    assert after_evict < 256
    assert after_prime == 2048
