"""Identities survive a migration of an old SQLite file: learning, intents and ids (the
backend-independent identity contracts are in test_conformance_identities.py)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from memrl import open_memory
from memrl.storage.sqlite.migrations import MIGRATIONS

DATA = Path(__file__).parent / "data"


def _old_file(tmp_path: Path, version: int) -> Path:
    """A database written by memrl at schema version 2 (commit 51d0e0f), or turned back into
    what version 1 wrote (no code-snapshot table). How it was made: tests/data/README.md."""
    db = tmp_path / f"v{version}.db"
    with gzip.open(DATA / "schema-v2.db.gz") as src, open(db, "wb") as dst:
        shutil.copyfileobj(src, dst)
    if version == 1:
        from memrl.storage.sqlite.connection import connect

        conn = connect(db)
        conn.execute("DROP TABLE memory_code_snapshots")
        conn.execute("PRAGMA user_version = 1")
        conn.close()
    return db


@pytest.mark.parametrize("version", [1, 2])
def test_an_old_file_is_migrated_with_its_learning_and_ids(
    version: int, tmp_path: Path, real_model, sql
) -> None:
    """The fixture holds, in namespace proj-a: memories 1-3 under one intent written three
    ways (two spellings and spacing of one text), 4 'release to PyPI'; in proj-b, 5 (the same
    text); two reported tasks that injected 1, 2, 3; and a pending task that injected
    memory 6, which was then forgotten (the highest id the file ever had)."""
    db = _old_file(tmp_path, version)
    memory = open_memory(db, embedder=real_model)
    assert sql(memory.storage, "PRAGMA user_version") == [(len(MIGRATIONS),)]
    assert sql(memory.storage, "PRAGMA integrity_check") == [("ok",)]
    rows = {r.id: r for r in memory.iter_memories()}
    assert sorted(rows) == [1, 2, 3, 4, 5]
    assert rows[1].intent_id == rows[2].intent_id == rows[3].intent_id != rows[4].intent_id
    assert rows[4].intent_id != rows[5].intent_id  # same text, other namespace
    assert [rows[i].n_updates for i in (1, 2, 3)] == [1, 1, 1]
    assert rows[1].q == pytest.approx(0.3)
    assert sql(memory.storage, "SELECT count(*) FROM intents") == [(3,)]
    assert sql(memory.storage, "SELECT count(*) FROM intent_vec0") == [(3,)]
    # a recall finds the migrated memories through their intent
    found = memory.recall("fix the flaky test in test_api", "proj-a")
    assert {m.id for m in found.candidates} == {1, 2, 3}
    # ids continue above every id the ledger ever named: the forgotten 6 is not reused
    new = memory.store_experience("a new memory", "after the migration", namespace="proj-a")
    assert new.id == 7
    pending = sql(
        memory.storage,
        "SELECT task_id FROM task_candidates WHERE memory_id = 6 AND injected = 1",
    )
    assert len(pending) == 1
    out = memory.report(pending[0][0], success=True)
    assert out.credited == {} and out.forgotten == [6]
    assert memory.get(7).n_updates == 0
    memory.close()
