"""The gate that learns (memrl/gate_learning.py), on tiny ledgers computed by hand."""

from __future__ import annotations

import pytest

from memrl import MemoryConfig
from memrl.gate_learning import (
    ReportedTask,
    bounds,
    clamp,
    due,
    false_positives,
    grid,
    learn,
)
from memrl.retrieval import gate

CONFIG = MemoryConfig(gate_learning=True)  # floor 0.2, max step 0.15, delta_small 0.35


def tasks(n: int, successes: int, best: float | None) -> list[ReportedTask]:
    """n reported tasks, the first `successes` of them successful, each injecting one
    memory of similarity `best` (none if None)."""
    injected = [] if best is None else [(1, best)]
    return [ReportedTask(1.0 if i < successes else -1.0, None, injected) for i in range(n)]


def test_the_grid_spans_the_max_step_around_the_calibrated_value() -> None:
    points = grid(0.5, CONFIG)
    assert points[0] == 0.35 and points[-1] == 0.65 and len(points) == 13
    assert points[1] == pytest.approx(0.375)
    # near the floor, the grid is clipped (and its duplicates dropped)
    low = grid(0.25, CONFIG)
    assert low[0] == 0.2 and low[1] == 0.225 and low[-1] == 0.4
    assert bounds(0.25, CONFIG) == (0.2, 0.4)
    assert bounds(None, CONFIG) == (0.2, 0.5)  # no calibrated value: around delta_small


def test_a_bin_that_fails_more_than_no_memory_closes_the_gate_above_it() -> None:
    # p0 = 3/5 = 0.6 (no memory injected)
    # bin 0.4: 5 tasks, 1 success -> g = (1 - 5 * 0.6) * 5 / (5 + 5) = -1.0
    # bin 0.55: 5 tasks, 0 successes -> g = (0 - 3) * 5 / 10 = -1.5
    # bin 0.5: 2 tasks (< MIN_BIN) -> g = 0
    # bin 0.65 (open above, s* = 0.9): 6 tasks, 6 successes -> g = (6 - 3.6) * 6 / 11
    ledger = (
        tasks(5, 3, None) + tasks(5, 1, 0.41) + tasks(2, 0, 0.51) + tasks(5, 0, 0.56)
        + tasks(6, 6, 0.9)
    )
    evidence = learn(ledger, 0.5, CONFIG)
    gains = {round(b.low, 3): b.gain for b in evidence.bins if b.tasks}
    assert gains == pytest.approx({0.4: -1.0, 0.5: 0.0, 0.55: -1.5, 0.65: 2.4 * 6 / 11})
    # G is highest (2.4 * 6 / 11) for t in 0.575 .. 0.65; nearest the calibrated 0.5: 0.575
    assert evidence.learned == pytest.approx(0.575)
    assert evidence.empty_pool == 5 and evidence.empty_pool_success_rate == pytest.approx(0.6)
    assert evidence.tasks == 23
    assert (evidence.above, evidence.above_success_rate) == (6, 1.0)
    assert evidence.below == 12 and evidence.below_success_rate == pytest.approx(1 / 12)
    shown = evidence.as_dict()
    assert shown["learned_delta"] == pytest.approx(0.575)
    assert shown["tasks_empty_pool"] == 5 and len(shown["bins"]) == 4  # type: ignore[arg-type]


def test_bins_that_help_keep_the_gate_at_the_calibrated_value() -> None:
    ledger = tasks(5, 2, None) + tasks(5, 4, 0.41) + tasks(5, 5, 0.9)
    # p0 = 0.4; g(0.4) = (4 - 2) * 5 / 10 = 1.0, g(0.65) = (5 - 2) * 5 / 10 = 1.5
    # G = 2.5 for t in 0.35 .. 0.4 (both bins injected), 1.5 above: the highest nearest
    # the calibrated 0.5 is 0.4, which keeps the helping bin open
    evidence = learn(ledger, 0.5, CONFIG)
    assert evidence.learned == pytest.approx(0.4)


def test_thin_evidence_learns_nothing_or_stays_at_the_calibrated_value() -> None:
    # fewer than MIN_BIN tasks without memory: no learned value
    assert learn(tasks(4, 0, None) + tasks(10, 0, 0.41), 0.5, CONFIG).learned is None
    # fewer than MIN_BIN tasks with memory: none either
    assert learn(tasks(10, 5, None) + tasks(4, 0, 0.41), 0.5, CONFIG).learned is None
    # bins all thin (each < MIN_BIN): G = 0 everywhere, the calibrated value
    thin = tasks(5, 3, None) + tasks(4, 0, 0.41) + tasks(4, 0, 0.56)
    assert learn(thin, 0.5, CONFIG).learned == pytest.approx(0.5)
    assert learn([], None, CONFIG).learned is None


def test_the_learned_value_never_leaves_its_bounds() -> None:
    # p0 = 1; injections at 0.53 and 0.6 all fail, those at 0.9 all succeed
    ledger = tasks(5, 5, None) + tasks(5, 0, 0.53) + tasks(5, 0, 0.6) + tasks(5, 5, 0.9)
    # g(0.525) = g(0.6) = -2.5, g(0.65) = 0: G is highest (0) at 0.625 and 0.65 -> 0.625
    assert learn(ledger, 0.5, CONFIG).learned == pytest.approx(0.625)
    # max step 0.05: the grid ends at 0.55, whose bin (open above) holds 0.6 and 0.9:
    # g(0.55) = (5 - 10) * 10 / 15; G is highest at 0.55, the bound
    small = MemoryConfig(gate_learning=True, gate_max_step=0.05)
    assert learn(ledger, 0.5, small).learned == pytest.approx(0.55)
    # a gate clamped against the calibrated value in force when it applies
    assert clamp(0.9, 0.5, CONFIG) == pytest.approx(0.65)
    assert clamp(0.1, 0.3, CONFIG) == 0.2  # the floor
    assert clamp(0.4, 0.5, CONFIG) == 0.4


def test_false_positive_injections() -> None:
    ledger = [
        ReportedTask(-1.0, None, [(1, 0.5), (2, 0.6)]),  # failed, no used_ids: both
        ReportedTask(-1.0, [1], [(1, 0.5), (2, 0.6)]),  # failed, used 1: only 2
        ReportedTask(0.0, [], [(3, 0.5)]),  # reward 0 is a failure; 3 unused
        ReportedTask(1.0, None, [(4, 0.7)]),  # success: none
        ReportedTask(-1.0, None, []),  # nothing injected: nothing counted
    ]
    assert false_positives(ledger) == (4, 6)
    assert learn(ledger, 0.5, CONFIG).false_positive_rate == pytest.approx(4 / 6)
    assert learn([], 0.5, CONFIG).false_positive_rate is None


def test_the_gate_in_force() -> None:
    off = MemoryConfig()
    assert gate(None, 0.5, off, 0.6) == 0.5  # learning off: the learned value is ignored
    assert gate(None, 0.5, CONFIG, 0.6) == 0.6
    assert gate(None, 0.5, CONFIG, 0.9) == pytest.approx(0.65)  # clamped
    assert gate(0.3, 0.5, CONFIG, 0.6) == 0.3  # explicit wins
    assert gate(None, None, CONFIG, None) == 0.35
    assert gate(None, None, CONFIG, 0.45) == 0.45  # around delta_small


def test_recomputation_is_due_every_ten_outcomes() -> None:
    assert [n for n in range(0, 31) if due(n)] == [10, 20, 30]


def test_learning_is_deterministic_and_order_free() -> None:
    ledger = tasks(5, 3, None) + tasks(5, 1, 0.41) + tasks(6, 6, 0.9)
    assert learn(ledger, 0.5, CONFIG) == learn(list(reversed(ledger)), 0.5, CONFIG)


def test_config_refuses_a_bad_max_step() -> None:
    from memrl import InvalidInputError

    with pytest.raises(InvalidInputError, match="gate_max_step"):
        MemoryConfig(gate_max_step=2.0)
