"""Failures of the database file become errors that say what to do, and a database file is
created whole (so an empty file is never mistaken for a new one)."""

from __future__ import annotations

import errno
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memrl import DatabaseError, InvalidInputError, SqliteStorage
from memrl.storage import explain
from memrl.storage.sqlite.connection import connect, driver
from memrl.storage.sqlite.dbfile import APPLICATION_ID


def test_a_lock_held_too_long_says_so(tmp_path: Path):
    path = tmp_path / "m.db"
    SqliteStorage(path, 8, "x").close()
    holder = connect(path)
    holder.execute("BEGIN EXCLUSIVE")
    impatient = driver.connect(str(path), isolation_level=None, timeout=0)
    try:
        with pytest.raises(driver.OperationalError) as caught:
            impatient.execute("BEGIN IMMEDIATE")
    finally:
        impatient.close()
        holder.execute("ROLLBACK")
        holder.close()
    failure = explain(caught.value, path)
    assert isinstance(failure, DatabaseError)
    assert str(failure).startswith(f"database {str(path)!r} stayed locked by another process")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "is full: free some space"),
        (driver.OperationalError("database or disk is full"), "is full: free some space"),
        (driver.OperationalError("attempt to write a readonly database"), "is read-only"),
        (driver.DatabaseError("file is not a database"), "is damaged or is not a memrl database"),
        (DatabaseError("cannot open database 'x': database disk image is malformed"), "is damaged"),
    ],
)
def test_low_level_failures_are_explained(tmp_path: Path, error: Exception, expected: str):
    wrapped = RuntimeError("while storing")
    wrapped.__cause__ = error
    for raised in (error, wrapped):
        assert expected in str(explain(raised, tmp_path / "m.db"))


def test_other_errors_are_left_as_they_are(tmp_path: Path):
    own = InvalidInputError("intent is empty: give a non-empty text")
    own.__cause__ = OSError(errno.EACCES, "Permission denied")
    assert explain(own, tmp_path / "m.db") is own
    assert explain(RuntimeError("a bug"), tmp_path / "m.db") is None


def test_a_new_database_is_created_whole(tmp_path: Path):
    path = tmp_path / "sub" / "m.db"
    SqliteStorage(path, 8, "x").close()
    conn = connect(path)
    try:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.db"]


def test_an_empty_file_is_never_reinitialised(tmp_path: Path):
    path = tmp_path / "m.db"
    path.touch()
    with pytest.raises(DatabaseError, match=r"is an empty file \(0 bytes\), not a memrl database"):
        SqliteStorage(path, 8, "x")
    assert path.stat().st_size == 0


def test_processes_creating_one_new_file_at_once_all_succeed(tmp_path: Path):
    path = tmp_path / "new.db"
    code = (
        "import sys, time; from memrl import SqliteStorage; "
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); "
        "SqliteStorage(sys.argv[1], 8, 'x').close()"
    )
    start = str(time.time() + 2.0)
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(path), start], stderr=subprocess.PIPE)
        for _ in range(6)
    ]
    errors = [p.communicate(timeout=60)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.db"]
