"""The SQLite file: migrations applied once, reopening idempotent, a newer schema or a
foreign file refused (the model and dimension contracts: test_conformance_models.py)."""

from __future__ import annotations

import pytest

from memrl import (
    DatabaseError,
    Memory,
    SqliteStorage,
)
from memrl.storage.sqlite.migrations import MIGRATIONS


def seeded_file(open_memory, real_model) -> Memory:
    """A file written with the real model (384-d) in namespace 'proj'."""
    memory = open_memory(real_model)
    memory.store_experience("set up the project", "run make bootstrap", namespace="proj")
    return memory


def test_reopening_is_idempotent(real_model, open_memory, db_path, snapshot, sql) -> None:
    first = seeded_file(open_memory, real_model)
    assert sql(first.storage, "PRAGMA user_version") == [(len(MIGRATIONS),)]
    before = snapshot(first.storage)
    for _ in range(3):
        again = open_memory(real_model)
        assert sql(again.storage, "PRAGMA user_version") == [(len(MIGRATIONS),)]
        assert snapshot(again.storage) == before
    assert [r.intent for r in again.iter_memories()] == ["set up the project"]
    assert sql(again.storage, "PRAGMA journal_mode") == [("wal",)]


def test_a_newer_schema_is_refused(real_model, open_memory, db_path, sql) -> None:
    store = seeded_file(open_memory, real_model).storage
    store._conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(DatabaseError, match="newer than this memrl understands .*: upgrade memrl"):
        SqliteStorage(db_path, 384, real_model.model_id)


def test_a_file_that_is_not_a_database_is_refused(tmp_path) -> None:
    path = tmp_path / "not-a-db.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DatabaseError, match="not-a-db.sqlite"):
        SqliteStorage(path, 8, "model-a")
