"""The retrieval contracts of a storage backend (storage/base.py), on every backend: phase A
over distinct intents with exact cosines, ties to the newer intent; per intent at most
PER_INTENT memories by Q desc then id desc; namespaces kept apart, tasks scoped to theirs."""

from __future__ import annotations

import numpy as np
import pytest
from fake_embedder import FakeEmbedder, at_cosine

from memrl import Experience, InvalidInputError, MemoryConfig


def test_phase_a_takes_distinct_intents_and_every_memory_under_them(open_memory) -> None:
    """A repeated intent with many memories takes one phase-A slot: the other intents still
    enter the pool."""
    vectors = {"task": at_cosine(1.0), "near": at_cosine(0.8), "far": at_cosine(0.6)}
    memory = open_memory(FakeEmbedder(dim=4, vectors=vectors), MemoryConfig(k1=2, k2=2, delta=0.1))
    repeated = memory.store_many(Experience("task", f"attempt {i}") for i in range(12))
    near = memory.store_experience("near", "the neighbour's fix")
    memory.store_experience("far", "too far for k1 = 2")
    result = memory.recall("task")
    task_intent, near_intent = memory.get(repeated[0].id).intent_id, memory.get(near.id).intent_id
    assert [iid for iid, _ in result.intents] == [task_intent, near_intent]
    assert [sim for _, sim in result.intents] == pytest.approx([1.0, 0.8], abs=1e-6)
    pool = {c.id for c in result.candidates}
    assert near.id in pool
    # at most PER_INTENT memories of one intent: the newest ten of twelve untried ones
    assert pool - {near.id} == {r.id for r in repeated[2:]}


def test_a_full_intent_keeps_its_best_and_newest_memories(open_memory, sql) -> None:
    memory = open_memory(FakeEmbedder(), MemoryConfig(delta=-1.0, k2=1))
    ids = [r.id for r in memory.store_many(Experience("deploy", f"way {i}") for i in range(12))]
    sql(memory.storage, "UPDATE memories SET q = 0.3 WHERE id = ?", ids[0])
    for mid in ids[1:6]:
        sql(memory.storage, "UPDATE memories SET q = -0.3 WHERE id = ?", mid)
    pool = [c.id for c in memory.recall("deploy").candidates]
    # Q desc, then newest: the good one, the six untried ones, then the three newest bad ones
    assert pool[0] == ids[0]
    assert set(pool) == {ids[0], *ids[6:], *ids[3:6]}
    with memory.storage.read() as r:
        rows = r.members([memory.get(ids[0]).intent_id], 10)
    assert [m.id for m in rows] == [ids[0], *reversed(ids[6:]), *reversed(ids[3:6])]


def test_members_of_several_intents_follow_the_given_order_and_the_cap(open_memory, sql) -> None:
    """Every backend's `members` against a reference computed from the rows: intents in the
    order asked (duplicates once), within one at most `cap` by Q desc then id desc."""
    memory = open_memory(FakeEmbedder(), MemoryConfig(delta=-1.0))
    rng = np.random.default_rng(11)
    counts = {"lint": 14, "deploy": 3, "migrate": 1, "bench": 9}
    for intent, n in counts.items():
        for row in memory.store_many(Experience(intent, f"{intent} way {i}") for i in range(n)):
            q = float(rng.choice([-0.5, 0.0, 0.25, 0.25, 0.7]))  # ties on Q are common
            sql(memory.storage, "UPDATE memories SET q = ? WHERE id = ?", q, row.id)
    rows = list(memory.iter_memories())
    intent_of = {m.intent: m.intent_id for m in rows}
    asked = [intent_of["bench"], intent_of["lint"], intent_of["migrate"], intent_of["lint"],
             intent_of["deploy"]]
    for cap in (1, 4, 10, 20):
        expected = []
        for iid in dict.fromkeys(asked):
            mine = sorted((m for m in rows if m.intent_id == iid), key=lambda m: (-m.q, -m.id))
            expected += [m.id for m in mine[:cap]]
        with memory.storage.read() as r:
            got = [m.id for m in r.members(asked, cap)]
        assert got == expected, cap
    with memory.storage.read() as r:
        assert r.members([], 10) == [] and r.members(asked, 0) == []


def test_members_of_more_intents_than_sqlite_compounds_and_of_a_crowded_intent(open_memory) -> None:
    """k1 may be up to 1000: `members` answers for 600 intents at once (SQLite refuses a
    compound SELECT of more than 500 terms), and an intent of 300 memories gives its cap."""
    memory = open_memory(FakeEmbedder(), MemoryConfig(delta=-1.0))
    memory.store_many(Experience(f"task {i}", f"way {i}") for i in range(600))
    crowded = memory.store_many(Experience("the same task", f"attempt {i}") for i in range(300))
    intents = list(dict.fromkeys(m.intent_id for m in memory.iter_memories()))
    with memory.storage.read() as r:
        rows = r.members(intents, 2)
    assert len(rows) == 600 + 2
    assert [m.id for m in rows[-2:]] == [crowded[-1].id, crowded[-2].id]  # untried: newest first


def test_nearest_intents_are_exact_cosines_ties_to_the_newer(open_memory) -> None:
    """Two wordings with one vector tie exactly: the newer intent comes first."""
    rng = np.random.default_rng(3)
    vectors = {f"intent {i}": rng.standard_normal(8) for i in range(30)}
    vectors["twin a"] = vectors["twin b"] = rng.standard_normal(8)
    embedder = FakeEmbedder(dim=8, vectors=vectors)
    memory = open_memory(embedder, MemoryConfig(delta=-1.0))
    for text in vectors:
        memory.store_experience(text, f"steps for {text}")
    query = embedder.vectors["twin a"] + 0.1 * embedder.vectors["intent 3"]
    with memory.storage.read() as r:
        hits = r.nearest_intents(query, "default", 5)
    intents = {m.intent_id: m.intent for m in memory.iter_memories()}
    assert [intents[i] for i, _ in hits[:2]] == ["twin b", "twin a"]
    q = query / np.linalg.norm(query)
    exact = {t: float(np.dot(q.astype(np.float64), embedder.vectors[t])) for t in vectors}
    assert [sim for _, sim in hits] == pytest.approx([exact[intents[i]] for i, _ in hits], abs=1e-6)
    best = sorted(exact.values(), reverse=True)[:5]
    assert [sim for _, sim in hits] == pytest.approx(best, abs=1e-6)


def test_namespaces_are_apart_and_tasks_keep_to_theirs(open_memory, snapshot) -> None:
    memory = open_memory(FakeEmbedder(), MemoryConfig(delta=-1.0))
    a = memory.store_experience("run the linter", "ruff check .", namespace="github.com/acme/a").id
    b = memory.store_experience("run the linter", "ruff check .", namespace="github.com/acme/b").id
    assert a != b
    task = memory.recall("run the linter", "github.com/acme/a")
    assert [m.id for m in task.injected] == [a]
    assert memory.get(b, "github.com/acme/a") is None
    before = snapshot(memory.storage)
    with pytest.raises(InvalidInputError, match="belongs to namespace 'github.com/acme/a'"):
        memory.report(task.task_id, success=True, namespace="github.com/acme/b")
    with pytest.raises(InvalidInputError, match="belongs to namespace 'github.com/acme/a'"):
        memory.store_experience("x", "y", namespace="github.com/acme/b", task_id=task.task_id)
    refused = memory.forget([a], namespace="github.com/acme/b")
    assert (refused.deleted, refused.refused) == (0, [a])
    assert snapshot(memory.storage) == before
    assert memory.report(task.task_id, success=True, namespace="github.com/acme/a").applied
    stats = {s["namespace"]: s for s in memory.stats()}
    assert (stats["github.com/acme/a"]["tasks_reported"], stats["github.com/acme/b"]["tasks"]) == (1, 0)
    assert stats["github.com/acme/a"]["mean_q"] == pytest.approx(0.3)
