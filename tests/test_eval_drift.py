"""The drift scenario: the declared change (stored solutions fail from the drift epoch on,
fresh ones carry the revision), epochs-to-recover, the false-positive injection rate, and a
run through real servers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from memrl_clients.eval import drift, humaneval, metrics
from memrl_clients.eval.common import Recalled, train_key
from memrl_clients.eval.harness import POLICIES
from memrl_clients.eval.runner import run_suite
from memrl_clients.eval.suites import Size, drift_suite, shared_checker

pytestmark = pytest.mark.timeout(600)


def test_epochs_to_recover() -> None:
    # the epoch before the drift (3) is at 0.9; recovered at 0.81 or more
    assert drift.epochs_to_recover([0.5, 0.9, 0.0, 0.5, 0.85], 3) == (2, True)
    assert drift.epochs_to_recover([0.5, 0.9, 0.9, 0.5], 3) == (0, True)
    # never back within the run: one more epoch than the run had after the drift
    assert drift.epochs_to_recover([0.5, 0.9, 0.0, 0.5, 0.8], 3) == (3, False)
    with pytest.raises(ValueError, match="outside"):
        drift.epochs_to_recover([0.5, 0.9], 1)


def test_false_positive_injections() -> None:
    attempts = [
        ((1, 2, 3), (1,), False),  # 2 and 3 injected into a failure, not used: 2 wasted
        ((4,), None, False),  # the agent cannot tell: counts
        ((5, 6), (), True),  # a success wastes nothing
        ((), (), False),
    ]
    assert metrics.false_positive_injection(attempts) == pytest.approx(3 / 6)
    assert metrics.false_positive_injection([((), None, False)]) is None


def test_a_stored_solution_fails_after_the_drift_and_a_fresh_one_carries_the_revision() -> None:
    checker = shared_checker()
    agent = drift.DriftCoder(0, checker.check, drift=3)
    # a task the agent often solves itself (base solve probability above 0.6)
    task = next(t for t in humaneval.tasks(humaneval.load_problems()) if agent.base_p(t) > 0.6)
    problem = task.data
    old = agent._submit(problem, problem.canonical)  # epoch-free: the real tests
    assert old.success
    stored = agent.write_memory(task, old)
    memory = Recalled(7, "success", stored.intent, stored.experience, q=0.9, similarity=1.0)
    before = agent.attempt(task, [memory], train_key(0, task, 2))
    assert before.success and before.reused == 7
    after = agent.attempt(task, [memory], train_key(0, task, 3))
    assert not after.success and after.reused == 7
    assert "old interface" in after.detail
    # after the drift only its own revised canonical solution passes (mutants of the
    # revised code fail the tests, or lost the revision line with the lines they dropped)
    fresh = [agent.attempt(task, [], train_key(0, task, e)) for e in range(3, 30)]
    assert any(o.success for o in fresh)
    assert all(o.success == (o.artifact == f"{problem.canonical}\n{drift.REVISION}") for o in fresh)


def test_the_scenario_runs_through_real_servers(tmp_path: Path) -> None:
    size = Size(humaneval_tasks=None, games_per_type=1, epochs=1, drift_tasks=4, drift_epochs=4)
    suite = drift_suite(0, size, bank_coverage=0.0)
    policies = [p for p in POLICIES if p.name in ("rag", "memrl")]
    runs = asyncio.run(run_suite(suite, policies, 0, tmp_path, progress=False))
    for run in runs.values():
        s = drift.summary(run, drift.drift_epoch(4))
        assert s["drift_epoch"] == 3
        assert len(s["sr_per_epoch"]) == 4
        assert s["sr_at_drift"] <= s["sr_before_drift"]
        assert isinstance(s["recover"], int) and isinstance(s["recovered"], bool)
        assert 0.0 <= s["fp_injection"] <= 1.0
