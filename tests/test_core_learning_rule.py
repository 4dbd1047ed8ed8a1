"""The learning rule in Python (learning.py) and directed exploration (retrieval.py),
hand-computed."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import pytest

from memrl import InvalidInputError, MemoryConfig
from memrl.learning import Evidence, LearningRule, posterior_mean, posterior_sd, update
from memrl.retrieval import Candidate, _order, _thompson_prob, scores, select, utilities


def test_posterior_of_a_new_memory_is_uniform() -> None:
    assert posterior_mean(0, 0) == 0.0
    assert posterior_sd(0, 0) == pytest.approx(2 / 12**0.5)


def test_posterior_narrows_with_evidence() -> None:
    # Beta(21, 1): mean 21/22, sd sqrt(21 / (22^2 * 23)) on [0, 1]
    assert posterior_mean(20, 0) == pytest.approx(2 * 21 / 22 - 1)
    assert posterior_sd(20, 0) == pytest.approx(2 * (21 / (22**2 * 23)) ** 0.5)
    assert posterior_sd(20, 0) < posterior_sd(2, 0) < posterior_sd(0, 0)


def test_update_without_change_detection_is_the_ema() -> None:
    rule = LearningRule(alpha=0.3)
    s = update(Evidence(0.5, 0.5, 3, 1), -1.0, rule)
    assert s == Evidence(pytest.approx(0.05), pytest.approx(-0.55), 3.0, 2.0)


def test_update_with_change_detection() -> None:
    rule = LearningRule(alpha=0.3, alpha_recent=0.7, change_threshold=1.2)
    s = update(Evidence(1.0, 1.0, 20, 0), -1.0, rule)
    assert s == Evidence(pytest.approx(-0.4), pytest.approx(-0.4), 0.0, 1.0)
    kept = update(Evidence(0.6, 0.9, 8, 2), -1.0, rule)  # recent -0.43 vs record 0.5: kept
    assert kept.successes == 8 and kept.failures == 3


def _pool() -> list[Candidate]:
    # memory 1: the task's own intent, untried; 2 and 3: other intents with a long record
    return [
        Candidate(1, 0.95, 0.0, posterior_sd(0, 0)),
        Candidate(2, 0.60, 0.6, posterior_sd(16, 4)),
        Candidate(3, 0.58, 0.5, posterior_sd(15, 5)),
    ]


def test_ucb_tries_the_untried_memory_the_paper_rule_passes_over() -> None:
    # q_sd: 0.5774, 0.1748, 0.1857; z(sim) = (1.413, -0.647, -0.765)
    # paper rule: z(Q) = (-1.397, 0.889, 0.508) -> scores (0.008, 0.121, -0.129): memory 2
    paper = select(_pool(), lam=0.5, k2=1)
    assert [s.memory_id for s in paper.injected] == [2]
    assert [round(s.score, 3) for s in paper.ranked] == [0.121, 0.008, -0.129]
    # ucb, w = 1: u = (0.577, 0.775, 0.686) still ranks memory 2 first
    assert [s.memory_id for s in select(_pool(), 0.5, 1, explore="ucb").injected] == [2]
    # ucb, w = 2: u = (1.155, 0.950, 0.872), z(u) = (1.363, -0.355, -1.008)
    # -> scores (1.388, -0.501, -0.887): the untried memory of the task's own intent
    ucb = select(_pool(), lam=0.5, k2=1, explore="ucb", explore_weight=2.0)
    assert [s.memory_id for s in ucb.injected] == [1]
    assert [round(s.score, 3) for s in ucb.ranked] == [1.388, -0.501, -0.887]
    assert ucb.selection_prob == 1.0


def test_thompson_records_an_estimated_selection_probability() -> None:
    chosen = [
        select(_pool(), lam=0.5, k2=1, rng=random.Random(seed), explore="thompson")
        for seed in range(40)
    ]
    ids = {tuple(s.memory_id for s in c.injected) for c in chosen}
    assert len(ids) > 1  # the draw varies the choice
    for c in chosen:
        assert 0.0 < c.selection_prob <= 1.0
    # same seed, same choice and estimate
    again = select(_pool(), lam=0.5, k2=1, rng=random.Random(3), explore="thompson")
    assert again == chosen[3]


def _python_set_shares(pool, lam, k2, weight, draws, seed) -> Counter:
    """The reference: one draw at a time through `scores` and `_order`, as phase B ranks
    the draw that chooses the set; how many draws chose each set (of pool indexes)."""
    rng = random.Random(seed)
    counts: Counter = Counter()
    for _ in range(draws):
        drawn = scores(pool, lam, utilities(pool, "thompson", weight, rng))
        counts[frozenset(_order(pool, drawn)[:k2])] += 1
    return counts


def test_thompson_estimate_matches_the_one_draw_at_a_time_reference() -> None:
    """Every 2-subset's estimated probability, by the draw matrix and by the reference,
    agree within sampling error. Memories 4 and 5 are alike with no spread (sd 0), so every
    draw ties them and the newer one must win in both."""
    pool = [
        *_pool(),
        Candidate(4, 0.70, 0.2, 0.0),
        Candidate(5, 0.70, 0.2, 0.0),
        Candidate(6, 0.80, -0.3, posterior_sd(1, 3)),
    ]
    lam, k2, weight, draws = 0.5, 2, 2.0, 20_000
    reference = _python_set_shares(pool, lam, k2, weight, draws, seed=11)
    # pool indexes 3 and 4 (memories 4 and 5) tie in every draw: the newer one wins
    assert not any(3 in s and 4 not in s for s in reference)
    sets = list(itertools.combinations(range(len(pool)), k2))
    total = 0.0
    for chosen in sets:  # the same seed: one draw matrix, every set's share of it
        estimate = _thompson_prob(pool, lam, k2, weight, set(chosen), random.Random(5), draws)
        total += estimate
        p = reference[frozenset(chosen)] / draws
        spread = math.sqrt(max(p * (1 - p), 1 / draws) * 2 / draws)
        assert estimate == pytest.approx(p, abs=5 * spread + 1 / draws), chosen
    # each draw chose exactly one set; each estimate adds the draw that chose its set
    assert total == pytest.approx((draws + len(sets)) / (draws + 1))


def test_config_refuses_unknown_exploration_and_bad_thresholds() -> None:
    with pytest.raises(InvalidInputError, match="explore must be one of none, ucb, thompson"):
        MemoryConfig(explore="greedy")
    with pytest.raises(InvalidInputError, match="change_threshold must be in"):
        MemoryConfig(change_threshold=0.0)
    with pytest.raises(InvalidInputError, match="explore must be a string"):
        MemoryConfig(explore=1)  # type: ignore[arg-type]
