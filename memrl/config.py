"""The learning and retrieval parameters, validated once and passed down as one object."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from .errors import InvalidInputError
from .learning import LearningRule

# The namespace of a memory that names none.
DEFAULT_NAMESPACE = "default"
EXPLORE_MODES = ("none", "ucb", "thompson")


@dataclass(frozen=True)
class MemoryConfig:
    """MemRL parameters. Defaults follow the paper (Table 8 and its ablations).

    k1=5, k2=3: the paper's ablation found a pool of 5 with 3 injected beats 10/5,
    and three short memories keep a coding agent's context small.
    """

    alpha: float = 0.3  # learning rate of Q <- Q + alpha (r - Q)
    lam: float = 0.5  # weight of z(Q) against z(similarity) in phase B
    q_init: float = 0.0
    k1: int = 5  # phase A pool size
    k2: int = 3  # memories injected
    delta: float | None = None  # similarity gate; None = calibrated per namespace
    delta_small: float = 0.35  # gate while a namespace is too small to calibrate
    delta_floor: float = 0.2  # the calibrated gate never drops below this
    calibration_min: int = 20  # memories needed before delta is calibrated
    calibration_quantile: float = 0.8  # top-20% of pairwise intent similarity
    epsilon: float = 0.0  # epsilon-greedy exploration in phase B
    # Directed exploration in phase B from each memory's uncertainty (retrieval.py):
    # "none" (the paper's rule), "ucb" (Q + weight * q_sd) or "thompson" (Q + weight *
    # q_sd * N(0, 1), a draw per recall). Change detection (learning.py): None turns it
    # off. UCB with weight 2 and change detection at 1.2 are the defaults because the
    # ablations support them (docs/EVALUATION.md#beyond-the-paper-ablations); explore
    # "none" with change_threshold None is the paper's rule.
    explore: str = "ucb"
    explore_weight: float = 2.0
    alpha_recent: float = 0.7  # rate of the fast EMA that detects a change
    change_threshold: float | None = 1.2
    gate_learning: bool = False  # learn delta from outcomes per namespace (gate_learning.py)
    gate_max_step: float = 0.15  # how far the learned delta may move from the calibrated one
    success_reward: float = 1.0
    failure_reward: float = -1.0
    learning: bool = True  # False records outcomes without touching Q (a RAG baseline)
    redact_secrets: bool = True  # replace credentials by [REDACTED] before anything is stored
    max_intent_chars: int = 4_000
    max_experience_chars: int = 20_000
    max_metadata_chars: int = 10_000
    # Forgetting by utility (Memory.prune): a namespace holds at most `capacity` memories
    # in retrieval (None: no limit); above it, prune archives superseded leftovers, then
    # memories with Q < prune_q_below after at least prune_min_updates outcomes, then
    # memories not injected (or created, if never injected) for prune_stale_days.
    capacity: int | None = None
    prune_min_updates: int = 3
    prune_q_below: float = 0.0
    prune_stale_days: float = 30.0

    @property
    def rule(self) -> LearningRule | None:
        """The learning rule outcomes apply (None: learning off, Q never moves)."""
        if not self.learning:
            return None
        return LearningRule(self.alpha, self.alpha_recent, self.change_threshold)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            _check_type(f.name, str(f.type), value)
            if isinstance(value, float) and not math.isfinite(value):
                raise InvalidInputError(f"{f.name} must be a finite number, got {value!r}")
        _check(0.0 < self.alpha <= 1.0, f"alpha must be in (0, 1], got {self.alpha}")
        _check(0.0 <= self.lam <= 1.0, f"lam must be in [0, 1], got {self.lam}")
        _check(-1.0 <= self.q_init <= 1.0, f"q_init must be in [-1, 1], got {self.q_init}")
        _check(1 <= self.k1 <= 1000, f"k1 must be in 1..1000, got {self.k1}")
        _check(1 <= self.k2 <= self.k1, f"k2 must be in 1..k1 ({self.k1}), got {self.k2}")
        if self.delta is not None:
            _check(-1.0 <= self.delta <= 1.0, f"delta must be in [-1, 1], got {self.delta}")
        _check(0.0 <= self.epsilon <= 1.0, f"epsilon must be in [0, 1], got {self.epsilon}")
        _check(
            self.explore in EXPLORE_MODES,
            f"explore must be one of {', '.join(EXPLORE_MODES)}, got {self.explore!r}",
        )
        _check(0.0 <= self.explore_weight <= 10.0,
               f"explore_weight must be in [0, 10], got {self.explore_weight}")
        _check(0.0 < self.alpha_recent <= 1.0,
               f"alpha_recent must be in (0, 1], got {self.alpha_recent}")
        if self.change_threshold is not None:
            _check(0.0 < self.change_threshold <= 2.0,
                   f"change_threshold must be in (0, 2], got {self.change_threshold}")
        if self.capacity is not None:
            _check(
                0 <= self.capacity <= 10**9,
                f"capacity must be an integer in 0..1000000000 (memories per namespace), "
                f"got {self.capacity}",
            )
        _check(
            1 <= self.prune_min_updates <= 10**9,
            f"prune_min_updates must be at least 1, got {self.prune_min_updates}",
        )
        _check(
            -1.0 <= self.prune_q_below <= 1.0,
            f"prune_q_below must be in [-1, 1], got {self.prune_q_below}",
        )
        _check(
            0.0 < self.prune_stale_days <= 36_500.0,
            f"prune_stale_days must be in (0, 36500], got {self.prune_stale_days}",
        )
        _check(
            0.0 <= self.gate_max_step <= 1.0,
            f"gate_max_step must be in [0, 1], got {self.gate_max_step}",
        )
        for name in ("success_reward", "failure_reward"):
            r = getattr(self, name)
            _check(-1.0 <= r <= 1.0, f"{name} must be in [-1, 1], got {r}")


def _check_type(name: str, declared: str, value: object) -> None:
    """Refuse e.g. k1=2.5, k1='3' or alpha=True before a comparison or SQL sees them."""
    if declared.endswith(" | None"):
        if value is None:
            return
        declared = declared[: -len(" | None")]
    if declared == "bool":
        ok, wanted = isinstance(value, bool), "true or false"
    elif declared == "str":
        ok, wanted = isinstance(value, str), "a string"
    elif declared == "int":
        ok, wanted = isinstance(value, int) and not isinstance(value, bool), "an integer"
    else:
        ok, wanted = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    _check(ok, f"{name} must be {wanted}, got {value!r}")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidInputError(message)
