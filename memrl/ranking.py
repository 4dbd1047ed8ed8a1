"""Phase B of retrieval: value-aware selection over the phase-A candidate pool.

score_i = (1 - lam) * z(sim_i) + lam * clip(z(Q_i), -3, 3), z-scores over the pool with the
population std (std = 1 when the pool has one item or the std is ~0). The top-k2 by score
are injected; with probability epsilon a uniformly random k2-subset is injected instead,
and the probability of the injected set under this policy is reported for off-policy replay.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

Z_CLIP = 3.0
STD_EPS = 1e-9


@dataclass(frozen=True)
class Candidate:
    memory_id: int
    similarity: float
    q: float


@dataclass(frozen=True)
class Scored:
    memory_id: int
    similarity: float
    q: float
    score: float
    injected: bool


@dataclass(frozen=True)
class Selection:
    ranked: list[Scored]  # the whole pool, best score first
    explored: bool  # True when the epsilon branch chose the injected set
    selection_prob: float  # probability of injecting exactly this set

    @property
    def injected(self) -> list[Scored]:
        return [s for s in self.ranked if s.injected]


def zscores(values: Sequence[float]) -> list[float]:
    n = len(values)
    if n == 0:
        return []
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
    if n == 1 or std < STD_EPS:
        std = 1.0
    return [(v - mean) / std for v in values]


def scores(pool: Sequence[Candidate], lam: float) -> list[float]:
    z_sim = zscores([c.similarity for c in pool])
    z_q = [max(-Z_CLIP, min(Z_CLIP, z)) for z in zscores([c.q for c in pool])]
    return [(1.0 - lam) * s + lam * q for s, q in zip(z_sim, z_q)]


def select(
    pool: Sequence[Candidate],
    lam: float,
    k2: int,
    epsilon: float = 0.0,
    rng: random.Random | None = None,
) -> Selection:
    """Rank the pool and choose the injected set (greedy, or random with probability epsilon)."""
    pool_scores = scores(pool, lam)
    order = sorted(
        range(len(pool)), key=lambda i: (-pool_scores[i], -pool[i].similarity, pool[i].memory_id)
    )
    greedy = set(order[:k2])
    chosen, explored = greedy, False
    n_sets = math.comb(len(pool), min(k2, len(pool))) if pool else 1
    if epsilon > 0.0 and n_sets > 1:
        rng = rng or random.Random()
        if rng.random() < epsilon:
            chosen, explored = set(rng.sample(range(len(pool)), k2)), True
    prob = epsilon / n_sets + ((1.0 - epsilon) if chosen == greedy else 0.0)
    ranked = [
        Scored(pool[i].memory_id, pool[i].similarity, pool[i].q, pool_scores[i], i in chosen)
        for i in order
    ]
    return Selection(ranked=ranked, explored=explored, selection_prob=prob if pool else 1.0)
