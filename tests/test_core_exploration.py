"""Epsilon-greedy phase B: the ledger records the probability of the injected set under the policy."""

from __future__ import annotations

import math
import random

import pytest
from fake_embedder import FakeEmbedder, at_cosine, axis

from memrl import MemoryConfig
from memrl.retrieval import Candidate, select

COSINES = [0.9, 0.8, 0.7, 0.6]  # four candidates, k2 = 2: C(4, 2) = 6 possible injected sets
EPSILON = 0.4


def exploring_memory(open_memory, seed: int):
    vectors = {f"memory {i}": at_cosine(c) for i, c in enumerate(COSINES)}
    vectors["query"] = axis(0)
    embedder = FakeEmbedder(dim=4, model_id="fake-4", vectors=vectors)
    memory = open_memory(
        embedder, MemoryConfig(delta=0.0, k1=4, k2=2, epsilon=EPSILON), seed=seed
    )
    ids = [memory.store_experience(f"memory {i}", f"experience {i}").id for i in range(4)]
    return memory, ids


def test_selection_prob_in_the_ledger_matches_the_formula(open_memory, sql) -> None:
    memory, ids = exploring_memory(open_memory, seed=1234)
    greedy = {ids[0], ids[1]}  # equal Q: the two most similar
    n_sets = math.comb(4, 2)
    explored = non_greedy = 0
    for _ in range(200):
        task = memory.recall("query")
        chosen = {m.id for m in task.injected}
        [(flag, prob, eps)] = sql(
            memory.storage,
            "SELECT explored, selection_prob, epsilon FROM tasks WHERE task_id = ?",
            task.task_id,
        )
        ledger_chosen = {
            r[0]
            for r in sql(
                memory.storage,
                "SELECT memory_id FROM task_candidates WHERE task_id = ? AND injected = 1",
                task.task_id,
            )
        }
        assert ledger_chosen == chosen and len(chosen) == 2
        expected = EPSILON / n_sets + ((1 - EPSILON) if chosen == greedy else 0.0)
        assert prob == pytest.approx(expected)
        assert task.selection_prob == pytest.approx(expected)
        assert (eps, bool(flag)) == (EPSILON, task.explored)
        if not flag:
            assert chosen == greedy
        explored += flag
        non_greedy += chosen != greedy
    # Both branches of the formula were exercised: 1/6 + 0.6 for greedy sets, 1/15 for the rest.
    assert 0 < non_greedy < explored
    # Seeded: about epsilon of 200 recalls explore (binomial sd ~ 7).
    assert 50 <= explored <= 110


def test_same_seed_same_choices(open_memory, tmp_path) -> None:
    runs = []
    for name in ("a.db", "b.db"):
        memory, ids = exploring_memory(
            lambda e, c, seed, name=name: open_memory(e, c, seed=seed, path=tmp_path / name),
            seed=7,
        )
        runs.append([sorted(ids.index(m.id) for m in memory.recall("query").injected)
                     for _ in range(30)])
    assert runs[0] == runs[1]


def test_select_reports_the_probability_of_each_branch() -> None:
    pool = [Candidate(i, s, 0.0) for i, s in enumerate(COSINES)]
    rng = random.Random(0)
    for _ in range(100):
        twin_state = rng.getstate()
        sel = select(pool, lam=0.5, k2=2, epsilon=EPSILON, rng=rng)
        twin = random.Random()
        twin.setstate(twin_state)
        assert sel.explored == (twin.random() < EPSILON)
        greedy = {s.memory_id for s in sel.injected} == {0, 1}
        assert sel.selection_prob == pytest.approx(EPSILON / 6 + (1 - EPSILON) * greedy)


@pytest.mark.parametrize(("epsilon", "pool_size"), [(0.0, 4), (0.5, 2), (1.0, 1)])
def test_no_exploration_possible_means_probability_one(epsilon: float, pool_size: int) -> None:
    pool = [Candidate(i, s, 0.0) for i, s in enumerate(COSINES[:pool_size])]
    sel = select(pool, lam=0.5, k2=2, epsilon=epsilon, rng=random.Random(3))
    assert (sel.explored, sel.selection_prob) == (False, 1.0)
    assert [s.memory_id for s in sel.injected] == list(range(min(2, pool_size)))
