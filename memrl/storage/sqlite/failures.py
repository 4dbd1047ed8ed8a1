"""What a failure of the database file means for the person, and what they can do about it.

SQLite and the operating system report a read-only file, a full disk, a lock held too long
or a damaged file as driver or OS exceptions with terse texts ("attempt to write a
readonly database"). The CLI and the MCP server pass every exception through `explain`
at their boundary: a known failure becomes a DatabaseError that says what happened to
which file and what to do; anything else stays an internal error.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from ...errors import DatabaseError, MemrlError
from .connection import BUSY_TIMEOUT_MS, driver

FULL_BELOW_BYTES = 1 << 20  # free space under which an I/O error is taken for a full disk
_FULL = "is full: free some space on it, then retry (nothing of this call was written)"


def _read_only(path: str) -> bool:
    """Is the file, its folder or its filesystem read-only for this process? (SQLite says
    "unable to open database file" when it cannot create the -wal/-shm files beside it.)"""
    target = Path(path).expanduser()
    folder = target.parent
    if not folder.is_dir():
        return False
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return True
    except (OSError, AttributeError):  # no statvfs on Windows
        pass
    return not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK))


def _nearly_full(path: str) -> bool:
    """Is the disk of `path` (almost) full? SQLite reports a full disk as "disk I/O error"
    when the -shm file beside the database cannot grow (measured on a full tmpfs)."""
    try:
        return shutil.disk_usage(Path(path).expanduser().parent).free < FULL_BELOW_BYTES
    except OSError:
        return False


def _advice(text: str, code: int | None, path: str) -> str | None:
    """The message for one low-level failure, or None if it is not a known one."""
    db = f"database {path!r}"
    read_only = "readonly" in text or "read-only" in text or code == errno.EROFS
    if read_only or (
        ("unable to open" in text or code in (errno.EACCES, errno.EPERM)) and _read_only(path)
    ):
        return (
            f"{db} is read-only (the file, its folder or its filesystem): make it writable "
            "(the file and its folder), or pass --db with a writable copy"
        )
    full = "database or disk is full" in text or code in (errno.ENOSPC, errno.EDQUOT)
    if full or (("disk i/o error" in text or "unable to open" in text) and _nearly_full(path)):
        return f"the disk holding {db} {_FULL}"
    if "locked" in text or "busy" in text:
        return (
            f"{db} stayed locked by another process for {BUSY_TIMEOUT_MS // 1000} s: retry when "
            "it is done; if nothing else is using it, a stopped process may still hold it "
            "(restart the hosts that use this file)"
        )
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return (
            f"{db} is damaged or is not a memrl database: restore it from a backup, or pass "
            "another --db (`sqlite3 FILE .recover` can save the rows of a damaged file)"
        )
    if "disk i/o error" in text or code == errno.EIO:
        return f"reading or writing {db} failed with a disk I/O error: check the disk and retry"
    if "unable to open" in text or code in (errno.EACCES, errno.EPERM):
        return (
            f"cannot open {db}: check that it exists and that you may read and write it and "
            "its folder, or pass another --db"
        )
    return None


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _low_level(error: BaseException) -> bool:
    return isinstance(error, (driver.Error, sqlite3.Error, OSError))


def explain(error: BaseException, db_path: str | Path) -> MemrlError | None:
    """A DatabaseError saying what happened and what to do, if `error` (or what caused it)
    is a known failure of the database file; else `error` itself if it is a MemrlError,
    else None (an internal error). A MemrlError other than DatabaseError already says
    what to do (e.g. "cannot read FILE" for an import) and is returned as it is."""
    if isinstance(error, MemrlError) and not isinstance(error, DatabaseError):
        return error
    for cause in _chain(error):
        if not (_low_level(cause) or isinstance(cause, DatabaseError)):
            continue
        code = cause.errno if isinstance(cause, OSError) else None
        advice = _advice(str(cause).lower(), code, str(db_path))
        if advice is not None:
            return DatabaseError(advice)
    if isinstance(error, MemrlError):
        return error
    return None
