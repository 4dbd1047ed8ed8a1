"""The gate learned from outcomes, stored per namespace next to the calibrated one (both
backends): recomputed every gate_learning.EVERY outcomes while learning is on, applied by
recall only then, an explicit delta still winning."""

from __future__ import annotations

import math

import pytest
from fake_embedder import FakeEmbedder

from memrl import MemoryConfig
from memrl.gate_learning import ReportedTask, learn

DIM = 8


def unit(**coords: float) -> list[float]:
    vec = [0.0] * DIM
    for name, value in coords.items():
        vec[int(name[1:])] = value
    return vec


def embedder() -> FakeEmbedder:
    """qB meets intent B at cosine 0.41, qC meets intent C at 0.9, qA meets nothing."""
    return FakeEmbedder(
        dim=DIM,
        model_id="fake-8",
        vectors={
            "qA": unit(e4=1.0),
            "qB": unit(e0=1.0),
            "intent B": unit(e0=0.41, e1=math.sqrt(1 - 0.41**2)),
            "qC": unit(e2=1.0),
            "intent C": unit(e2=0.9, e3=math.sqrt(1 - 0.81)),
        },
    )


LEARNING = MemoryConfig(gate_learning=True)  # too few intents to calibrate: c = 0.35


def play(memory) -> list[str]:
    """20 outcomes: 10 tasks with nothing injected (6 succeed), 5 injecting B at 0.41 (all
    fail), 5 injecting C at 0.9 (all succeed)."""
    memory.store_experience("intent B", "a misleading recipe")
    memory.store_experience("intent C", "the right recipe")
    ids = []
    for query, successes, n in (("qA", 6, 10), ("qB", 0, 5), ("qC", 5, 5)):
        for i in range(n):
            task = memory.recall(query)
            memory.report(task.task_id, success=i < successes)
            ids.append(task.task_id)
    return ids


def test_the_learned_gate_is_stored_and_applied(open_memory, sql) -> None:
    memory = open_memory(embedder(), LEARNING)
    assert memory.recall("qB", dry_run=True).delta == 0.35
    play(memory)
    # p0 = 0.6; g(0.4) = (0 - 3) * 5 / 10 = -1.5, g(0.5) = (5 - 3) * 5 / 10 = 1.0: G is
    # highest (1.0) for t in 0.425 .. 0.5, nearest the reference 0.35: 0.425
    [(learned, reports)] = sql(
        memory.storage,
        "SELECT learned_delta, learned_reports FROM namespaces WHERE namespace = ?",
        "default",
    )
    assert learned == pytest.approx(0.425) and reports == 20
    closed = memory.recall("qB", dry_run=True)
    assert closed.delta == pytest.approx(0.425) and closed.injected == []
    assert memory.recall("qC", dry_run=True).injected != []
    [row] = memory.stats("default")
    assert row["delta_kind"] == "learned" and row["delta_learned"] == pytest.approx(0.425)
    assert row["delta_calibrated"] is None
    evidence = row["gate_evidence"]
    assert evidence["tasks"] == 20 and evidence["tasks_empty_pool"] == 10
    assert evidence["empty_pool_success_rate"] == pytest.approx(0.6)
    assert (evidence["tasks_injected_above"], evidence["tasks_injected_below"]) == (5, 5)
    assert evidence["injected_above_success_rate"] == 1.0
    assert evidence["injected_below_success_rate"] == 0.0
    # injected pairs: 5 x B (failed, no used_ids) + 5 x C (succeeded)
    assert row["false_positive_rate"] == pytest.approx(0.5)


def test_learning_off_counts_nothing_and_ignores_the_learned_value(open_memory, sql) -> None:
    memory = open_memory(embedder())
    play(memory)
    assert sql(
        memory.storage,
        "SELECT learned_delta, learned_reports FROM namespaces WHERE namespace = ?",
        "default",
    ) == [(None, 0)]
    with memory.storage.write() as tx:
        tx.set_learned_delta("default", 0.45)
    assert memory.recall("qB", dry_run=True).delta == 0.35  # off: not applied
    [row] = memory.stats("default")
    assert row["delta_kind"] == "default" and row["delta_learned"] == pytest.approx(0.45)
    assert row["gate_evidence"]["learned_delta"] == pytest.approx(0.425)  # what it would learn
    learning = open_memory(embedder(), LEARNING)
    assert learning.recall("qB", dry_run=True).delta == pytest.approx(0.45)
    explicit = open_memory(embedder(), MemoryConfig(gate_learning=True, delta=0.3))
    assert explicit.recall("qB", dry_run=True).delta == 0.3  # an explicit delta wins
    assert explicit.stats("default")[0]["delta_kind"] == "explicit"


def test_reported_tasks_newest_first_with_their_injections(open_memory) -> None:
    memory = open_memory(embedder())
    memory.store_experience("intent C", "the right recipe")
    memory.store_experience("intent C", "another recipe")
    first = memory.recall("qC")
    memory.report(first.task_id, success=False, used_ids=[first.injected[0].id])
    memory.recall("qA")  # never reported: not read
    second = memory.recall("qA")
    memory.report(second.task_id, reward=0.5)
    with memory.storage.read() as r:
        rows = r.reported_tasks("default", 10)
        assert r.reported_tasks("default", 1) == rows[:1]
        assert r.reported_tasks("elsewhere", 10) == []
        assert r.learned_delta("default") is None
    injected = sorted((m.id, pytest.approx(m.similarity, abs=1e-6)) for m in first.injected)
    assert rows[0] == ReportedTask(0.5, None, [])
    assert rows[1].reward == -1.0 and rows[1].used_ids == [first.injected[0].id]
    assert sorted(rows[1].injected) == injected and len(injected) == 2
    assert learn(rows, None, LEARNING).false_positive_injections == 1


def test_count_and_store_round_trip(open_memory, sql) -> None:
    memory = open_memory(embedder())
    memory.store_experience("intent C", "the right recipe")
    with memory.storage.write() as tx:
        assert [tx.count_gate_report("default") for _ in range(3)] == [1, 2, 3]
        assert tx.count_gate_report("no such namespace") == 0
        tx.set_learned_delta("default", 0.5)
        assert tx.learned_delta("default") == 0.5
    with memory.storage.write() as tx:
        tx.set_learned_delta("default", None)
    assert sql(
        memory.storage,
        "SELECT learned_delta, learned_reports FROM namespaces WHERE namespace = ?",
        "default",
    ) == [(None, 3)]


def test_an_older_database_gains_the_learned_gate(backend, open_memory, sql, monkeypatch) -> None:
    from memrl.storage.postgres import migrations as pg
    from memrl.storage.sqlite import migrations as lite

    module = lite if backend.name == "sqlite" else pg
    current = module.MIGRATIONS
    monkeypatch.setattr(module, "MIGRATIONS", [m for m in current if m.__name__ != (
        "m007_learned_gate" if module is lite else "m005_learned_gate")])
    old = open_memory(embedder())  # migrated up to the schema before the learned gate
    sql(old.storage, "INSERT INTO namespaces(namespace, model_id, delta) VALUES (?, ?, ?)",
        "default", "fake-8", 0.3)
    old.storage.close()
    monkeypatch.undo()
    memory = open_memory(embedder(), LEARNING)
    assert sql(
        memory.storage,
        "SELECT delta, learned_delta, learned_reports, learned_at FROM namespaces",
    ) == [(0.3, None, 0, None)]
    sql(memory.storage, "UPDATE namespaces SET delta = NULL")
    play(memory)
    assert memory.recall("qB", dry_run=True).delta == pytest.approx(0.425)
