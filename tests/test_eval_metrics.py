"""The paper's metrics on hand-computed examples."""

from __future__ import annotations

import math

import pytest
from memrl_clients.eval import metrics
from memrl_clients.eval.harness import Attempt, PolicyRun

# Four tasks over three epochs.
EPOCHS = [
    {"a": True, "b": False, "c": False, "d": True},
    {"a": True, "b": True, "c": False, "d": False},
    {"a": False, "b": False, "c": False, "d": True},
]


def test_success_rate_per_epoch_and_last() -> None:
    assert metrics.sr_per_epoch(EPOCHS) == [0.5, 0.5, 0.25]
    assert metrics.last(EPOCHS) == 0.25


def test_csr_counts_tasks_solved_at_least_once() -> None:
    assert metrics.csr(EPOCHS) == 0.75  # a, b, d; never c


def test_forgetting_is_lost_over_failures_per_epoch_then_averaged() -> None:
    # epoch 2: failures {c, d}, d was solved in epoch 1 -> 1/2
    # epoch 3: failures {a, b, c}, a and b were solved before -> 2/3
    assert metrics.forgetting_per_epoch(EPOCHS) == [0.5, pytest.approx(2 / 3)]
    assert metrics.forgetting(EPOCHS) == pytest.approx((0.5 + 2 / 3) / 2)


def test_forgetting_skips_epochs_without_failures() -> None:
    epochs = [{"a": False, "b": True}, {"a": True, "b": True}, {"a": False, "b": True}]
    assert metrics.forgetting_per_epoch(epochs) == [None, 1.0]
    assert metrics.forgetting(epochs) == 1.0
    assert metrics.forgetting([{"a": True}, {"a": True}]) is None
    assert metrics.forgetting([{"a": False}]) is None


def test_pearson_by_hand() -> None:
    # dx = (-1, 0, 1), dy = (-7/3, -1/3, 8/3): sxy = 5, sxx = 2, syy = 114/9
    assert metrics.pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(5 / math.sqrt(2 * 114 / 9))
    assert metrics.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


@pytest.mark.parametrize(
    ("xs", "ys"), [([1, 2], [1, 2]), ([0, 0, 0], [1, 2, 3]), ([1, 2, 3], [5, 5, 5])]
)
def test_pearson_undefined_is_none(xs: list[float], ys: list[float]) -> None:
    assert metrics.pearson(xs, ys) is None


def test_q_success_r_pairs_final_q_with_success_of_injected_tasks() -> None:
    injections = [([1, 2], True), ([1], False), ([2, 3], True), ([3], True), ([4], False)]
    final_q = {1: 0.2, 2: 0.5, 3: 0.6}  # memory 4 was never credited: Q stays 0
    # x = (0.2, 0.5, 0.6, 0.0), y = (1/2, 2/2, 2/2, 0/1)
    # sxy = 0.3875, sxx = 0.2275, syy = 0.6875
    expected = 0.3875 / math.sqrt(0.2275 * 0.6875)
    assert metrics.q_success_r(injections, final_q) == pytest.approx(expected)
    assert metrics.q_success_r(injections, {}) is None  # no learning: Q constant


def test_policy_run_summary() -> None:
    run = PolicyRun("memrl")
    for epoch, outcomes in enumerate(EPOCHS, 1):
        for task, ok in outcomes.items():
            reused = 7 if (task == "a" and epoch > 1) else None
            run.attempts.append(Attempt("train", epoch, task, ok, (7,) if reused else (), reused))
    run.attempts += [Attempt("transfer", 0, "x", True, (), None),
                     Attempt("transfer", 0, "y", False, (7,), 7)]
    run.final_q = {7: -0.3}
    run.stored = {1, 2, 3}
    s = run.summary()
    assert s["sr_per_epoch"] == [0.5, 0.5, 0.25]
    assert s["last"] == 0.25 and s["csr"] == 0.75
    assert s["forgetting"] == pytest.approx(7 / 12)
    assert s["transfer_sr"] == 0.5
    assert s["reuse_rate"] == pytest.approx(2 / 12)
    assert s["reuse_success"] == 0.5  # a: solved in epoch 2, failed in epoch 3
    assert s["q_success_r"] is None  # one memory only
    assert s["memories_stored"] == 3
