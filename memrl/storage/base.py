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
- a namespace is bound to one embedding model on its first write.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..config import MemoryConfig

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

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> MemoryRow:
        values = list(row)
        meta = values[12]
        values[12] = json.loads(meta) if isinstance(meta, str) else dict(meta or {})
        return cls(*values)


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
        alpha: float | None,
    ) -> Outcome:
        """Record the outcome, mark `credit`, and (alpha given) move their Q."""

    def delete_memories(self, memory_ids: Sequence[int]) -> int: ...


class Storage(Protocol):
    model_id: str
    dim: int
    target: str  # the file path or URL it was opened on (for messages)

    def read(self) -> AbstractContextManager[ReadTx]: ...

    def write(self) -> AbstractContextManager[WriteTx]: ...

    def preload(self, namespace: str) -> int: ...

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
