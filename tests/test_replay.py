"""Off-policy replay of the ledger (memrl/replay.py) on a tiny hand-made ledger whose
estimates are computed by hand, and on a ledger a Memory wrote."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
from fake_embedder import FakeEmbedder

from memrl import Memory, MemoryConfig, open_storage
from memrl.errors import InvalidInputError
from memrl.replay import (
    LoggedTask,
    RewardModel,
    Setting,
    evaluate,
    grid,
    ledger,
    render,
)
from memrl.replay import replay as replay_ledger
from memrl.storage.base import LedgerEntry, PoolMember

# Every pool: memory 1 (similarity 0.9, Q -0.5) and memory 2 (similarity 0.5, Q 0.5); the
# logging policy is lam 0 (greedy: memory 1), k2 1, epsilon 0.5, so the greedy set has
# probability 0.5 / 2 + 0.5 = 0.75 and the other one 0.25. t4 had an empty pool.
#   task  injected  mu    reward  success
#   t1    {1}       0.75  -1      0
#   t2    {2}       0.25  +1      1
#   t3    {1}       0.75  -1      0
#   t4    {}        1     +1      1
#   t5    {2}       0.25  -1      0
LOG = [("t1", 1, 0.75, -1.0), ("t2", 2, 0.25, 1.0), ("t3", 1, 0.75, -1.0), ("t4", None, 1.0, 1.0),
       ("t5", 2, 0.25, -1.0)]


def entry(task_id: str, injected: int | None, mu: float | None, reward: float | None,
          delta: float = 0.3) -> LedgerEntry:
    pool = [] if injected is None else [
        PoolMember(1, 0, 0.9, -0.5, 0.0, injected == 1, injected == 1, None, "a", "success"),
        PoolMember(2, 1, 0.5, 0.5, 0.0, injected == 2, injected == 2, None, "b", "success"),
    ]
    return LedgerEntry(task_id, "ns", "q", 0.0, 5, 1, 0.0, delta, 0.5, injected == 2, mu,
                       None if reward is None else "reward", reward, None, None, pool)


def tasks() -> list[LoggedTask]:
    return [LoggedTask.from_entry(entry(*row)) for row in LOG]


def test_lam_1_greedy_by_hand():
    r = evaluate(tasks(), Setting(lam=1.0), bootstrap=200)
    # pi of the logged set: 1 where it is {2} (lam 1 picks the higher Q) or empty, else 0;
    # w = 0, 4, 0, 1, 4
    assert (r.evaluated, r.support, r.agree) == (5, 3, 3)
    assert r.ess == pytest.approx(81 / 33)
    assert r.success.ips.value == pytest.approx((4 * 1 + 1 * 1) / 5)
    assert r.success.snips.value == pytest.approx(5 / 9)
    assert r.reward.ips.value == pytest.approx((4 * 1 + 1 * 1 + 4 * -1) / 5)
    # reward model for success: mean 0.4; memory 1 (0, 0) -> (0 + 2*0.4) / 4 = 0.2;
    # memory 2 (1, 0) -> (1 + 0.8) / 4 = 0.45; empty set: t4's 1.0.
    # DR terms: .45, .45 + 4 (1 - .45), .45, 1 + 1 (1 - 1), .45 + 4 (0 - .45)
    assert r.success.dr.value == pytest.approx((0.45 + 2.65 + 0.45 + 1.0 - 1.35) / 5)
    assert r.success.model == pytest.approx((4 * 0.45 + 1.0) / 5)
    lo, hi = r.success.dr.low, r.success.dr.high
    assert lo is not None and hi is not None and lo <= r.success.dr.value <= hi
    assert any("thin support" in w for w in r.warnings)


def test_lam_0_is_the_logged_greedy_rule():
    r = evaluate(tasks(), Setting(lam=0.0), bootstrap=50)
    # w = 4/3, 0, 4/3, 1, 0; successes only on t4
    assert r.support == 3 and r.agree == 3
    assert r.success.ips.value == pytest.approx(1 / 5)
    assert r.success.snips.value == pytest.approx(1 / (11 / 3))


def test_target_epsilon_uses_the_epsilon_greedy_probability():
    r = evaluate(tasks(), Setting(lam=1.0, epsilon=0.5), bootstrap=50)
    # pi({2}) = 0.75, pi({1}) = 0.25: w = 1/3, 3, 1/3, 1, 3
    assert r.support == 5
    assert r.success.ips.value == pytest.approx((3 + 1) / 5)
    assert r.reward.snips.value == pytest.approx((-1 / 3 + 3 - 1 / 3 + 1 - 3) / (1 / 3 + 3 + 1 / 3 + 1 + 3))


def test_target_logging_policy_has_weight_one():
    r = evaluate(tasks(), Setting(lam=0.0, epsilon=0.5), bootstrap=50)
    assert r.ess == pytest.approx(5)
    assert r.success.ips.value == pytest.approx(2 / 5)  # the observed success rate
    assert r.reward.ips.value == pytest.approx(-1 / 5)


def test_higher_delta_filters_the_pool_and_lower_is_not_evaluable():
    r = evaluate(tasks(), Setting(delta=0.6), bootstrap=50)
    # only memory 1 (0.9) passes 0.6: its set has probability 1, {2} probability 0
    assert r.support == 3 and r.success.ips.value == pytest.approx(1 / 5)
    low = evaluate(tasks(), Setting(delta=0.2), bootstrap=50)
    assert low.evaluated == 0 and low.excluded_gate == 5 and low.success.dr.value is None
    assert "never recorded" in low.warnings[0]
    mixed = [LoggedTask.from_entry(entry(*LOG[0], delta=0.4)), *tasks()[1:]]
    some = evaluate(mixed, Setting(delta=0.35), bootstrap=50)
    assert (some.evaluated, some.excluded_gate) == (4, 1)


def test_other_k2_has_no_support_but_the_model():
    r = evaluate(tasks(), Setting(k2=2), bootstrap=50)
    assert r.support == 1  # only the empty pool's empty set
    r3 = evaluate(tasks()[:3], Setting(k2=2), bootstrap=50)
    assert r3.support == 0 and r3.success.ips.value == 0.0
    assert any("no support" in w for w in r3.warnings)
    assert r3.success.dr.value == pytest.approx(r3.success.model)


def test_missing_selection_prob_is_recomputed():
    assert LoggedTask.from_entry(entry("t", 2, None, 1.0)).mu == pytest.approx(0.25)
    assert LoggedTask.from_entry(entry("t", 1, None, 1.0)).mu == pytest.approx(0.75)


def test_reward_model_shrinks_to_the_mean():
    model = RewardModel(tasks(), [t.success for t in tasks()])
    assert model.mean == pytest.approx(0.4)
    assert model.of_memory(1) == pytest.approx(0.2) and model.of_memory(2) == pytest.approx(0.45)
    assert model.of_memory(99) == pytest.approx(0.4) and model.of_set([]) == pytest.approx(1.0)


def test_report_and_errors():
    entries = [entry(*row) for row in LOG] + [entry("pending", 1, 0.75, None)]
    report = replay_ledger("ns", entries, grid([0, 1], None, [0.2], None), bootstrap=50)
    assert report.tasks == 5 and report.logged["reproduced"] == 3
    text = render(report)
    assert "lam 0, delta 0.2" in text and "cannot be evaluated" in text
    with pytest.raises(InvalidInputError, match="no reported tasks"):
        replay_ledger("ns", [entry("pending", 1, 0.75, None)], [Setting()])
    for bad, match in ((dict(lam=[1.5]), "--lam 1.5"), (dict(k2=[0]), "--k2 0"),
                       (dict(delta=[2.0]), "--delta"), (dict(epsilon=[-0.1]), "--epsilon")):
        with pytest.raises(InvalidInputError, match=match):
            grid(bad.get("lam"), bad.get("k2"), bad.get("delta"), bad.get("epsilon"))


def test_greedy_logging_says_so():
    greedy = [replace(entry(*LOG[0]), epsilon=0.0, selection_prob=1.0)]
    report = replay_ledger("ns", greedy, [Setting(lam=1.0)], bootstrap=10)
    assert any("never explored" in n for n in report.notes)


def test_a_memory_ledger_replays_its_own_policy(tmp_path: Path):
    """A Memory exploring with epsilon 0.3 writes a ledger; replaying its own setting gives
    weight 1 everywhere and the observed rate, and every unexplored set is reproduced."""
    embedder = FakeEmbedder()
    store = open_storage(tmp_path / "m.db", embedder.dim, embedder.model_id)
    config = MemoryConfig(k1=5, k2=2, lam=0.5, epsilon=0.3, delta=-1.0, explore="none")
    memory = Memory(store, embedder, config, rng=random.Random(1))
    try:
        outcome = random.Random(2)
        for i in range(12):
            memory.store_experience(f"fix the build step {i}", f"way {i}", "success", "ns")
        for i in range(40):
            recalled = memory.recall(f"fix the build step {i % 12}", "ns")
            assert recalled.task_id is not None
            memory.report(recalled.task_id, success=outcome.random() < 0.6)
        report = replay_ledger("ns", ledger(memory, "ns", page=7),
                        [Setting(lam=0.5, epsilon=0.3), Setting(lam=1.0)], bootstrap=100)
    finally:
        store.close()
    assert report.tasks == 40 and report.logged["reproduced"] == report.logged["unexplored"]
    own = report.results[0]
    assert own.ess == pytest.approx(40) and own.success.ips.value == pytest.approx(
        report.logged["success_rate"])


def test_replay_check_sets_estimates_beside_the_measured_rates(tmp_path: Path):
    from memrl_clients.eval import replay_check

    embedder = FakeEmbedder()
    store = open_storage(tmp_path / "humaneval-memrl_eps.db", embedder.dim, embedder.model_id)
    memory = Memory(store, embedder, MemoryConfig(k2=1, epsilon=0.5, delta=-1.0),
                    rng=random.Random(0))
    try:
        for i in range(4):
            memory.store_experience(f"task {i}", f"way {i}", "success", "eval")
        for i in range(20):
            recalled = memory.recall(f"task {i % 4}", "eval")
            assert recalled.task_id is not None
            memory.report(recalled.task_id, success=i % 3 > 0)
    finally:
        store.close()
    sr = {"sr_per_epoch": [0.5, 1.0]}
    results = {"humaneval": {"memrl_eps": sr, "lam0": sr, "lam1": {"sr_per_epoch": [0.25]}}}
    (tmp_path / "eval.json").write_text(json.dumps({"results": results}))
    def open_db(path: Path) -> Memory:
        return Memory(open_storage(path, embedder.dim, embedder.model_id), embedder)

    rows = replay_check.check(tmp_path, bootstrap=20, seed=0, open_db=open_db)
    assert [(r["policy"], r["actual_sr"], r["tasks"]) for r in rows] == [
        ("lam0", 0.75, 20), ("lam1", 0.25, 20)]
    assert "| lam 0 (lam0) |" in replay_check.table(rows)


def test_estimates_converge_to_the_true_value_on_a_simulated_ledger():
    """Pools of 4 memories with known success probabilities, logged by epsilon-greedy
    lambda 0.5 (epsilon 0.5, k2 2) through retrieval.select itself: IPS, SNIPS and DR of
    greedy lambda 1 land near its true success rate, which differs from the logged one."""
    from memrl.retrieval import Candidate, select

    rng = random.Random(7)
    entries, truth = [], []
    for n in range(4000):
        pool = [Candidate(m, rng.uniform(0.4, 0.9), rng.uniform(-1, 1)) for m in range(4 * n, 4 * n + 4)]
        p = {c.memory_id: (c.q + 1) / 2 for c in pool}  # Q says which memories help
        chosen = select(pool, 0.5, 2, 0.5, rng)
        ids = [s.memory_id for s in chosen.injected]
        won = rng.random() < sum(p[i] for i in ids) / 2
        target = [s.memory_id for s in select(pool, 1.0, 2).injected]
        truth.append(sum(p[i] for i in target) / 2)
        members = [PoolMember(s.memory_id, r, s.similarity, s.q, s.score, s.injected, s.injected,
                              None, "i", "success") for r, s in enumerate(chosen.ranked)]
        entries.append(LedgerEntry(f"t{n}", "ns", "q", 0.0, 5, 2, 0.5, 0.3, 0.5, chosen.explored,
                                   chosen.selection_prob, "reward", 1.0 if won else -1.0, None,
                                   None, members))
    report = replay_ledger("ns", entries, [Setting(lam=1.0)], bootstrap=50)
    true_value = sum(truth) / len(truth)
    logged = report.logged["success_rate"]
    assert isinstance(logged, float) and abs(logged - true_value) > 0.05
    r = report.results[0].success
    for e in (r.ips, r.snips, r.dr):
        assert e.value == pytest.approx(true_value, abs=0.04)
