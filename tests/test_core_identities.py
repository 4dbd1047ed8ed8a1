"""Identities never move: memory ids are never reused (after forget, reopen, migration or
import), and a task whose injected memory was forgotten credits only what is still there."""

from __future__ import annotations

import gzip
import io
import shutil
from pathlib import Path

import pytest
from fake_embedder import FakeEmbedder

from memrl import MemoryConfig, SqliteStorage, open_memory
from memrl.storage.sqlite.migrations import MIGRATIONS
from memrl.transfer import export_jsonl, import_jsonl

DATA = Path(__file__).parent / "data"
GATE_OPEN = MemoryConfig(delta=-1.0)


def test_an_id_is_never_reused_after_forget(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    memory = open_memory(db, GATE_OPEN, FakeEmbedder())
    a = memory.store_experience("set up the project", "run make setup").id
    task = memory.recall("set up the project")
    assert [m.id for m in task.injected] == [a]
    assert memory.forget([a]).deleted == 1
    b = memory.store_experience("an unrelated chore", "sweep the floor").id
    assert b > a
    out = memory.report(task.task_id, success=True)
    # the pending task credits nobody and says what was gone; the newcomer is untouched
    assert out.applied and out.credited == {} and out.forgotten == [a]
    assert "forgotten since the recall" in out.message
    newcomer = memory.get(b)
    assert newcomer is not None and (newcomer.q, newcomer.n_updates) == (0.0, 0)
    memory.close()
    # the sequence survives a reopen: forget the newest, reopen, store again
    memory = open_memory(db, GATE_OPEN, FakeEmbedder())
    memory.forget([b])
    memory.close()
    memory = open_memory(db, GATE_OPEN, FakeEmbedder())
    assert memory.store_experience("a third thing", "x").id > b
    memory.close()


def test_used_ids_may_name_a_forgotten_injected_memory(tmp_path: Path) -> None:
    memory = open_memory(tmp_path / "m.db", GATE_OPEN, FakeEmbedder())
    ids = [memory.store_experience("deploy", f"way {i}").id for i in range(2)]
    task = memory.recall("deploy")
    memory.forget([ids[0]])
    out = memory.report(task.task_id, success=True, used_ids=ids)
    assert out.forgotten == [ids[0]] and set(out.credited) == {ids[1]}
    memory.close()


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


def test_export_and_import_never_reuse_ids(tmp_path: Path) -> None:
    memory = open_memory(tmp_path / "m.db", GATE_OPEN, FakeEmbedder())
    ids = [memory.store_experience(f"task {i}", f"way {i}", namespace="p").id for i in range(3)]
    memory.report(memory.recall("task 0", "p").task_id, success=True)
    dump = io.StringIO()
    assert export_jsonl(memory, dump, "p") == 3
    memory.forget(ids)
    report = import_jsonl(memory, io.StringIO(dump.getvalue()))
    assert report.created == 3
    again = sorted(r.id for r in memory.iter_memories("p"))
    assert min(again) > max(ids)
    # the learned statistics travel with the memories (all three were injected and credited)
    assert [r.n_updates for r in memory.iter_memories("p")] == [1, 1, 1]
    memory.close()


def test_a_storage_never_reuses_intent_ids(tmp_path: Path) -> None:
    storage = SqliteStorage(tmp_path / "m.db", 8, "fake-model")
    from memrl import Memory

    memory = Memory(storage, FakeEmbedder(), GATE_OPEN)
    first = memory.store_experience("alpha", "x").id
    intent = memory.get(first).intent_id
    memory.forget([first])
    second = memory.store_experience("alpha", "y").id
    assert memory.get(second).intent_id > intent
    memory.close()
