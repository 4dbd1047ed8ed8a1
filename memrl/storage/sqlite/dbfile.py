"""The database file's birth: created whole, and an empty file is never taken for a new one.

SQLite treats a 0-byte file as an empty database, so a memory file truncated by a failed
copy, a full disk or a stray `> memrl.db` would be silently re-initialised, its loss
hidden behind a fresh schema. memrl therefore never creates a database in place: a new
file is built beside the target (a SQLite header with memrl's application id and WAL
mode) and linked into place in one step, which fails if another process got there first.
Every file memrl creates is therefore non-empty from its first instant, and a 0-byte file
at the path can only come from outside: it is refused with a message saying what to do.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Any

from ...errors import DatabaseError

# "MeRL" in ASCII: `PRAGMA application_id` tells a memrl file from other SQLite files.
APPLICATION_ID = 0x4D65524C


def prepare(path: str | Path, driver: Any) -> None:
    """Make sure `path` is a non-empty file: create it whole if absent, refuse it if empty."""
    target = Path(path).expanduser()
    try:
        size = target.stat().st_size
    except FileNotFoundError:
        _create(target, driver)
        return
    except OSError as e:
        raise DatabaseError(f"cannot read database {str(target)!r}: {e.strerror}") from e
    if size == 0 and target.is_file():
        raise DatabaseError(
            f"database {str(target)!r} is an empty file (0 bytes), not a memrl database: if it "
            "should hold memories, restore it from a backup; to start a new memory, delete "
            "the empty file or pass another --db"
        )


def _create(target: Path, driver: Any) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatabaseError(
            f"cannot create the folder of database {str(target)!r}: {e.strerror}; pass a "
            "--db path in a folder you can write"
        ) from e
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.new")
    try:
        conn = driver.connect(str(staging), isolation_level=None)
        try:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
        finally:
            conn.close()
        with contextlib.suppress(FileExistsError):  # another process created it meanwhile
            _link(staging, target)
    except (OSError, driver.Error) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise DatabaseError(
            f"cannot create database {str(target)!r}: {reason}; pass a --db path in a folder "
            "you can write, with free space"
        ) from e
    finally:
        for leftover in (staging, Path(f"{staging}-wal"), Path(f"{staging}-shm")):
            with contextlib.suppress(OSError):
                leftover.unlink()


def _link(source: Path, target: Path) -> None:
    """Put `source` at `target` unless `target` exists (FileExistsError), atomically where
    the filesystem has hard links, else by a rename after a check."""
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (some network and FAT filesystems)
        if target.exists():
            raise FileExistsError(str(target)) from None
        os.replace(source, target)
