"""SQLite connections with sqlite-vec loaded, tuned for several processes sharing one file.

The stdlib sqlite3 of many Python builds (pyenv, macOS system Python) cannot load
extensions; there the sqlean.py driver (same DB-API, bundled SQLite) is used instead.
Every connection is in autocommit mode: write transactions are opened explicitly with
`BEGIN IMMEDIATE` by `write_transaction`, so a writer takes the lock before reading and
waits on the busy handler instead of failing with "database is locked".
"""

from __future__ import annotations

import contextlib
import logging
import random
import sqlite3 as _stdlib_sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import sqlite_vec

from ...errors import DatabaseError
from . import dbfile

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000


def _stdlib_can_load_extensions() -> bool:
    conn = _stdlib_sqlite3.connect(":memory:")
    try:
        return hasattr(conn, "enable_load_extension")
    finally:
        conn.close()


def _pick_driver() -> ModuleType:
    if _stdlib_can_load_extensions():
        return _stdlib_sqlite3
    import sqlean  # type: ignore[import-untyped]

    return sqlean


driver: ModuleType = _pick_driver()
"""The DB-API module in use (stdlib sqlite3 or sqlean); its exception classes are the ones raised."""


def connect(path: str | Path, *, readonly: bool = False) -> Any:
    """Open `path` with sqlite-vec loaded, WAL, a busy timeout and autocommit."""
    target = str(path)
    if target != ":memory:" and not readonly:
        dbfile.prepare(target, driver)  # created whole; an empty file is refused
    conn = None
    try:
        conn = driver.connect(
            target, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if target != ":memory:" and not readonly:
            _enable_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        # No mmap_size: mapped database pages count in the server's resident memory (a
        # 256 MB map grew RSS by 90-210 MB on 10k-1M memories) and bought nothing measurable:
        # a recall reads a few hundred pages, which SQLite's own page cache serves.
    except driver.Error as e:
        if conn is not None:
            conn.close()
        raise DatabaseError(f"cannot open database {target!r}: {e}") from e
    return conn


def _is_busy(e: Exception) -> bool:
    text = str(e).lower()
    return "locked" in text or "busy" in text


def _enable_wal(conn: Any, attempts: int = 20) -> None:
    """Switch to WAL, retrying: the switch fails at once, without the busy handler, when
    another process is opening or switching the same new file at that moment."""
    for attempt in range(attempts):
        try:
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
            return
        except driver.OperationalError as e:
            if not _is_busy(e) or attempt == attempts - 1:
                raise
            time.sleep(0.01 * (attempt + 1) * (0.5 + random.random()))


@contextlib.contextmanager
def write_transaction(conn: Any, attempts: int = 8) -> Iterator[Any]:
    """`BEGIN IMMEDIATE` ... `COMMIT`, rolled back on any error.

    The busy timeout already waits for other writers; a BEGIN that still reports
    busy (e.g. a checkpoint holding the lock) is retried with jittered back-off.
    Only the BEGIN is retried: the body runs exactly once.
    """
    for attempt in range(attempts):
        try:
            conn.execute("BEGIN IMMEDIATE")
            break
        except driver.OperationalError as e:
            if not _is_busy(e) or attempt == attempts - 1:
                raise DatabaseError(f"cannot start a write transaction: {e}") from e
            log.warning("database busy, retrying BEGIN IMMEDIATE (%d)", attempt + 1)
            time.sleep(0.05 * (2**attempt) * (0.5 + random.random()))
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")
