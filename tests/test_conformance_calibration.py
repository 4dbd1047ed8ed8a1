"""delta per namespace: a fixed small-namespace gate, then the 80th percentile of pairwise intent
similarity (never below the floor), recalibrated as the namespace grows; explicit delta wins."""

from __future__ import annotations

import numpy as np
import pytest
from fake_embedder import FakeEmbedder

from memrl import MemoryConfig

DIM = 64


def unit_rows(rng: np.random.Generator, n: int, spread: float) -> np.ndarray:
    """n unit vectors around one direction (small spread) or scattered (large spread)."""
    base = np.zeros(DIM)
    base[0] = 1.0
    rows = base + spread * rng.standard_normal((n, DIM)) / np.sqrt(DIM)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def expected_delta(rows: np.ndarray, config: MemoryConfig) -> float:
    rows = rows.astype(np.float32).astype(np.float64)
    sims = rows @ rows.T
    pairs = sims[np.triu_indices(len(rows), k=1)]
    assert len(pairs) == len(rows) * (len(rows) - 1) // 2
    return max(config.delta_floor, float(np.percentile(pairs, 80)))


def calibrated(memory, namespace: str) -> float | None:
    """The namespace's calibrated gate (None before it has one)."""
    rows = memory.stats(namespace)
    return rows[0]["delta_calibrated"] if rows else None


def calibrating_memory(open_memory, rows: np.ndarray, config: MemoryConfig):
    vectors = {f"intent {i}": row for i, row in enumerate(rows)}
    vectors["query"] = rows[0]
    return open_memory(FakeEmbedder(dim=DIM, model_id="fake-64", vectors=vectors), config)


@pytest.mark.parametrize("spread", [0.3, 100.0], ids=["clustered", "scattered-hits-floor"])
def test_delta_is_small_then_calibrated(open_memory, sql, spread: float) -> None:
    config = MemoryConfig()
    rows = unit_rows(np.random.default_rng(42), 30, spread)
    memory = calibrating_memory(open_memory, rows, config)

    for i in range(config.calibration_min - 1):
        memory.store_experience(f"intent {i}", f"experience {i}")
    assert calibrated(memory, "default") is None
    assert memory.recall("query").delta == config.delta_small == 0.35

    memory.store_experience(f"intent {config.calibration_min - 1}", "the 20th experience")
    want = expected_delta(rows[: config.calibration_min], config)
    if spread > 1:
        assert want == config.delta_floor  # scattered intents: the floor holds the gate up
    else:
        assert want > 0.5
    assert calibrated(memory, "default") == pytest.approx(want, abs=1e-6)
    task = memory.recall("query")
    assert task.delta == pytest.approx(want, abs=1e-6)
    assert sql(memory.storage, "SELECT delta FROM tasks WHERE task_id = ?", task.task_id) == [
        (pytest.approx(want, abs=1e-6),)
    ]
    assert sql(memory.storage, "SELECT delta_count FROM namespaces") == [(20,)]


def test_recalibrates_after_a_quarter_more_memories(open_memory, sql) -> None:
    config = MemoryConfig()
    rows = unit_rows(np.random.default_rng(7), 30, 1.0)
    memory = calibrating_memory(open_memory, rows, config)
    for i in range(24):
        memory.store_experience(f"intent {i}", f"experience {i}")
    at_20 = expected_delta(rows[:20], config)
    assert calibrated(memory, "default") == pytest.approx(at_20, abs=1e-6)
    memory.store_experience("intent 24", "experience 24")  # 25 = 20 * 1.25
    at_25 = expected_delta(rows[:25], config)
    assert at_25 != pytest.approx(at_20, abs=1e-4)
    assert calibrated(memory, "default") == pytest.approx(at_25, abs=1e-6)
    assert sql(memory.storage, "SELECT delta_count FROM namespaces") == [(25,)]


def test_calibration_is_per_namespace(open_memory) -> None:
    config = MemoryConfig(calibration_min=5)
    rows = unit_rows(np.random.default_rng(3), 10, 0.3)
    memory = calibrating_memory(open_memory, rows, config)
    for i in range(5):
        memory.store_experience(f"intent {i}", f"experience {i}", namespace="big")
    memory.store_experience("intent 5", "experience 5", namespace="small")
    assert calibrated(memory, "big") == pytest.approx(
        expected_delta(rows[:5], config), abs=1e-6
    )
    assert calibrated(memory, "small") is None
    assert memory.recall("query", "small").delta == config.delta_small


def test_explicit_delta_overrides_calibration(open_memory, sql) -> None:
    rows = unit_rows(np.random.default_rng(42), 20, 0.3)
    memory = calibrating_memory(open_memory, rows, MemoryConfig())
    for i in range(20):
        memory.store_experience(f"intent {i}", f"experience {i}")
    assert calibrated(memory, "default") > 0.5

    task = memory.recall("query", delta=0.1)
    assert task.delta == 0.1
    assert len(task.candidates) == 5  # every memory passes 0.1; k1 = 5
    configured = calibrating_memory(open_memory, rows, MemoryConfig(delta=0.15))
    assert configured.recall("query").delta == 0.15
    assert sql(memory.storage, "SELECT delta FROM tasks ORDER BY created_at") == [(0.1,), (0.15,)]
