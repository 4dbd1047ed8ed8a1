"""A gate that learns: move a namespace's delta toward the value that maximises success.

The calibrated gate (calibration.py) is a property of the intents alone: the top-20%
quantile of their pairwise similarity. Whether injecting a memory of similarity s helps the
agent is a property of the outcomes, which the ledger records. This module reads the last
`WINDOW` reported tasks of a namespace and proposes a delta from them; it is applied only
when the configuration enables it (`MemoryConfig.gate_learning`, server flag
`--learn-gate`), and an explicit delta always wins (retrieval.gate).

**Evidence.** For each reported task: success is reward > 0; s* is the highest similarity
among the memories it injected (None when nothing was injected: nothing passed the gate).
- p0, the baseline: the success rate of the tasks that injected nothing.
- the grid: t_j = c - max_step + j * STEP (j = 0 .. 2 max_step / STEP), each clipped to
  [delta_floor, MAX_DELTA] (duplicates dropped), where c is the calibrated delta (else
  delta_small) and max_step is `MemoryConfig.gate_max_step`.
- bin j holds the tasks with t_j <= s* < t_(j+1) (the last bin is open above); tasks with
  s* below t_0 are in no bin.

**The rule.** Raising the gate from t_j to t_(j+1) turns the tasks of bin j into tasks
without memory: they would succeed at about p0 instead of their own rate. The gain of
keeping bin j injected, shrunk toward zero when the bin is thin, is

    g_j = n_j (k_j / n_j - p0) * n_j / (n_j + PRIOR)        (k_j successes of n_j tasks)

and 0 when n_j < MIN_BIN. The gain of gate t_j is G(t_j) = sum of g_i over the bins i >= j.
The learned delta is the grid value with the highest G; ties (including "no evidence
anywhere", G = 0 everywhere) go to the value nearest c, then to the lower one. So a bin
whose injections succeed less often than working without memory pushes the gate above it,
a bin that succeeds at least as often keeps it open, and thin evidence leaves delta at c.
There is no learned value (None: the calibrated gate applies) until at least MIN_BIN
reported tasks injected nothing and MIN_BIN injected something.

**Bounds.** The learned value is within max_step of c and never below delta_floor; the
gate applied by a recall clamps it again against the calibrated value in force then (a
recalibration may have moved c since). It is recomputed in the outcome's write
transaction, every `EVERY` outcomes reported in the namespace while learning is on,
reading at most WINDOW tasks (one indexed range of the ledger plus their pools).

**Limits.** p0 is measured on tasks that found no similar memory, which may differ from
the tasks that did (a harder or easier kind of task); the counterfactual "with a higher
gate this task would have had no memory" ignores that a smaller pool could still inject
another memory above the new gate. The gate can only learn to close above the evidence
the ledger holds: tasks never see memories below the gate in force, so bins below it stay
empty, and once the window no longer holds the tasks that closed a bin the rule returns
toward c (the evidence expires after WINDOW tasks, which re-tests the closed range). The
top bin is open above, so memories at or above the highest grid value always inject: the
gate moves, it never shuts memory off.

**False-positive injection rate.** Over the injected (task, memory) pairs of the window's
reported tasks: the share whose task failed (reward <= 0) and did not use the memory: the
task's `used_ids` were given and do not contain it, or, when the task was reported without
`used_ids`, every injected memory of a failed task counts. None when nothing was injected.

Deterministic: the same ledger rows and configuration give the same value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .config import MemoryConfig

STEP = 0.025  # grid spacing of candidate thresholds
MAX_DELTA = 0.95  # the learned gate never rises above this
MIN_BIN = 5  # tasks a bin (and the no-memory baseline) needs to count as evidence
PRIOR = 5.0  # shrinkage weight: a bin of PRIOR tasks counts half its observed gain
WINDOW = 500  # reported tasks read per recomputation (the newest)
EVERY = 10  # recompute after this many outcomes in the namespace


@dataclass(frozen=True)
class ReportedTask:
    """A reported task of the ledger: its reward, the used_ids it was reported with (None:
    not given) and its injected memories as (memory id, similarity)."""

    reward: float
    used_ids: list[int] | None
    injected: list[tuple[int, float]] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return self.reward > 0

    @property
    def best(self) -> float | None:
        return max((s for _, s in self.injected), default=None)


@dataclass(frozen=True)
class Bin:
    low: float  # tasks with low <= best injected similarity < the next bin's low
    tasks: int
    successes: int
    gain: float  # g_j of the module docstring

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.tasks if self.tasks else None


@dataclass(frozen=True)
class Evidence:
    """What the rule saw and what it chose (shown by `memrl stats`)."""

    reference: float  # c: the calibrated delta, else delta_small
    tasks: int  # reported tasks read
    empty_pool: int  # of them, tasks that injected nothing
    empty_pool_success_rate: float | None  # p0
    bins: list[Bin]
    learned: float | None  # None: not enough evidence; the calibrated gate applies
    injected_memories: int  # injected (task, memory) pairs
    false_positive_injections: int
    above: int = 0  # tasks whose best injection is >= the learned (else reference) gate
    above_success_rate: float | None = None
    below: int = 0  # tasks that injected only memories below it
    below_success_rate: float | None = None

    @property
    def false_positive_rate(self) -> float | None:
        if not self.injected_memories:
            return None
        return self.false_positive_injections / self.injected_memories

    def as_dict(self) -> dict[str, object]:
        return {
            "reference_delta": self.reference,
            "learned_delta": self.learned,
            "tasks": self.tasks,
            "tasks_empty_pool": self.empty_pool,
            "empty_pool_success_rate": self.empty_pool_success_rate,
            "tasks_injected_above": self.above,
            "injected_above_success_rate": self.above_success_rate,
            "tasks_injected_below": self.below,
            "injected_below_success_rate": self.below_success_rate,
            "injected_memories": self.injected_memories,
            "false_positive_injections": self.false_positive_injections,
            "false_positive_rate": self.false_positive_rate,
            "bins": [
                {"from": b.low, "tasks": b.tasks, "success_rate": b.success_rate,
                 "gain": round(b.gain, 6)}
                for b in self.bins if b.tasks
            ],
        }


def reference(calibrated: float | None, config: MemoryConfig) -> float:
    """c: the gate learning starts from and stays near."""
    return calibrated if calibrated is not None else config.delta_small


def bounds(calibrated: float | None, config: MemoryConfig) -> tuple[float, float]:
    c = reference(calibrated, config)
    low = max(config.delta_floor, c - config.gate_max_step)
    high = max(low, min(MAX_DELTA, c + config.gate_max_step))
    return low, high


def clamp(learned: float, calibrated: float | None, config: MemoryConfig) -> float:
    """A learned gate within the bounds around the calibrated value in force."""
    low, high = bounds(calibrated, config)
    return min(high, max(low, learned))


def grid(calibrated: float | None, config: MemoryConfig) -> list[float]:
    c = reference(calibrated, config)
    steps = round(config.gate_max_step / STEP)
    low, high = bounds(calibrated, config)
    points = {round(min(high, max(low, c + j * STEP)), 6) for j in range(-steps, steps + 1)}
    return sorted(points)


def false_positives(tasks: Sequence[ReportedTask]) -> tuple[int, int]:
    """(false-positive injections, injected pairs) over reported tasks (module docstring)."""
    injected = fp = 0
    for t in tasks:
        injected += len(t.injected)
        if t.success:
            continue
        used = set(t.used_ids) if t.used_ids is not None else set()
        fp += sum(1 for mid, _ in t.injected if mid not in used)
    return fp, injected


def _rate(successes: int, n: int) -> float | None:
    return successes / n if n else None


def learn(
    tasks: Sequence[ReportedTask], calibrated: float | None, config: MemoryConfig
) -> Evidence:
    """The evidence of `tasks` (reported tasks of one namespace) and the learned delta."""
    c = reference(calibrated, config)
    points = grid(calibrated, config)
    empty = [t for t in tasks if not t.injected]
    n0, k0 = len(empty), sum(t.success for t in empty)
    p0 = _rate(k0, n0)
    counts = [[0, 0] for _ in points]
    for t in tasks:
        best = t.best
        if best is None or best < points[0]:
            continue
        j = max(i for i, p in enumerate(points) if p <= best)
        counts[j][0] += 1
        counts[j][1] += int(t.success)
    bins = []
    for low, (n, k) in zip(points, counts):
        gain = 0.0
        if p0 is not None and n >= MIN_BIN:
            gain = (k - n * p0) * n / (n + PRIOR)
        bins.append(Bin(low, n, k, gain))
    injected_tasks = len(tasks) - n0
    learned: float | None = None
    if n0 >= MIN_BIN and injected_tasks >= MIN_BIN:
        totals = [sum(b.gain for b in bins[j:]) for j in range(len(bins))]
        best_total = max(totals)
        # Exact ties only: the gains are sums of the same float terms in the same order.
        tied = [points[j] for j, g in enumerate(totals) if g >= best_total - 1e-12]
        learned = min(tied, key=lambda p: (abs(p - c), p))
    fp, pairs = false_positives(tasks)
    gate = learned if learned is not None else c
    with_memory = [t for t in tasks if t.injected]
    above = [t for t in with_memory if (t.best or 0.0) >= gate]
    below = [t for t in with_memory if (t.best or 0.0) < gate]
    return Evidence(
        reference=c,
        tasks=len(tasks),
        empty_pool=n0,
        empty_pool_success_rate=p0,
        bins=bins,
        learned=learned,
        injected_memories=pairs,
        false_positive_injections=fp,
        above=len(above),
        above_success_rate=_rate(sum(t.success for t in above), len(above)),
        below=len(below),
        below_success_rate=_rate(sum(t.success for t in below), len(below)),
    )


def due(reports: int) -> bool:
    """Whether the namespace's `reports`-th outcome (counted while learning is on) recomputes."""
    return reports > 0 and reports % EVERY == 0
