"""The learning rule: what one outcome does to a credited memory.

**Q, the paper's utility.** Q <- Q + alpha (r - Q), reward r in [-1, 1] (success +1,
failure -1 by default), Q_init 0.

**Evidence next to Q.** Each credited outcome also counts as (1 + r) / 2 of a success and
(1 - r) / 2 of a failure (a plain success adds 1 success, a plain failure 1 failure). The
counts give a Beta(1 + successes, 1 + failures) posterior of the memory's chance to help,
reported on the scale of Q (2 p - 1): its mean and its standard deviation `q_sd`. A new
memory has q_sd = 2 / sqrt(12) = 0.577 (a uniform prior); one with 20 successes and no
failure 0.076. Q says how good a memory has been lately, q_sd how sure that is: "lucky
once" and "reliable" have the same Q after one success, not the same q_sd.

**Change detection.** A second, fast EMA of the same rewards, `q_recent` (rate
`alpha_recent`), follows the last few outcomes. When it contradicts the record, i.e.
|q_recent - posterior mean| > `change_threshold` after the outcome, the record is taken to
be out of date: Q jumps to q_recent and the counts restart from this outcome alone (the
uncertainty is back, so an exploring policy re-tests the memory). With the defaults
(alpha_recent 0.7, threshold 1.2): a memory with 20 successes that fails once has
q_recent -0.4 against a record of +0.83 and is reset to Q -0.4 (the EMA alone: +0.4); a
memory that helps 80% of the time is reset only after two failures in a row. Off unless
`change_threshold` is set.

Both backends apply the rule in one UPDATE (`set_clause`); `update` is the same rule in
Python, the reference the tests hold the SQL to.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

# A threshold no difference of two values in [-1, 1] exceeds: change detection off.
NEVER = 9.0


@dataclass(frozen=True)
class LearningRule:
    alpha: float
    alpha_recent: float = 0.7
    change_threshold: float | None = None  # None: no change detection

    def params(self) -> dict[str, float]:
        """The named SQL parameters of `set_clause` (the reward is the caller's)."""
        return {
            "alpha": self.alpha,
            "alpha_recent": self.alpha_recent,
            "threshold": NEVER if self.change_threshold is None else self.change_threshold,
        }


@dataclass(frozen=True)
class Evidence:
    """A memory's learned state."""

    q: float
    q_recent: float
    successes: float = 0.0
    failures: float = 0.0


def posterior_mean(successes: float, failures: float) -> float:
    """The Beta(1 + s, 1 + f) mean on the scale of Q."""
    a, b = 1.0 + successes, 1.0 + failures
    return 2.0 * a / (a + b) - 1.0


def posterior_sd(successes: float, failures: float) -> float:
    """The Beta(1 + s, 1 + f) standard deviation on the scale of Q."""
    a, b = 1.0 + successes, 1.0 + failures
    n = a + b
    return 2.0 * math.sqrt(a * b / (n * n * (n + 1.0)))


def update(state: Evidence, reward: float, rule: LearningRule) -> Evidence:
    """What one credited outcome does to a memory (the rule `set_clause` applies in SQL)."""
    threshold = rule.params()["threshold"]
    win, loss = (1.0 + reward) / 2.0, (1.0 - reward) / 2.0
    q = state.q + rule.alpha * (reward - state.q)
    recent = state.q_recent + rule.alpha_recent * (reward - state.q_recent)
    s, f = state.successes + win, state.failures + loss
    if abs(recent - posterior_mean(s, f)) > threshold:
        return Evidence(recent, recent, win, loss)
    return Evidence(q, recent, s, f)


def set_clause(param: Callable[[str], str], reward: str) -> str:
    """The SET assignments of the rule for an UPDATE of `memories` (the right-hand sides see
    the row before the update, in SQLite and PostgreSQL alike). `param(name)` writes a
    named placeholder (':name' or '%(name)s') of `LearningRule.params`; `reward` is the SQL
    expression of the memory's reward (a placeholder, or a joined column)."""
    alpha, recent_rate, threshold = (param(n) for n in ("alpha", "alpha_recent", "threshold"))
    r = f"({reward})"
    win, loss = f"((1.0 + {r}) / 2.0)", f"((1.0 - {r}) / 2.0)"
    recent = f"(q_recent + {recent_rate} * ({r} - q_recent))"
    a, b = f"(1.0 + successes + {win})", f"(1.0 + failures + {loss})"
    changed = f"abs({recent} - (2.0 * {a} / ({a} + {b}) - 1.0)) > {threshold}"
    return (
        f"q = CASE WHEN {changed} THEN {recent} ELSE q + {alpha} * ({r} - q) END, "
        f"successes = CASE WHEN {changed} THEN {win} ELSE successes + {win} END, "
        f"failures = CASE WHEN {changed} THEN {loss} ELSE failures + {loss} END, "
        f"q_recent = {recent}"
    )
