"""The two-phase retrieval rule of MemRL, in one place.

**Parameters.** A recall uses the configured k1, k2, lambda, delta and epsilon unless the
caller overrides them. A caller's `k` (memories to inject) sets k2 = k and widens the pool
to k1 = max(k, configured k1).

**The gate.** delta is, in order: the caller's or the configuration's explicit value; with
`gate_learning` on, the namespace's learned value (learned from outcomes, see
`gate_learning`), kept within `gate_max_step` of the calibrated value in force and never
below `delta_floor`; the namespace's calibrated value (the top-20% quantile of pairwise
intent similarity, see `calibration`); `delta_small` while the namespace is too small to
calibrate.

**Phase A: similarity recall over distinct intents.** Memories are filed under their
intent. Intent texts that are equal after `intent_key` (whitespace collapsed, lower case:
the model is uncased, so such texts embed identically) are one intent with one vector.
Phase A takes the k1 intents nearest to the task whose cosine similarity is above delta
(ties: the newer intent first), and every memory filed under them enters the pool with its
intent's similarity, at most `per_intent` of them per intent. When an intent holds more,
the storage returns the ones with the highest Q, newest first among equal Q, so a new
memory (Q_init = 0) always outranks the memories whose outcomes drove Q below zero, and a
task repeated many times never freezes its pool to its oldest memories. An empty pool
injects nothing: the agent works alone.

Near-identical wordings are not merged into one intent (the paper's reference code files a
memory under an existing intent at similarity >= 0.90). Distinct tasks get that close:
over the 164 HumanEval task descriptions (13,366 pairs, this model), HumanEval/56 and /61,
two `correct_bracketing(brackets: str)` problems on different brackets, have cosine 0.956;
merged, their memories would share one similarity and could no longer be told apart by it.
Near-identical wordings of one task stay separate intents, each close to the task, so each
takes a phase-A slot and their memories still compete in phase B.

**Phase B: value-aware selection.** score_i = (1 - lambda) z(sim_i) + lambda clip(z(Q_i),
-3, 3), z-scores over the pool with the population std (std = 1 when the pool has one item
or the std is below `STD_EPS`). The top k2 by score are injected; ties go to the higher Q,
then to the newer memory. With probability epsilon a uniformly random k2-subset is
injected instead, and the probability of the injected set under this policy is recorded
for off-policy replay.

**Directed exploration (optional).** The paper explores blindly (epsilon). With `explore`
set, phase B ranks by a utility u_i in place of Q_i, built from each memory's posterior
standard deviation q_sd (learning.py): "ucb" u = Q + w q_sd (optimism: a memory with
little evidence is tried before one known to be mediocre); "thompson" u = Q + w q_sd N(0,1)
(a draw per memory per recall: the less evidence, the wider the draw). Thompson's
selection probability has no closed form: it is estimated from THOMPSON_DRAWS further draws
(the chosen set's share, counting the draw that chose it), drawn and ranked as one numpy
matrix, and recorded like epsilon's.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from . import gate_learning
from .config import MemoryConfig

Z_CLIP = 3.0
# Similarities are float32 cosines: 384-term dot products carry rounding noise of a few
# 1e-7 (float32 epsilon 1.2e-7 times sqrt(384)), so two wordings of one text can differ
# by ~1e-6. A spread below this is noise, not signal: z-scoring it would blow float
# rounding up to z = +-1. Q moves in steps of alpha * |r - Q|, far above it.
STD_EPS = 1e-5
# Memories per intent in the pool (see the module docstring).
PER_INTENT = 10
# Draws that estimate the probability of a Thompson-sampled set (see the module docstring).
THOMPSON_DRAWS = 200


def intent_key(text: str) -> str:
    """The grouping key of an intent text: whitespace collapsed, lower case."""
    return " ".join(text.split()).lower()


@dataclass(frozen=True)
class RecallParams:
    k1: int
    k2: int
    lam: float
    delta: float | None  # None: calibrated per namespace
    epsilon: float
    per_intent: int = PER_INTENT
    explore: str = "none"
    explore_weight: float = 1.0

    @classmethod
    def of(
        cls,
        config: MemoryConfig,
        *,
        k: int | None = None,
        k1: int | None = None,
        k2: int | None = None,
        lam: float | None = None,
        delta: float | None = None,
        epsilon: float | None = None,
    ) -> RecallParams:
        """The parameters of one recall: `config`, with the caller's overrides."""
        if k is not None:
            k2 = k
            k1 = max(k, k1 if k1 is not None else config.k1)
        overrides: dict[str, Any] = {"k1": k1, "k2": k2, "lam": lam, "delta": delta, "epsilon": epsilon}
        given = {n: v for n, v in overrides.items() if v is not None}
        # replace() re-validates the whole config (~0.2 ms); without overrides it is valid
        merged = replace(config, **given) if given else config
        return cls(
            merged.k1, merged.k2, merged.lam, merged.delta, merged.epsilon,
            explore=merged.explore, explore_weight=merged.explore_weight,
        )


def gate(
    explicit: float | None,
    calibrated: float | None,
    config: MemoryConfig,
    learned: float | None = None,
) -> float:
    """delta for a recall (see the module docstring)."""
    if explicit is not None:
        return explicit
    if config.gate_learning and learned is not None:
        return gate_learning.clamp(learned, calibrated, config)
    if calibrated is not None:
        return calibrated
    return config.delta_small


def phase_a(hits: Sequence[tuple[int, float]], gate: float, k1: int) -> list[tuple[int, float]]:
    """The k1 intents above the gate, best first, ties to the newer (larger) intent id."""
    passed = [(iid, sim) for iid, sim in hits if sim > gate]
    passed.sort(key=lambda h: (-h[1], -h[0]))
    return passed[:k1]


# -- phase B ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    memory_id: int
    similarity: float
    q: float
    q_sd: float = 0.0  # posterior standard deviation (learning.py); 0: no exploration bonus


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


def scores(pool: Sequence[Candidate], lam: float, utility: Sequence[float] | None = None) -> list[float]:
    """Phase-B scores; `utility` (default: each Q) is what z(Q) is taken of."""
    z_sim = zscores([c.similarity for c in pool])
    values = [c.q for c in pool] if utility is None else utility
    z_q = [max(-Z_CLIP, min(Z_CLIP, z)) for z in zscores(values)]
    return [(1.0 - lam) * s + lam * q for s, q in zip(z_sim, z_q)]


def utilities(
    pool: Sequence[Candidate], explore: str, weight: float, rng: random.Random
) -> list[float]:
    """The utility phase B ranks by (see the module docstring)."""
    if explore == "ucb":
        return [c.q + weight * c.q_sd for c in pool]
    if explore == "thompson":
        return [c.q + weight * c.q_sd * rng.gauss(0.0, 1.0) for c in pool]
    return [c.q for c in pool]


def _order(pool: Sequence[Candidate], pool_scores: Sequence[float]) -> list[int]:
    """Pool indexes, best score first; ties to the higher Q, then the newer memory."""
    return sorted(
        range(len(pool)), key=lambda i: (-pool_scores[i], -pool[i].q, -pool[i].memory_id)
    )


def select(
    pool: Sequence[Candidate],
    lam: float,
    k2: int,
    epsilon: float = 0.0,
    rng: random.Random | None = None,
    explore: str = "none",
    explore_weight: float = 1.0,
) -> Selection:
    """Rank the pool and choose the injected set (greedy on the utility, or random with
    probability epsilon)."""
    rng = rng or random.Random()
    pool_scores = scores(pool, lam, utilities(pool, explore, explore_weight, rng))
    order = _order(pool, pool_scores)
    greedy = set(order[:k2])
    chosen, explored = greedy, False
    n_sets = subsets(len(pool), k2)
    if epsilon > 0.0 and n_sets > 1:
        if rng.random() < epsilon:
            chosen, explored = set(rng.sample(range(len(pool)), k2)), True
    p_greedy = 1.0
    if explore == "thompson" and n_sets > 1 and explore_weight > 0.0:
        p_greedy = _thompson_prob(pool, lam, k2, explore_weight, greedy, rng)
    prob = set_probability(len(pool), k2, epsilon, chosen == greedy, p_greedy)
    ranked = [
        Scored(pool[i].memory_id, pool[i].similarity, pool[i].q, pool_scores[i], i in chosen)
        for i in order
    ]
    return Selection(ranked=ranked, explored=explored, selection_prob=prob)


def _thompson_prob(
    pool: Sequence[Candidate], lam: float, k2: int, weight: float, chosen: set[int],
    rng: random.Random, draws: int = THOMPSON_DRAWS,
) -> float:
    """The share of `draws` further draws that choose the same set, counting the draw
    that chose it (never 0).

    All draws at once: a (draws x pool) matrix of utilities, z-scored and clipped per row
    as `scores` does one draw, each row's top k2 taken in `_order`'s order (score, then Q,
    then the newer memory). The normal draws come from a numpy generator seeded by `rng`,
    so a seeded recall repeats its estimate."""
    import numpy as np  # a recall has loaded it already (storage, embeddings)

    n = len(pool)
    q = np.array([c.q for c in pool])
    ids = np.array([c.memory_id for c in pool], dtype=np.float64)
    z_sim = np.array(zscores([c.similarity for c in pool]))
    normal = np.random.default_rng(rng.getrandbits(64)).standard_normal((draws, n))
    u = q + weight * np.array([c.q_sd for c in pool]) * normal
    std = u.std(axis=1, keepdims=True)  # the population std, as zscores
    std[std < STD_EPS] = 1.0
    z_u = np.clip((u - u.mean(axis=1, keepdims=True)) / std, -Z_CLIP, Z_CLIP)
    drawn = (1.0 - lam) * z_sim + lam * z_u
    shape = drawn.shape
    order = np.lexsort((np.broadcast_to(-ids, shape), np.broadcast_to(-q, shape), -drawn), axis=1)
    top = np.zeros(shape, dtype=bool)
    np.put_along_axis(top, order[:, :k2], True, axis=1)
    want = np.zeros(n, dtype=bool)
    want[sorted(chosen)] = True
    same = 1 + int((top == want).all(axis=1).sum())
    return same / (draws + 1)


def subsets(pool_size: int, k2: int) -> int:
    """How many injected sets phase B can choose from: the min(k2, pool)-subsets of the
    pool (one, the empty set, for an empty pool)."""
    return math.comb(pool_size, min(k2, pool_size)) if pool_size else 1


def set_probability(
    pool_size: int, k2: int, epsilon: float, greedy: bool, p_greedy: float = 1.0
) -> float:
    """The probability that `select` injects one given min(k2, pool)-subset of a pool of
    `pool_size`: epsilon / (number of subsets), plus (1 - epsilon) times the probability
    that the greedy step chose it (`p_greedy`: 1 for a deterministic utility, Thompson's
    estimate otherwise) when it is the greedy set. (`memrl replay` evaluates other
    settings with it.)"""
    if pool_size == 0:
        return 1.0
    return epsilon / subsets(pool_size, k2) + ((1.0 - epsilon) * p_greedy if greedy else 0.0)
