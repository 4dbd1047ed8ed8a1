"""Off-policy replay of the ledger: how would other settings have done on the same tasks?

`memrl replay` answers "which lambda / k2 / delta should this project use?" from what the
ledger already holds, without new experiments. For each reported task the ledger keeps the
whole phase-A pool (each candidate's similarity and its Q at recall time), the injected set,
the setting it was chosen under and `selection_prob`, the probability of that set under the
logging policy (retrieval.select). Replay recomputes phase B under a target setting from
that pool with the same functions (retrieval.select, retrieval.set_probability) and
weighs each task's outcome by how likely the target would have made the same choice.

**The target policy** on a task: the recorded pool, restricted to candidates whose
similarity is above the target delta (a delta at or above the logged gate only: candidates
below the logged gate were never recorded, so a task logged with a higher gate than the
target's cannot be evaluated and is left out, and the output says how many); its greedy
min(k2, pool)-subset under the target lambda, or with the target epsilon a uniformly random
one. pi = retrieval.set_probability of the logged injected set under it (0 when the logged
set is not a subset of that size of the filtered pool); mu = the logged `selection_prob`.

**Estimators** of the mean of y (y = the reward, or success = reward > 0), over the n
evaluated tasks, with w_i = pi_i / mu_i:
- IPS: sum(w_i y_i) / n;
- self-normalised IPS (SNIPS): sum(w_i y_i) / sum(w_i);
- doubly robust (DR): sum(dm_i + w_i (y_i - yhat(A_i))) / n, where dm_i is the reward
  model's expected y under the target policy on task i and A_i the logged set.
The reward model (kept simple on purpose): yhat(m) per memory = (sum of y over the tasks
that injected m + PRIOR * ybar) / (tasks that injected m + PRIOR), the mean y of the tasks
that injected it shrunk to the overall mean ybar; yhat(S) = the mean of yhat(m) over S;
yhat(empty set) = the mean y of the tasks that injected nothing (ybar if none). The
uniformly random set's expected yhat is the mean of yhat over the pool, so
dm_i = (1 - eps) yhat(greedy set) + eps mean(yhat over the filtered pool).
The model is fitted once on the evaluated tasks (in-sample, not cross-fitted).

**Confidence intervals**: percentile bootstrap over tasks (the per-task terms resampled,
the reward model not refitted). **Support**: the tasks with pi > 0, and the effective
sample size (sum w)^2 / sum w^2. A greedy logging policy (epsilon 0) gives mu = 1 on its
own set and nothing else: IPS then only uses the tasks where the target's set equals the
logged one, and a target k2 other than the logged one has no support at all (only the
reward model, through DR, speaks for it).

**Exploration by uncertainty is not replayed**: the ledger keeps each candidate's Q, not
its q_sd, so phase B is recomputed with the paper's utility (Q). A ledger written with
`--explore ucb` (the server's default) or `thompson` does not reproduce its own injected
sets; the output counts how many did and says so. Log with `--explore none --epsilon 0.1`
for a while to evaluate settings.

**What replay does not estimate**: Q at recall time is the logged one. Under another
setting other memories would have been injected and credited, so Q, and the memories
stored after each task, would have evolved differently; replay estimates the value of the
target selection rule on the logged states, not the whole learning trajectory it would
have produced.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InvalidInputError
from .retrieval import Candidate, select, set_probability
from .storage.base import LedgerEntry

if TYPE_CHECKING:
    from .memory import Memory

PRIOR = 2.0  # pseudo-tasks at the overall mean in the per-memory reward model
BOOTSTRAP = 2000
LEVEL = 0.95
THIN_SUPPORT = 30  # fewer supported tasks or a smaller ESS than this: a warning


@dataclass(frozen=True)
class LoggedTask:
    """One reported task of the ledger, as replay needs it."""

    task_id: str
    pool: tuple[Candidate, ...]
    injected: frozenset[int]
    k2: int
    lam: float
    delta: float
    epsilon: float
    explored: bool
    mu: float  # probability of `injected` under the logging policy
    reward: float

    @property
    def success(self) -> float:
        return 1.0 if self.reward > 0 else 0.0

    @classmethod
    def from_entry(cls, e: LedgerEntry) -> LoggedTask:
        pool = tuple(Candidate(p.memory_id, p.similarity, p.q) for p in e.pool)
        injected = frozenset(p.memory_id for p in e.pool if p.injected)
        mu = e.selection_prob
        if mu is None or not 0.0 < mu <= 1.0:  # logged before selection_prob was recorded
            greedy = _greedy(pool, e.lam, e.k2)
            mu = set_probability(len(pool), e.k2, e.epsilon, injected == greedy)
        assert e.reward is not None
        return cls(e.task_id, pool, injected, e.k2, e.lam, e.delta, e.epsilon, e.explored,
                   mu, float(e.reward))


@dataclass(frozen=True)
class Setting:
    """A target setting; None keeps each task's logged value."""

    lam: float | None = None
    k2: int | None = None
    delta: float | None = None
    epsilon: float = 0.0

    def label(self) -> str:
        parts = [f"{n} {v:g}" for n, v in (("lam", self.lam), ("k2", self.k2),
                                            ("delta", self.delta)) if v is not None]
        if self.epsilon:
            parts.append(f"epsilon {self.epsilon:g}")
        return ", ".join(parts) or "logged lam, k2 and delta, greedy"


@dataclass(frozen=True)
class Estimate:
    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Outcome:
    """Estimates of one quantity (success rate or mean reward) under one setting."""

    ips: Estimate
    snips: Estimate
    dr: Estimate
    model: float | None  # the reward model's own estimate (the DR's direct part)


@dataclass(frozen=True)
class SettingResult:
    setting: Setting
    evaluated: int  # tasks the setting could be evaluated on
    excluded_gate: int  # tasks logged with a higher gate than the target delta
    support: int  # evaluated tasks with nonzero target probability of the logged set
    ess: float  # effective sample size of the weights
    agree: int  # tasks where the target's greedy set equals the logged set
    success: Outcome
    reward: Outcome
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReplayReport:
    namespace: str
    tasks: int  # reported tasks in the ledger
    logged: dict[str, object]  # the logged settings and the observed rates
    results: list[SettingResult]
    notes: list[str]


def _greedy(pool: Sequence[Candidate], lam: float, k2: int) -> frozenset[int]:
    return frozenset(s.memory_id for s in select(pool, lam, k2).injected)


def check_setting(s: Setting) -> Setting:
    """InvalidInputError saying what to fix when a value is out of range."""
    def bad(name: str, value: object, want: str) -> InvalidInputError:
        return InvalidInputError(f"{name} {value!r} is out of range: give {want}")

    for name, value, lo, hi in (("lam", s.lam, 0.0, 1.0), ("delta", s.delta, -1.0, 1.0),
                                ("epsilon", s.epsilon, 0.0, 1.0)):
        if value is not None and not (math.isfinite(value) and lo <= value <= hi):
            raise bad(f"--{name}", value, f"numbers in [{lo:g}, {hi:g}]")
    if s.k2 is not None and not (isinstance(s.k2, int) and 1 <= s.k2 <= 1000):
        raise bad("--k2", s.k2, "integers in 1..1000")
    return s


@dataclass(frozen=True)
class _Row:
    """The per-task terms of one setting."""

    w: float  # pi / mu
    greedy_match: bool
    dm_success: float
    dm_reward: float
    hat_success: float  # the model's y of the logged set
    hat_reward: float
    success: float
    reward: float


class RewardModel:
    """Per-memory mean outcome, shrunk to the overall mean (see the module docstring)."""

    def __init__(self, tasks: Sequence[LoggedTask], y: Sequence[float]) -> None:
        self.mean = float(np.mean(y)) if len(y) else 0.0
        sums: dict[int, float] = {}
        counts: dict[int, int] = {}
        alone: list[float] = []
        for t, v in zip(tasks, y):
            if not t.injected:
                alone.append(v)
            for m in t.injected:
                sums[m] = sums.get(m, 0.0) + v
                counts[m] = counts.get(m, 0) + 1
        self.per_memory = {m: (sums[m] + PRIOR * self.mean) / (counts[m] + PRIOR) for m in sums}
        self.empty = float(np.mean(alone)) if alone else self.mean

    def of_memory(self, m: int) -> float:
        return self.per_memory.get(m, self.mean)

    def of_set(self, ids: Iterable[int]) -> float:
        values = [self.of_memory(m) for m in ids]
        return sum(values) / len(values) if values else self.empty

    def expected(self, pool: Sequence[Candidate], greedy: frozenset[int], epsilon: float) -> float:
        """yhat expected under the target: its greedy set, or a uniformly random one."""
        if not pool:
            return self.empty
        return (1.0 - epsilon) * self.of_set(greedy) + epsilon * self.of_set(
            c.memory_id for c in pool
        )


def _rows(tasks: Sequence[LoggedTask], s: Setting, success_model: RewardModel,
          reward_model: RewardModel) -> list[_Row]:
    rows = []
    for t in tasks:
        lam = t.lam if s.lam is None else s.lam
        k2 = t.k2 if s.k2 is None else s.k2
        pool = t.pool if s.delta is None else tuple(
            c for c in t.pool if c.similarity > s.delta  # above the gate, as phase_a
        )
        greedy = _greedy(pool, lam, k2)
        ids = {c.memory_id for c in pool}
        possible = t.injected <= ids and len(t.injected) == min(k2, len(pool))
        pi = set_probability(len(pool), k2, s.epsilon, t.injected == greedy) if possible else 0.0
        rows.append(_Row(
            w=pi / t.mu,
            greedy_match=t.injected == greedy,
            dm_success=success_model.expected(pool, greedy, s.epsilon),
            dm_reward=reward_model.expected(pool, greedy, s.epsilon),
            hat_success=success_model.of_set(t.injected),
            hat_reward=reward_model.of_set(t.injected),
            success=t.success,
            reward=t.reward,
        ))
    return rows


def _interval(samples: np.ndarray) -> tuple[float | None, float | None]:
    samples = samples[np.isfinite(samples)]
    if not len(samples):
        return None, None
    tail = (1.0 - LEVEL) / 2 * 100
    return float(np.percentile(samples, tail)), float(np.percentile(samples, 100 - tail))


def resample_sums(columns: np.ndarray, bootstrap: int, seed: int, chunk: int = 100) -> np.ndarray:
    """Per bootstrap resample of the n tasks (rows of `columns`, drawn with replacement),
    the column sums: a (bootstrap, columns) array. Drawn as multinomial counts, a chunk of
    resamples at a time, so memory stays at chunk x n whatever the ledger's size."""
    n = columns.shape[0]
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, bootstrap, chunk):
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=min(chunk, bootstrap - start))
        out.append(counts @ columns)
    return np.vstack(out)


def _estimates(w: np.ndarray, y: np.ndarray, dm: np.ndarray, hat: np.ndarray,
               bootstrap: int, seed: int) -> Outcome:
    n = len(y)
    ips_terms = w * y
    dr_terms = dm + w * (y - hat)
    sums = resample_sums(np.column_stack([ips_terms, dr_terms, w]), bootstrap, seed)

    def est(terms: np.ndarray, boot: np.ndarray) -> Estimate:
        low, high = _interval(boot / n)
        return Estimate(float(terms.mean()), low, high)

    with np.errstate(invalid="ignore", divide="ignore"):
        low, high = _interval(sums[:, 0] / sums[:, 2])
    total_w = w.sum()
    snips = Estimate(float(ips_terms.sum() / total_w), low, high) if total_w > 0 else \
        Estimate(None, None, None)
    return Outcome(est(ips_terms, sums[:, 0]), snips, est(dr_terms, sums[:, 1]),
                   float(dm.mean()) if n else None)


def evaluate(tasks: Sequence[LoggedTask], setting: Setting, *, bootstrap: int = BOOTSTRAP,
             seed: int = 0) -> SettingResult:
    """The estimates of one target setting on the logged tasks."""
    check_setting(setting)
    usable = [t for t in tasks if setting.delta is None or setting.delta >= t.delta]
    excluded = len(tasks) - len(usable)
    if not usable:
        none = Outcome(*(Estimate(None, None, None),) * 3, None)
        return SettingResult(setting, 0, excluded, 0, 0.0, 0, none, none, [
            f"not evaluable: every task was logged with a gate above delta {setting.delta:g}; "
            "candidates below the logged gate were never recorded"])
    success_model = RewardModel(usable, [t.success for t in usable])
    reward_model = RewardModel(usable, [t.reward for t in usable])
    rows = _rows(usable, setting, success_model, reward_model)
    w = np.array([r.w for r in rows])
    outcomes = [
        _estimates(w, np.array([getattr(r, name) for r in rows]),
                   np.array([getattr(r, f"dm_{name}") for r in rows]),
                   np.array([getattr(r, f"hat_{name}") for r in rows]), max(bootstrap, 1), seed)
        for name in ("success", "reward")
    ]
    support = int((w > 0).sum())
    ess = float(w.sum() ** 2 / (w**2).sum()) if support else 0.0
    warnings = []
    if excluded:
        warnings.append(f"{excluded} task(s) left out: logged with a gate above delta "
                        f"{setting.delta:g} (candidates below the logged gate were never recorded)")
    if support == 0:
        warnings.append("no support: the logged sets all have probability 0 under this setting, "
                        "IPS is 0 by construction; only DR's reward model speaks for it")
    elif support < THIN_SUPPORT or ess < THIN_SUPPORT:
        warnings.append(f"thin support: {support} task(s) with nonzero probability, "
                        f"ESS {ess:.1f}; the intervals are not to be trusted")
    unsupported = len(usable) - support
    if support and unsupported > 0.2 * len(usable):
        warnings.append(
            f"IPS counts {unsupported} of {len(usable)} tasks as 0: this setting would have "
            "injected another set there (one of another size: never drawn; of the same size: "
            "drawn by exploration with probability epsilon / C(pool, k2)); IPS then rests on "
            "the few draws that hit it: usually low, far too high when one draw in a small "
            "pool did; read SNIPS and DR"
        )
    return SettingResult(setting, len(usable), excluded, support, ess,
                         sum(r.greedy_match for r in rows), outcomes[0], outcomes[1], warnings)


def logged_summary(tasks: Sequence[LoggedTask]) -> dict[str, object]:
    """The logged settings and the observed rates; `reproduced` counts the unexplored tasks
    whose injected set the recorded pool reproduces under the logged setting."""
    def values(name: str) -> list[float]:
        return sorted({getattr(t, name) for t in tasks})

    unexplored = [t for t in tasks if not t.explored]
    return {
        "lam": values("lam"),
        "k2": values("k2"),
        "epsilon": values("epsilon"),
        "delta": [min(t.delta for t in tasks), max(t.delta for t in tasks)],
        "explored": sum(t.explored for t in tasks),
        "success_rate": sum(t.success for t in tasks) / len(tasks),
        "mean_reward": sum(t.reward for t in tasks) / len(tasks),
        "unexplored": len(unexplored),
        "reproduced": sum(_greedy(t.pool, t.lam, t.k2) == t.injected for t in unexplored),
    }


def replay(namespace: str, entries: Iterable[LedgerEntry], settings: Sequence[Setting], *,
           bootstrap: int = BOOTSTRAP, seed: int = 0) -> ReplayReport:
    """Replay the reported tasks among `entries` under each setting."""
    for s in settings:
        check_setting(s)
    if not 1 <= bootstrap <= 100_000:
        raise InvalidInputError(f"--bootstrap {bootstrap} is out of range: give 1..100000")
    tasks = [LoggedTask.from_entry(e) for e in entries if e.reward is not None]
    if not tasks:
        raise InvalidInputError(
            f"namespace {namespace!r} has no reported tasks: replay needs tasks recalled and "
            "then reported (report_outcome / `memrl report`)"
        )
    logged = logged_summary(tasks)
    notes = [
        "Estimates of each setting's selection rule on the logged tasks, with the logged Q "
        "values: the learning trajectory another setting would have produced is not replayed.",
        f"IPS, SNIPS and DR with {LEVEL:.0%} percentile-bootstrap intervals over tasks "
        f"({bootstrap} resamples; DR's per-memory reward model fitted once, in-sample).",
    ]
    delta_low = min(t.delta for t in tasks)
    if any(s.delta is not None and s.delta < delta_low for s in settings):
        notes.append(f"A delta below the logged gate ({delta_low:g}) cannot be evaluated on "
                     "the tasks logged with it: candidates below the gate were never recorded.")
    if not any(t.epsilon > 0 for t in tasks):
        notes.append("The logging policy never explored (epsilon 0): IPS only uses the tasks "
                     "where the target's set equals the logged set. Run with --epsilon > 0 "
                     "(e.g. 0.1) for a while to make other settings evaluable.")
    if logged["reproduced"] != logged["unexplored"]:
        notes.append(f"Only {logged['reproduced']} of {logged['unexplored']} unexplored tasks "
                     "reproduce their injected set from the recorded pool under the logged "
                     "setting: the replay may be off. (A server exploring by uncertainty, "
                     "memrl's default --explore ucb, ranks by Q + w q_sd, and q_sd is not in "
                     "the ledger: replay recomputes the paper's rule. Log with --explore none "
                     "--epsilon 0.1 to evaluate settings.)")
    results = [evaluate(tasks, s, bootstrap=bootstrap, seed=seed) for s in settings]
    return ReplayReport(namespace, len(tasks), logged, results, notes)


def grid(lam: Sequence[float] | None, k2: Sequence[int] | None, delta: Sequence[float] | None,
         epsilon: Sequence[float] | None) -> list[Setting]:
    """Every combination of the given values (an axis not given keeps the logged value)."""
    lams: Sequence[float | None] = lam or [None]
    k2s: Sequence[int | None] = k2 or [None]
    deltas: Sequence[float | None] = delta or [None]
    return [
        check_setting(Setting(a, b, c, d))
        for a in lams for b in k2s for c in deltas for d in (epsilon or [0.0])
    ]


def ledger(memory: Memory, namespace: str, page: int = 500) -> Iterator[LedgerEntry]:
    """Every task of the namespace's ledger with its pool, newest first, read in pages."""
    before = None
    while True:
        got = memory.ledger_page(namespace, before=before, limit=page)
        yield from got.tasks
        if got.next_before is None:
            return
        before = got.next_before


def as_json(report: ReplayReport) -> dict[str, Any]:
    out = asdict(report)
    for r, result in zip(out["results"], report.results):
        r["setting"]["label"] = result.setting.label()
    return out


def _ci(e: Estimate) -> str:
    if e.value is None:
        return "-"
    if e.low is None or e.high is None:
        return f"{e.value:.3f}"
    return f"{e.value:.3f} [{e.low:.3f}, {e.high:.3f}]"


def render(report: ReplayReport) -> str:
    """The human-readable table of `memrl replay`."""
    g = report.logged

    def axis(name: str) -> str:
        values = g[name]
        assert isinstance(values, list)
        return "/".join(f"{v:g}" for v in values)

    delta = g["delta"]
    assert isinstance(delta, list)
    lines = [
        f"memrl replay: namespace {report.namespace!r}, {report.tasks} reported tasks",
        f"logged: lam {axis('lam')}, k2 {axis('k2')}, epsilon {axis('epsilon')}, delta "
        f"{delta[0]:.3f}..{delta[1]:.3f}; {g['explored']} explored; success rate "
        f"{g['success_rate']:.3f}, mean reward {g['mean_reward']:.3f} (observed)",
        f"the recorded pools reproduce {g['reproduced']} of {g['unexplored']} unexplored "
        "injected sets under the logged setting",
        "",
    ]
    head = ("setting", "tasks", "support", "ESS", "agree", "success IPS [95% CI]",
            "success SNIPS [95% CI]", "success DR [95% CI]", "mean reward DR [95% CI]")
    rows = [
        (r.setting.label(), str(r.evaluated), str(r.support), f"{r.ess:.1f}", str(r.agree),
         _ci(r.success.ips), _ci(r.success.snips), _ci(r.success.dr), _ci(r.reward.dr))
        for r in report.results
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    for row in (head, *rows):
        lines.append("  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip())
    lines.append("")
    lines.append("support: tasks whose logged set the setting could have chosen; ESS: "
                 "effective sample size; agree: tasks where its greedy set equals the logged set")
    warned = [(r.setting.label(), w) for r in report.results for w in r.warnings]
    if warned:
        lines.append("warnings:")
        lines += [f"  {label}: {w}" for label, w in warned]
    lines.append("notes:")
    lines += [f"  - {n}" for n in report.notes]
    return "\n".join(lines)
