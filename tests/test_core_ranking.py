"""Two-phase retrieval: phase B scores computed by hand, and the same ranking through Memory.recall."""

from __future__ import annotations

import math

import pytest
from fake_embedder import FakeEmbedder, at_cosine, axis

from memrl import MemoryConfig
from memrl.retrieval import Candidate, select


def z(values: list[float]) -> list[float]:
    """z-scores as the paper defines them: population std, std = 1 for one item or ~0 spread."""
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    if len(values) == 1 or std < 1e-9:
        std = 1.0
    return [(v - mean) / std for v in values]


def expected_scores(sims: list[float], qs: list[float], lam: float) -> list[float]:
    zq = [min(3.0, max(-3.0, v)) for v in z(qs)]
    return [(1 - lam) * a + lam * b for a, b in zip(z(sims), zq)]


POOL = [Candidate(1, 0.9, -1.0), Candidate(2, 0.7, 1.0), Candidate(3, 0.5, 0.5)]


def test_select_matches_hand_computed_scores() -> None:
    # sims 0.9, 0.7, 0.5: mean 0.7, population std sqrt(0.08/3) = 0.163299 -> z = 1.224745, 0, -1.224745
    # Q -1, 1, 0.5: mean 1/6, std sqrt(2.1666.../3) = 0.849837 -> z = -1.372813, 0.980581, 0.392232
    # score = 0.5 z(sim) + 0.5 z(Q) = -0.074034, 0.490290, -0.416256
    selection = select(POOL, lam=0.5, k2=2)
    assert [s.memory_id for s in selection.ranked] == [2, 1, 3]
    assert [s.score for s in selection.ranked] == pytest.approx(
        [0.490290, -0.074034, -0.416256], abs=1e-6
    )
    assert [s.memory_id for s in selection.injected] == [2, 1]
    assert [s.injected for s in selection.ranked] == [True, True, False]
    assert selection.explored is False
    assert selection.selection_prob == 1.0


@pytest.mark.parametrize(
    ("lam", "order"),
    [(0.0, [1, 2, 3]), (0.25, [1, 2, 3]), (0.75, [2, 3, 1]), (1.0, [2, 3, 1])],
)
def test_lambda_moves_the_ranking_from_similarity_to_value(lam: float, order: list[int]) -> None:
    selection = select(POOL, lam=lam, k2=3)
    want = expected_scores([c.similarity for c in POOL], [c.q for c in POOL], lam)
    assert [s.memory_id for s in selection.ranked] == order
    by_id = {s.memory_id: s.score for s in selection.ranked}
    assert [by_id[c.memory_id] for c in POOL] == pytest.approx(want, abs=1e-12)


def test_z_of_q_is_clipped_to_three() -> None:
    # Eleven candidates, one with Q = 1 and ten with Q = 0: z(Q) of the outlier is sqrt(10) = 3.162,
    # clipped to 3; the others keep -1/sqrt(10). Similarities are all equal, so z(sim) = 0 (std = 1).
    pool = [Candidate(i, 0.5, 1.0 if i == 0 else 0.0) for i in range(11)]
    selection = select(pool, lam=0.5, k2=1)
    by_id = {s.memory_id: s.score for s in selection.ranked}
    assert by_id[0] == pytest.approx(0.5 * 3.0)
    assert by_id[0] != pytest.approx(0.5 * math.sqrt(10))
    for i in range(1, 11):
        assert by_id[i] == pytest.approx(0.5 * -1 / math.sqrt(10))
    assert [s.memory_id for s in selection.injected] == [0]


def test_single_candidate_and_zero_spread_use_std_one() -> None:
    single = select([Candidate(7, 0.42, 0.9)], lam=0.5, k2=3)
    assert [(s.memory_id, s.score, s.injected) for s in single.ranked] == [(7, 0.0, True)]
    flat = select([Candidate(1, 0.6, 0.2), Candidate(2, 0.6, 0.2)], lam=0.5, k2=1)
    assert [s.score for s in flat.ranked] == [0.0, 0.0]
    # equal scores: the higher Q, then the newer (larger) id, wins
    assert [s.memory_id for s in flat.injected] == [2]
    by_q = select([Candidate(1, 0.6, 0.3), Candidate(2, 0.6, 0.2)], lam=0.0, k2=1)
    assert [s.memory_id for s in by_q.injected] == [1]


def test_empty_pool_selects_nothing() -> None:
    selection = select([], lam=0.5, k2=3, epsilon=0.5)
    assert selection.ranked == []
    assert selection.selection_prob == 1.0


# --- the same ranking through Memory.recall ------------------------------------------------

COSINES = {"mem a": 0.9, "mem b": 0.7, "mem c": 0.5, "mem d": 0.2}
TARGET_Q = {"mem a": -1.0, "mem b": 1.0, "mem c": 0.5, "mem d": 1.0}


def ranking_embedder() -> FakeEmbedder:
    vectors = {name: at_cosine(c) for name, c in COSINES.items()}
    vectors["the query"] = axis(0)
    return FakeEmbedder(dim=4, model_id="fake-4", vectors=vectors)


def test_recall_ranks_by_hand_computed_scores(open_memory, sql) -> None:
    # the paper's rule: no exploration bonus, no change detection
    paper = {"explore": "none", "change_threshold": None}
    memory = open_memory(
        ranking_embedder(), MemoryConfig(alpha=1.0, delta=0.3, k1=5, k2=2, **paper)
    )
    ids = {name: memory.store_experience(name, f"experience of {name}").id for name in COSINES}
    # alpha = 1: one report of reward r sets Q = r exactly; used_ids credits one memory at a time.
    for name, r in TARGET_Q.items():
        task = memory.recall(name, k2=4, delta=-1.0)
        memory.report(task.task_id, reward=r, used_ids=[ids[name]])
    assert {n: memory.get(i).q for n, i in ids.items()} == TARGET_Q

    result = memory.recall("the query")

    # 'mem d' (cosine 0.2) is below delta 0.3: phase A drops it whatever its Q.
    sims, qs = [0.9, 0.7, 0.5], [-1.0, 1.0, 0.5]
    want = dict(zip(["mem a", "mem b", "mem c"], expected_scores(sims, qs, 0.5)))
    assert [c.intent for c in result.candidates] == ["mem b", "mem a", "mem c"]
    assert [c.intent for c in result.injected] == ["mem b", "mem a"]
    assert [c.similarity for c in result.candidates] == pytest.approx([0.7, 0.9, 0.5], abs=1e-6)
    assert [c.q for c in result.candidates] == [1.0, -1.0, 0.5]
    assert [c.score for c in result.candidates] == pytest.approx(
        [want["mem b"], want["mem a"], want["mem c"]], abs=1e-5
    )
    assert result.delta == 0.3
    ledger = sql(
        memory.storage,
        "SELECT memory_id, rank, similarity, q, score, injected, credited FROM task_candidates "
        "WHERE task_id = ? ORDER BY rank",
        result.task_id,
    )
    assert [row[:2] for row in ledger] == [(ids["mem b"], 0), (ids["mem a"], 1), (ids["mem c"], 2)]
    assert [row[5:] for row in ledger] == [(1, 0), (1, 0), (0, 0)]
    assert [row[4] for row in ledger] == pytest.approx([c.score for c in result.candidates])
    assert sql(memory.storage, "SELECT k1, k2, lam, delta FROM tasks WHERE task_id = ?",
               result.task_id) == [(5, 2, 0.5, 0.3)]


def test_recall_with_pure_similarity_is_plain_rag(open_memory) -> None:
    memory = open_memory(ranking_embedder(), MemoryConfig(alpha=1.0, delta=0.3, k1=5, k2=2))
    ids = {name: memory.store_experience(name, f"experience of {name}").id for name in COSINES}
    task = memory.recall("mem b", k2=4, delta=-1.0)
    memory.report(task.task_id, reward=1.0, used_ids=[ids["mem c"]])
    result = memory.recall("the query", lam=0.0)
    assert [c.intent for c in result.injected] == ["mem a", "mem b"]
    result = memory.recall("the query", lam=1.0)
    assert result.injected[0].intent == "mem c"


def test_k1_limits_the_pool_before_value_selection(open_memory) -> None:
    memory = open_memory(ranking_embedder(), MemoryConfig(alpha=1.0, delta=0.3, k1=5, k2=2))
    ids = {name: memory.store_experience(name, f"experience of {name}").id for name in COSINES}
    task = memory.recall("mem c", k2=4, delta=-1.0)
    memory.report(task.task_id, reward=1.0, used_ids=[ids["mem c"]])
    # k1 = 2 keeps the two most similar (a, b); 'mem c' has the best Q but never enters the pool.
    result = memory.recall("the query", k1=2, k2=1, lam=1.0)
    assert sorted(c.intent for c in result.candidates) == ["mem a", "mem b"]
    assert "mem c" not in [c.intent for c in result.injected]
