"""Phase A's similarity gate: when no memory passes delta, nothing is injected, never padding."""

from __future__ import annotations

import pytest
from fake_embedder import FakeEmbedder, at_cosine, axis

from memrl import MemoryConfig


def gate_embedder() -> FakeEmbedder:
    return FakeEmbedder(
        dim=4,
        model_id="fake-4",
        vectors={
            "near": at_cosine(0.5),
            "far": at_cosine(0.1),
            "query": axis(0),
            "orthogonal query": axis(2),
        },
    )


def test_nothing_passes_the_gate(open_memory, sql) -> None:
    memory = open_memory(gate_embedder(), MemoryConfig(delta=0.3))
    memory.store_experience("near", "a useful experience")
    memory.store_experience("far", "another experience")

    result = memory.recall("orthogonal query")

    assert result.injected == []
    assert result.candidates == []
    assert "nothing injected" in result.message
    assert "delta=0.30" in result.message
    assert result.task_id in result.message
    assert sql(
        memory.storage,
        "SELECT namespace, query, delta, outcome, reward, selection_prob FROM tasks WHERE task_id = ?",
        result.task_id,
    ) == [("default", "orthogonal query", 0.3, None, None, 1.0)]
    assert sql(memory.storage, "SELECT count(*) FROM task_candidates") == [(0,)]


def test_gated_task_can_still_report_and_credits_nothing(open_memory, sql) -> None:
    memory = open_memory(gate_embedder(), MemoryConfig(delta=0.3))
    mid = memory.store_experience("near", "a useful experience").id
    result = memory.recall("orthogonal query")
    outcome = memory.report(result.task_id, success=True)
    assert outcome.applied is True
    assert outcome.credited == {}
    assert memory.get(mid).q == 0.0
    assert sql(memory.storage, "SELECT outcome, reward FROM tasks") == [("success", 1.0)]


def test_empty_namespace_injects_nothing(open_memory, sql) -> None:
    memory = open_memory(gate_embedder())
    result = memory.recall("query", "fresh-namespace")
    assert (result.injected, result.candidates) == ([], [])
    assert result.delta == MemoryConfig().delta_small
    assert sql(memory.storage, "SELECT namespace FROM tasks") == [("fresh-namespace",)]


@pytest.mark.parametrize(("delta", "passes"), [(0.49, ["near"]), (0.51, []), (0.05, ["near", "far"])])
def test_gate_is_a_strict_similarity_threshold(open_memory, delta: float, passes: list[str]) -> None:
    memory = open_memory(gate_embedder())
    memory.store_experience("near", "a useful experience")
    memory.store_experience("far", "another experience")
    result = memory.recall("query", delta=delta)
    assert [c.intent for c in result.candidates] == passes
    assert result.delta == delta


def test_gate_applies_per_namespace(open_memory) -> None:
    memory = open_memory(gate_embedder(), MemoryConfig(delta=0.3))
    memory.store_experience("near", "a useful experience", namespace="project-a")
    assert [c.intent for c in memory.recall("query", "project-a").injected] == ["near"]
    assert memory.recall("query", "project-b").injected == []
