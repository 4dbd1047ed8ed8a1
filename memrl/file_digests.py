"""The sha256 of the model's files, remembered by their stat so an unchanged file is hashed once.

Every load checks the model's files against their sha256: the packaged model (22 MB),
its tokenizer, and ONNX Runtime's optimised model kept on disk (90 MB, memrl/ort_cache.py).
Reading and hashing them cost ~80 ms of a 0.27 s load (measured on this project's 2-core
machines), and a server's first recall waits for the load.

So, as git's index does for a work tree, a digest is kept in a small JSON file together
with the stat of the file it was computed from: device, inode, size, mtime and ctime, in
nanoseconds. A file whose stat still matches is not read again. Any write to a file, and
any rename onto its path, changes its ctime or inode, and no user call can set a ctime
back, so a changed file is always hashed again.

The one way a change can keep the stat is a write within the clock tick of the hashing
(git's "racy" case). A digest is therefore only kept for a file whose mtime and ctime are
more than `RACY_SECONDS` older than the moment it was hashed.

On POSIX systems only (on Windows a file's ctime is its creation time). The record is an
optimisation and nothing more: a missing, damaged or unwritable record
file means the files are hashed, as they were before it existed. What it cannot catch
is a change that keeps all five stat fields, such as a bit flipped by the disk itself;
the file is then trusted until its stat changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from . import atomic_files

log = logging.getLogger(__name__)

RECORD = "file-digests.json"
RACY_SECONDS = 2.0  # coarser than any file system's timestamps
RECORDING = os.name == "posix"  # see remembered_sha256
MAX_ENTRIES = 64  # the newest kept: a model's few files, times a few installs

_lock = threading.Lock()


def sha256_file(path: Path) -> str:
    """The sha256 of the file at `path`, read in full."""
    with path.open("rb") as f:
        if hasattr(hashlib, "file_digest"):  # Python 3.11+: ~15% faster
            return hashlib.file_digest(f, "sha256").hexdigest()
        digest = hashlib.sha256()
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stat_key(stat: os.stat_result) -> list[int]:
    return [stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]


def _read(record: Path) -> dict[str, Any]:
    try:
        entries = json.loads(record.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(entries, dict):
        return {}
    return {
        path: entry for path, entry in entries.items()
        if isinstance(entry, dict) and isinstance(entry.get("hashed_at"), (int, float))
    }


def _write(record: Path, entries: dict[str, Any]) -> None:
    """Replace the record in one rename (concurrent writers lose an entry, never the file)."""
    newest = sorted(entries.items(), key=lambda item: item[1].get("hashed_at", 0))[-MAX_ENTRIES:]
    atomic_files.write_text(record, json.dumps(dict(newest)))


def remembered_sha256(path: Path, record_dir: Path) -> str:
    """The sha256 of the file at `path`: from the record in `record_dir` while the file's
    stat is the one it was hashed with, else read in full (and recorded when the file is
    not racy). Raises OSError as reading the file would. Only on POSIX systems, whose ctime
    is the time of the last change: Windows reports the creation time there, so a write
    that restores the mtime would go unseen; the file is hashed every time instead."""
    if not RECORDING:
        return sha256_file(path)
    path = Path(os.path.abspath(path))
    record = record_dir / RECORD
    before = path.stat()
    with _lock:
        entry = _read(record).get(str(path))
    if isinstance(entry, dict) and entry.get("stat") == _stat_key(before):
        digest = entry.get("sha256")
        if isinstance(digest, str) and len(digest) == 64:
            return digest
    started = time.time()
    digest = sha256_file(path)
    after = path.stat()
    newest_change = max(after.st_mtime_ns, after.st_ctime_ns) / 1e9
    if _stat_key(after) == _stat_key(before) and started - newest_change > RACY_SECONDS:
        with _lock:
            entries = _read(record)
            entries[str(path)] = {"stat": _stat_key(after), "sha256": digest, "hashed_at": started}
            try:
                _write(record, entries)
            except OSError as e:  # a read-only cache: hash again next time
                log.debug("cannot record the digest of %s in %s: %s", path, record, e)
    return digest
