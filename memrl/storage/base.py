"""What a storage backend offers `Memory`: rows, and read and write transactions over them.

`Memory` is the only caller. It opens a read (`with storage.read() as r:`) or a write
transaction (`with storage.write() as tx:`); a write commits when the block ends and rolls
back if it raises, so the checks `Memory` makes inside it (is the task known? already
reported? are used_ids injected?) and the writes they guard are one atomic step. Calls go
one way, `Memory` -> storage; the storage knows SQL, not the learning rule.

The contracts every backend keeps (the conformance tests check them on each):
- ids of memories and intents are never reused, even after a delete;
- `nearest_intents` returns exact cosine similarities, best first, ties to the newer intent;
- `members` returns, per intent, at most `cap` memories ordered by Q desc, then id desc;
- `apply_outcome` updates Q in one statement (no read-modify-write), once per task;
- a namespace is bound to one embedding model on its first write;
- `apply_outcome` records, per credited memory still present, its Q after the outcome;
- archiving moves a memory out of retrieval the way a delete does (an intent left with no
  memory leaves the search index), keeping the row and its intent's vector in
  `archived_memories`; restoring moves it back under the SAME id, re-filed under its
  intent. A memory id is live or archived, never both.

`Storage.inspect()` opens a read-only view (`InspectReads`) for the inspection page
(`memrl ui`): paged and filtered memory lists, each memory's ledger history, the ledger
itself and the series of the learning curve. Each read is bounded (a page, a limit) and
served by an index, so it stays fast on a namespace of 100k memories.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..config import MemoryConfig
from ..errors import InvalidInputError, ModelMismatchError
from ..gate_learning import ReportedTask
from ..learning import LearningRule, posterior_sd

MEMORY_FIELDS = (
    "id",
    "namespace",
    "intent_id",
    "intent",
    "experience",
    "kind",
    "q",
    "n_updates",
    "last_reward",
    "created_at",
    "updated_at",
    "content_hash",
    "metadata",
    "model_id",
    "source_task_id",
    "successes",
    "failures",
    "q_recent",
)


@dataclass(frozen=True)
class MemoryRow:
    id: int
    namespace: str
    intent_id: int
    intent: str
    experience: str
    kind: str
    q: float
    n_updates: int
    last_reward: float | None
    created_at: float
    updated_at: float
    content_hash: str
    metadata: dict[str, Any]
    model_id: str
    source_task_id: str | None
    successes: float = 0.0  # credited outcomes, reward r counting (1 + r) / 2 ...
    failures: float = 0.0  # ... and (1 - r) / 2 (learning.py)
    q_recent: float = 0.0  # the fast EMA of the same rewards (change detection)

    @property
    def q_sd(self) -> float:
        """The posterior standard deviation of the memory's utility (learning.py)."""
        return posterior_sd(self.successes, self.failures)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> MemoryRow:
        values = list(row)
        meta = values[12]
        values[12] = json.loads(meta) if isinstance(meta, str) else dict(meta or {})
        return cls(*values)


# Why a memory left retrieval (`archived_memories.reason`):
# superseded: a correction replaced it (store_experience(..., supersedes=[...]));
# pruned: `memrl prune` (forgetting by utility); manual: archived by hand;
# outdated: a report_outcome feedback said so.
ARCHIVE_REASONS = ("superseded", "pruned", "manual", "outdated")
# Per-memory feedback of report_outcome (`memory_feedback.verdict`).
VERDICTS = ("useful", "incorrect", "outdated")


@dataclass(frozen=True)
class ArchivedRow:
    """A memory out of retrieval: its row as it left, why, by what, and when."""

    memory: MemoryRow
    reason: str
    superseded_by: int | None
    archived_at: float

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> ArchivedRow:
        """From the memory's columns (MEMORY_FIELDS) then reason, superseded_by, archived_at."""
        n = len(MEMORY_FIELDS)
        return cls(MemoryRow.from_row(row[:n]), row[n], row[n + 1], float(row[n + 2]))


@dataclass(frozen=True)
class NewMemory:
    namespace: str
    intent: str
    intent_key: str  # the grouping key (retrieval.intent_key)
    experience: str
    kind: str
    content_hash: str
    metadata: str  # JSON text
    vector: np.ndarray  # the intent's vector (used when the intent is new)
    source_task_id: str | None = None
    q: float = 0.0
    n_updates: int = 0
    last_reward: float | None = None
    created_at: float | None = None
    updated_at: float | None = None
    successes: float = 0.0
    failures: float = 0.0
    q_recent: float | None = None  # None: starts at q

    def row(self, intent_id: int, model_id: str, now: float) -> tuple[Any, ...]:
        """The values of a `memories` row without its id, in both backends' column order
        (MEMORY_FIELDS without the id)."""
        return (
            self.namespace, intent_id, self.intent, self.experience, self.kind, self.q,
            self.n_updates, self.last_reward, self.created_at or now, self.updated_at or now,
            self.content_hash, self.metadata, model_id, self.source_task_id,
            self.successes, self.failures, self.q if self.q_recent is None else self.q_recent,
        )


def refuse_other_model(namespace: str, bound: str, model_id: str) -> None:
    """A namespace holds the vectors of one embedding model (bound on its first write)."""
    if bound != model_id:
        raise ModelMismatchError(
            f"namespace {namespace!r} holds vectors of model {bound!r}, but this server "
            f"embeds with {model_id!r}: use the same model, or another namespace"
        )


def refuse_clash(memory_id: int, namespace: str, holder: int | None) -> None:
    """An archived memory comes back only if no live memory holds the same content."""
    if holder is not None:
        raise InvalidInputError(
            f"memory {memory_id} cannot be restored: memory {holder} of namespace "
            f"{namespace!r} holds the same intent and experience; archive or forget "
            f"{holder} first, or leave {memory_id} archived"
        )


@dataclass(frozen=True)
class PoolRow:
    """A memory in a phase-A pool, with the similarity of its intent to the task."""

    memory: MemoryRow
    similarity: float


@dataclass(frozen=True)
class TaskCandidate:
    memory_id: int
    rank: int
    similarity: float
    q: float
    score: float
    injected: bool


@dataclass(frozen=True)
class NewTask:
    task_id: str
    namespace: str
    query: str
    k1: int
    k2: int
    lam: float
    delta: float
    epsilon: float
    explored: bool
    selection_prob: float
    candidates: list[TaskCandidate] = field(default_factory=list)


@dataclass(frozen=True)
class TaskRow:
    task_id: str
    namespace: str
    query: str
    outcome: str | None
    reward: float | None
    injected: list[int]
    credited: list[int]
    pool: list[int] = field(default_factory=list)  # the whole phase-A pool, by rank


@dataclass(frozen=True)
class Outcome:
    """What `apply_outcome` did: Q now of the credited memories still present, and the
    credited ids that had been forgotten since the recall."""

    new_q: dict[int, float]
    forgotten: list[int]


class ReadTx(Protocol):
    def check_model(self, namespace: str) -> None:
        """Raise ModelMismatchError if `namespace` holds another model's vectors."""

    def namespace_delta(self, namespace: str) -> float | None: ...

    def learned_delta(self, namespace: str) -> float | None:
        """The namespace's gate learned from outcomes (gate_learning.py), if any."""

    def reported_tasks(self, namespace: str, limit: int) -> list[ReportedTask]:
        """The namespace's last `limit` reported tasks (by recall time), newest first,
        each with its injected memories and their similarities."""

    def nearest_intents(
        self, query: np.ndarray, namespace: str, k: int
    ) -> list[tuple[int, float]]: ...

    def members(self, intent_ids: Sequence[int], cap: int) -> list[MemoryRow]: ...

    def get(self, memory_ids: Sequence[int]) -> dict[int, MemoryRow]: ...

    def task(self, task_id: str) -> TaskRow | None: ...

    def q_of(self, memory_ids: Sequence[int]) -> dict[int, float]: ...

    def memories_page(
        self, namespace: str | None, after_id: int, limit: int
    ) -> list[MemoryRow]: ...

    def stats(self, namespace: str | None) -> list[dict[str, Any]]: ...

    def archived(self, memory_ids: Sequence[int]) -> dict[int, ArchivedRow]:
        """The archived memories among `memory_ids` (live or unknown ids are absent)."""

    def archived_page(
        self, namespace: str | None, after_id: int, limit: int
    ) -> list[ArchivedRow]: ...

    def superseded_live(self, namespace: str) -> list[int]:
        """Live memories of `namespace` that a correction superseded while the correction
        is live too (restored after being superseded), by id."""


class WriteTx(ReadTx, Protocol):
    def insert_memories(
        self, items: Sequence[NewMemory], config: MemoryConfig
    ) -> list[tuple[int, bool]]:
        """Insert memories; (id, created) per item, the existing id for a duplicate."""

    def record_task(self, task: NewTask) -> None:
        """Log one recall; InvalidInputError if the task id is taken."""

    def apply_outcome(
        self,
        task_id: str,
        outcome: str,
        reward: float,
        used_ids: list[int] | None,
        credit: Sequence[int],
        rule: LearningRule | None,
        rewards: Mapping[int, float] | None = None,
    ) -> Outcome:
        """Record the outcome, mark `credit`, and (a rule given) update their Q, evidence
        counts and recent Q by `rule` (learning.py) toward `reward`, or toward `rewards[id]`
        for the memories it names (per-memory feedback)."""

    def delete_memories(self, memory_ids: Sequence[int]) -> int: ...

    def archive_memories(
        self, memory_ids: Sequence[int], reason: str, superseded_by: int | None = None
    ) -> list[int]:
        """Move live memories to the archive (as a delete leaves retrieval); the ids moved.
        With `superseded_by`, the correction is also recorded in `memory_corrections`."""

    def lock_memories(self, memory_ids: Sequence[int]) -> None:
        """Hold the rows of these memories until the transaction ends, taken in id order
        (PostgreSQL; SQLite's write transaction holds the whole file): a write that then
        changes two sets of them (credit, archive) cannot deadlock with another."""

    def delete_archived(self, memory_ids: Sequence[int]) -> int:
        """Delete archived memories for good (forget); how many rows went."""

    def restore_memories(self, memory_ids: Sequence[int], config: MemoryConfig) -> list[int]:
        """Move archived memories back under their ids and intents; the ids restored.
        InvalidInputError if a live memory of the namespace holds the same content."""

    def record_feedback(self, task_id: str, feedback: Sequence[tuple[int, str]]) -> None:
        """Log per-memory verdicts of a task's outcome in `memory_feedback`."""
    def count_gate_report(self, namespace: str) -> int:
        """Count one outcome toward the gate's next recomputation; the count now (0 for a
        namespace that has no row yet: nothing stored in it)."""

    def set_learned_delta(self, namespace: str, delta: float | None) -> None:
        """Store the namespace's learned gate (None: none learned)."""


# -- inspection reads (the page of `memrl ui`) ---------------------------------------------

# The SQL both backends use for them: shared_sql.SORT_COLUMNS and OUTCOME_SQL.
MEMORY_SORTS = ("q", "created", "updates", "id")  # Q, created_at, n_updates, id
OUTCOME_FILTERS = ("success", "failure", "pending")  # reward > 0, reward <= 0, not reported


@dataclass(frozen=True)
class MemoryFilter:
    """One page of a namespace's memories: sorted by `sort` (ties by id, same direction),
    filtered, starting after the keyset cursor `after` = (sort value, id) of the last row
    of the previous page. `text` matches intent or experience as a substring (ASCII case
    folded)."""

    namespace: str
    sort: str = "q"
    descending: bool = True
    kind: str | None = None
    q_min: float | None = None
    q_max: float | None = None
    text: str | None = None
    after: tuple[float, int] | None = None
    limit: int = 50


@dataclass(frozen=True)
class Usage:
    """A memory's use, from the ledger: pools it entered, times injected, outcomes of the
    reported tasks that injected it, and when it was last injected."""

    in_pool: int = 0
    injected: int = 0
    injected_reported: int = 0
    injected_success: int = 0  # reward > 0
    last_injected: float | None = None

    @property
    def success_rate(self) -> float | None:
        if not self.injected_reported:
            return None
        return self.injected_success / self.injected_reported


@dataclass(frozen=True)
class Appearance:
    """One task that had a memory in its phase-A pool, and what came of it."""

    task_id: str
    created_at: float
    query: str
    rank: int
    similarity: float
    q: float  # Q when the task was recalled
    score: float
    injected: bool
    credited: bool
    outcome: str | None
    reward: float | None
    reported_at: float | None
    q_after: float | None  # Q after the outcome, for a credited memory

    @classmethod
    def from_row(cls, r: Sequence[Any]) -> Appearance:
        """From the columns task_id, created_at, query, rank, similarity, q, score,
        injected, credited, outcome, reward, reported_at, q_after (both backends)."""
        return cls(
            r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7]), bool(r[8]), r[9], r[10],
            r[11], r[12],
        )


@dataclass(frozen=True)
class PoolMember:
    """A memory of a task's pool as the ledger recorded it; `intent` and `kind` are None
    once the memory has been forgotten."""

    memory_id: int
    rank: int
    similarity: float
    q: float
    score: float
    injected: bool
    credited: bool
    q_after: float | None
    intent: str | None
    kind: str | None


@dataclass(frozen=True)
class LedgerEntry:
    task_id: str
    namespace: str
    query: str
    created_at: float
    k1: int
    k2: int
    lam: float
    delta: float
    epsilon: float
    explored: bool
    selection_prob: float | None
    outcome: str | None
    reward: float | None
    used_ids: list[int] | None
    reported_at: float | None
    pool: list[PoolMember]

    @classmethod
    def from_row(
        cls, r: Sequence[Any], pool: list[PoolMember], used_ids: list[int] | None
    ) -> LedgerEntry:
        """From the task columns in field order (used_ids decoded by the backend)."""
        return cls(
            r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], bool(r[9]), r[10], r[11],
            r[12], used_ids, r[14], pool,
        )


@dataclass(frozen=True)
class LedgerFilter:
    """One page of a namespace's tasks, newest first, before the keyset cursor `before` =
    (created_at, task_id). `empty_pool`: True keeps the tasks where nothing passed the
    gate, False the others."""

    namespace: str
    outcome: str | None = None  # one of OUTCOME_FILTERS
    empty_pool: bool | None = None
    before: tuple[float, str] | None = None
    limit: int = 50


@dataclass(frozen=True)
class TaskPoint:
    """A task of the learning curve: when, its reward (None: not reported), its pool size
    and how many memories it injected."""

    created_at: float
    reward: float | None
    pool: int
    injected: int


class InspectReads(Protocol):
    """Read-only queries of the inspection page. Every one is bounded by its arguments."""

    def memory_page(self, query: MemoryFilter) -> list[MemoryRow]: ...

    def memory_count(self, query: MemoryFilter) -> int:
        """How many memories match `query` (its cursor and limit ignored)."""

    def usage(self, memory_ids: Sequence[int]) -> dict[int, Usage]:
        """Usage of each memory that entered a pool (others are absent)."""

    def q_history(self, memory_ids: Sequence[int], per_memory: int) -> dict[int, list[tuple[float, float]]]:
        """Per memory, (reported_at, Q after) of its last `per_memory` credited outcomes,
        oldest first."""

    def appearances(self, memory_id: int, limit: int) -> list[Appearance]:
        """The last `limit` tasks with `memory_id` in their pool, newest first (also for a
        forgotten memory: the ledger keeps its history)."""

    def ledger_page(self, query: LedgerFilter) -> list[LedgerEntry]: ...

    def task_points(self, namespace: str, limit: int) -> list[TaskPoint]:
        """The namespace's last `limit` tasks, oldest first."""


class Storage(Protocol):
    model_id: str
    dim: int
    target: str  # the file path or URL it was opened on (for messages)

    def read(self) -> AbstractContextManager[ReadTx]: ...

    def write(self) -> AbstractContextManager[WriteTx]: ...

    def inspect(self) -> AbstractContextManager[InspectReads]:
        """A read-only, consistent view for the inspection page; it should not hold up
        recalls and outcomes while it runs (SQLite: its own connection)."""

    def preload(self, namespace: str, *, finish_later: bool = False) -> int:
        """Read a namespace's search data into this process ahead of its first recall; how
        many rows. With `finish_later`, work that only speeds up later searches is left to
        `finish_preload`, which a server runs once it answers."""

    def finish_preload(self) -> None: ...

    def close(self) -> None: ...


def iter_memories(storage: Storage, namespace: str | None, batch: int = 500) -> Iterator[MemoryRow]:
    """Every memory (of one namespace, or all) in id order, read in pages."""
    last = 0
    while True:
        with storage.read() as r:
            rows = r.memories_page(namespace, last, batch)
        if not rows:
            return
        yield from rows
        last = rows[-1].id


def iter_archived(
    storage: Storage, namespace: str | None, batch: int = 500
) -> Iterator[ArchivedRow]:
    """Every archived memory (of one namespace, or all) in id order, read in pages."""
    last = 0
    while True:
        with storage.read() as r:
            rows = r.archived_page(namespace, last, batch)
        if not rows:
            return
        yield from rows
        last = rows[-1].memory.id
