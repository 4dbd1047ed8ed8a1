"""Read-only views of what a namespace's memory learned (the inspection page, `memrl ui`).

`Memory`'s inspection methods land here: arguments are checked, the storage's
`InspectReads` answers, and the learning curve is computed from the ledger's task series.
Nothing here writes.

**The learning curve.** For the namespace's last `limit` tasks, in recall order, at each
task: the success rate (reward > 0) of the last `window` reported tasks, of the last
`window` reported tasks that injected memories, and of the last `window` that injected
none; and the share of the last `window` tasks (reported or not) where nothing passed the
gate. At most `MAX_POINTS` tasks are plotted, evenly spaced, the last always among them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from . import validation
from .errors import InvalidInputError
from .storage.base import (
    MEMORY_SORTS,
    OUTCOME_FILTERS,
    Appearance,
    ArchivedRow,
    LedgerEntry,
    LedgerFilter,
    MemoryFilter,
    MemoryRow,
    Storage,
    TaskPoint,
    Usage,
)

MAX_PAGE = 500
MAX_SEARCH_CHARS = 1000
MAX_POINTS = 300
SPARK_POINTS = 40  # Q values per sparkline in the memory list


@dataclass(frozen=True)
class Listed:
    """A memory in a list, with its use and its Q history from the ledger."""

    memory: MemoryRow
    usage: Usage
    q_history: list[tuple[float, float]]  # (time, Q after an outcome), oldest first


@dataclass(frozen=True)
class MemoryPage:
    rows: list[Listed]
    total: int  # memories matching the filters
    next_after: tuple[float, int] | None  # the cursor of the next page; None on the last


@dataclass(frozen=True)
class MemoryHistory:
    memory: MemoryRow | None  # None once forgotten (the ledger keeps its history)
    usage: Usage
    appearances: list[Appearance]  # newest first
    q_history: list[tuple[float, float]]
    archived: ArchivedRow | None = None  # the archive's row, when it left retrieval that way


@dataclass(frozen=True)
class LedgerPage:
    tasks: list[LedgerEntry]
    next_before: tuple[float, str] | None


@dataclass(frozen=True)
class CurvePoint:
    task: int  # 1-based position of the task in the series
    at: float  # its recall time
    success: float | None  # rolling success rate of reported tasks
    with_memories: float | None
    without_memories: float | None
    gate_empty: float  # rolling share of tasks where nothing passed the gate


@dataclass(frozen=True)
class LearningCurve:
    window: int
    tasks: int  # tasks in the series
    reported: int
    truncated: bool  # the namespace has more tasks than the series holds
    points: list[CurvePoint] = field(default_factory=list)


def _limit(value: int, name: str = "limit", top: int = MAX_PAGE) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
        raise InvalidInputError(f"{name} must be an integer in 1..{top}, got {value!r}")
    return value


def _q_bound(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInputError(f"{name} must be a number in [-1, 1], got {value!r}")
    return float(value)


def _finite(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _after(after: tuple[float, int] | None) -> tuple[float, int] | None:
    """A memory list's keyset cursor: (a finite sort value, a memory id). Every backend
    compares it the same way only when it is a real number (SQLite would read NaN as NULL,
    PostgreSQL orders it above every number)."""
    if after is None:
        return None
    ok = isinstance(after, (tuple, list)) and len(after) == 2
    if not ok or not _finite(after[0]) or isinstance(after[1], bool) or not isinstance(after[1], int):
        raise InvalidInputError(f"after must be (a finite sort value, a memory id), got {after!r}")
    return (after[0], after[1])


def _search_text(text: str | None) -> str | None:
    """The substring filter, None when blank; a NUL or a lone surrogate (which no stored
    memory holds, and which a driver may refuse to send) is refused on every backend."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    return validation.text("text", text, MAX_SEARCH_CHARS)


def _before(before: tuple[float, str] | None) -> tuple[float, str] | None:
    """A ledger page's keyset cursor: (a finite time, a task id of the form recall hands
    out; a NUL, which PostgreSQL cannot compare, never is one)."""
    if before is None:
        return None
    ok = isinstance(before, (tuple, list)) and len(before) == 2
    if not ok or not _finite(before[0]) or not isinstance(before[1], str) \
            or not validation.TASK_ID_RE.fullmatch(before[1]):
        raise InvalidInputError(f"before must be (a finite time, a task id), got {before!r}")
    return (before[0], before[1])


def memory_filter(
    namespace: str,
    *,
    sort: str = "q",
    descending: bool = True,
    kind: str | None = None,
    q_min: float | None = None,
    q_max: float | None = None,
    text: str | None = None,
    after: tuple[float, int] | None = None,
    limit: int = 50,
) -> MemoryFilter:
    """A checked `MemoryFilter` (bad input: InvalidInputError saying what to fix)."""
    if sort not in MEMORY_SORTS:
        raise InvalidInputError(f"sort {sort!r} is invalid: use one of {', '.join(MEMORY_SORTS)}")
    return MemoryFilter(
        namespace=validation.namespace(namespace),
        sort=sort,
        descending=bool(descending),
        kind=None if kind is None else validation.kind(kind),
        q_min=_q_bound("q_min", q_min),
        q_max=_q_bound("q_max", q_max),
        text=_search_text(text),
        after=_after(after),
        limit=_limit(limit),
    )


def _cursor(row: MemoryRow, sort: str) -> tuple[float, int]:
    value = {"q": row.q, "created": row.created_at, "updates": row.n_updates, "id": row.id}[sort]
    return (value, row.id)


def memories_page(storage: Storage, query: MemoryFilter) -> MemoryPage:
    """One page of memories with their use and Q history (one read snapshot)."""
    probe = replace(query, limit=query.limit + 1)  # one more: is there a next page?
    with storage.inspect() as r:
        rows = r.memory_page(probe)
        total = r.memory_count(query)
        shown = rows[: query.limit]
        ids = [m.id for m in shown]
        usage = r.usage(ids)
        history = r.q_history(ids, SPARK_POINTS)
    more = len(rows) > query.limit
    return MemoryPage(
        rows=[Listed(m, usage.get(m.id, Usage()), history.get(m.id, [])) for m in shown],
        total=total,
        next_after=_cursor(shown[-1], query.sort) if more else None,
    )


def memory_history(storage: Storage, memory_id: int, limit: int) -> MemoryHistory:
    if isinstance(memory_id, bool) or not isinstance(memory_id, int):
        raise InvalidInputError(f"memory id must be an integer, got {memory_id!r}")
    with storage.inspect() as r:
        appearances = r.appearances(memory_id, _limit(limit, top=10_000))
        usage = r.usage([memory_id]).get(memory_id, Usage())
        history = r.q_history([memory_id], 10_000).get(memory_id, [])
    with storage.read() as tx:
        memory = tx.get([memory_id]).get(memory_id)
        archived = None if memory is not None else tx.archived([memory_id]).get(memory_id)
    return MemoryHistory(memory, usage, appearances, history, archived)


def ledger_filter(
    namespace: str,
    *,
    outcome: str | None = None,
    empty_pool: bool | None = None,
    before: tuple[float, str] | None = None,
    limit: int = 50,
) -> LedgerFilter:
    if outcome is not None and outcome not in OUTCOME_FILTERS:
        raise InvalidInputError(
            f"outcome {outcome!r} is invalid: use one of {', '.join(OUTCOME_FILTERS)}"
        )
    return LedgerFilter(
        validation.namespace(namespace), outcome, empty_pool, _before(before), _limit(limit)
    )


def ledger_page(storage: Storage, query: LedgerFilter) -> LedgerPage:
    probe = replace(query, limit=query.limit + 1)
    with storage.inspect() as r:
        tasks = r.ledger_page(probe)
    shown = tasks[: query.limit]
    more = len(tasks) > query.limit
    return LedgerPage(shown, (shown[-1].created_at, shown[-1].task_id) if more else None)


def learning_curve(storage: Storage, namespace: str, window: int, limit: int) -> LearningCurve:
    window = _limit(window, "window", 10_000)
    limit = _limit(limit, "limit", 100_000)
    with storage.inspect() as r:
        series = r.task_points(validation.namespace(namespace), limit + 1)
    truncated = len(series) > limit
    return curve(series[-limit:], window, truncated)


class _Rolling:
    """The mean of the last `window` values added."""

    def __init__(self, window: int) -> None:
        self.values: deque[float] = deque()
        self.window = window
        self.total = 0.0

    def add(self, value: float) -> None:
        self.values.append(value)
        self.total += value
        if len(self.values) > self.window:
            self.total -= self.values.popleft()

    @property
    def mean(self) -> float | None:
        return self.total / len(self.values) if self.values else None


def curve(series: Sequence[TaskPoint], window: int, truncated: bool = False) -> LearningCurve:
    """The learning curve of a task series (see the module docstring)."""
    overall, used, alone, empty = (_Rolling(window) for _ in range(4))
    step = max(1, math.ceil(len(series) / MAX_POINTS))
    points: list[CurvePoint] = []
    for i, task in enumerate(series, start=1):
        empty.add(1.0 if task.pool == 0 else 0.0)
        if task.reward is not None:
            won = 1.0 if task.reward > 0 else 0.0
            overall.add(won)
            (used if task.injected else alone).add(won)
        if i % step == 0 or i == len(series):
            points.append(
                CurvePoint(
                    i, task.created_at, overall.mean, used.mean, alone.mean, empty.mean or 0.0
                )
            )
    reported = sum(1 for t in series if t.reward is not None)
    return LearningCurve(window, len(series), reported, truncated, points)
