"""Identities never move, on every backend: memory and intent ids are never reused (after
forget, reopen or import), and a task whose injected memory was forgotten credits only
what is still there."""

from __future__ import annotations

import io

from fake_embedder import FakeEmbedder

from memrl import MemoryConfig
from memrl.transfer import export_jsonl, import_jsonl

GATE_OPEN = MemoryConfig(delta=-1.0)


def test_an_id_is_never_reused_after_forget(open_memory) -> None:
    memory = open_memory(FakeEmbedder(), GATE_OPEN)
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
    memory = open_memory(FakeEmbedder(), GATE_OPEN)
    memory.forget([b])
    memory.close()
    memory = open_memory(FakeEmbedder(), GATE_OPEN)
    assert memory.store_experience("a third thing", "x").id > b


def test_used_ids_may_name_a_forgotten_injected_memory(open_memory) -> None:
    memory = open_memory(FakeEmbedder(), GATE_OPEN)
    ids = [memory.store_experience("deploy", f"way {i}").id for i in range(2)]
    task = memory.recall("deploy")
    memory.forget([ids[0]])
    out = memory.report(task.task_id, success=True, used_ids=ids)
    assert out.forgotten == [ids[0]] and set(out.credited) == {ids[1]}


def test_export_and_import_never_reuse_ids(open_memory) -> None:
    memory = open_memory(FakeEmbedder(), GATE_OPEN)
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


def test_a_storage_never_reuses_intent_ids(open_memory) -> None:
    memory = open_memory(FakeEmbedder(), GATE_OPEN)
    first = memory.store_experience("alpha", "x").id
    intent = memory.get(first).intent_id
    memory.forget([first])
    second = memory.store_experience("alpha", "y").id
    assert memory.get(second).intent_id > intent
