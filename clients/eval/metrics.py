"""The paper's runtime-learning metrics over per-epoch outcomes.

`epochs` is a list, one entry per epoch in order, mapping task id -> solved. Every epoch
covers the same task set.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

Epochs = Sequence[Mapping[str, bool]]


def success_rate(outcomes: Mapping[str, bool]) -> float:
    return sum(outcomes.values()) / len(outcomes) if outcomes else 0.0


def sr_per_epoch(epochs: Epochs) -> list[float]:
    return [success_rate(e) for e in epochs]


def last(epochs: Epochs) -> float:
    """SR of the final epoch."""
    return success_rate(epochs[-1]) if epochs else 0.0


def csr(epochs: Epochs) -> float:
    """Cumulative success rate: the fraction of tasks solved in at least one epoch."""
    tasks = set().union(*(e.keys() for e in epochs)) if epochs else set()
    if not tasks:
        return 0.0
    return sum(any(e.get(t, False) for e in epochs) for t in tasks) / len(tasks)


def forgetting_per_epoch(epochs: Epochs) -> list[float | None]:
    """For epochs 2..E: tasks solved in an earlier epoch but failed now / failures now.

    None for an epoch with no failures (nothing to attribute).
    """
    rates: list[float | None] = []
    solved_before: set[str] = set()
    for i, epoch in enumerate(epochs):
        if i > 0:
            failed = [t for t, ok in epoch.items() if not ok]
            lost = [t for t in failed if t in solved_before]
            rates.append(len(lost) / len(failed) if failed else None)
        solved_before |= {t for t, ok in epoch.items() if ok}
    return rates


def forgetting(epochs: Epochs) -> float | None:
    """The mean forgetting rate over epochs 2..E that had failures."""
    rates = [r for r in forgetting_per_epoch(epochs) if r is not None]
    return sum(rates) / len(rates) if rates else None


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson r; None with fewer than 3 points or when either side is constant."""
    n = len(xs)
    if n != len(ys):
        raise ValueError("xs and ys differ in length")
    if n < 3:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx < 1e-12 or syy < 1e-12:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    return sxy / math.sqrt(sxx * syy)


def q_success_r(
    injections: Iterable[tuple[Sequence[int], bool]], final_q: Mapping[int, float]
) -> float | None:
    """Pearson r between each injected memory's final Q and the success rate of the tasks
    it was injected into (memories injected at least once; Q defaults to 0)."""
    counts: dict[int, list[int]] = {}
    for ids, ok in injections:
        for mid in ids:
            c = counts.setdefault(mid, [0, 0])
            c[0] += int(ok)
            c[1] += 1
    mids = sorted(counts)
    return pearson([final_q.get(m, 0.0) for m in mids], [counts[m][0] / counts[m][1] for m in mids])


def false_positive_injection(
    attempts: Iterable[tuple[Sequence[int], Sequence[int] | None, bool]],
) -> float | None:
    """The share of injected memories that went into a failed attempt without being acted
    on: per attempt (injected ids, ids the agent used or None, success), a memory injected
    into a failure counts as a false positive unless the agent used it (when the agent
    cannot tell, every memory injected into a failure counts). None: nothing injected."""
    injected = wasted = 0
    for ids, used, success in attempts:
        injected += len(ids)
        if not success:
            wasted += sum(1 for m in ids if used is None or m not in used)
    return wasted / injected if injected else None
