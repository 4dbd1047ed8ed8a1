"""The embedded backend: one SQLite file (sqlite-vec loaded), shared by threads and processes.

`SqliteStorage` holds one connection shared by the threads of one process under a lock;
several processes share the file through WAL and `BEGIN IMMEDIATE` write transactions
(connection.py). A read runs under the lock in autocommit mode; a write is one
transaction, so everything `Memory` does inside `with storage.write() as tx:` commits or
rolls back together. The inspection page reads through a second connection of its own
(opened on first use), so a long page query never holds up a recall or an outcome.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ...config import MemoryConfig
from ...errors import InvalidInputError, ModelMismatchError
from ...gate_learning import ReportedTask
from ...learning import LearningRule
from .. import shared_sql
from ..base import ArchivedRow, MemoryRow, NewMemory, NewTask, Outcome, TaskRow
from ..shared_sql import SQLITE
from . import ledger, memories
from .connection import connect, write_transaction
from .index import State, VectorIndex
from .inspect import SqliteInspect
from .migrations import apply_migrations

_STATS_KEYS = (
    "namespace",
    "model_id",
    "delta",
    "delta_learned",
    "memories",
    "intents",
    "mean_q",
    "tested_memories",
    "failure_memories",
    "tasks",
    "tasks_reported",
    "success_rate",
    "archived",
)


class SqliteTx:
    """Reads and writes on the storage's connection (inside a transaction for writes)."""

    def __init__(self, storage: SqliteStorage, conn: Any, *, writing: bool = False) -> None:
        self._s = storage
        self.conn = conn
        self._writing = writing
        self._namespaces: dict[str, memories.NamespaceRow | None] = {}
        # a read block's index state of a namespace, read with its row, for the next search
        self._index_states: dict[str, State] = {}

    # -- reads ------------------------------------------------------------------------------

    def _namespace_row(self, namespace: str) -> memories.NamespaceRow | None:
        """(model_id, delta, learned delta) of a namespace, read once per read block: a recall asks for
        both (as the PostgreSQL backend does). A read block reads the namespace's vector
        index state in the same statement, for its search (`nearest_intents`)."""
        if self._writing:
            self._namespaces[namespace] = memories.namespace_row(self.conn, namespace)
        elif namespace not in self._namespaces:
            row, state = memories.namespace_row_and_state(self.conn, namespace)
            self._namespaces[namespace] = row
            self._index_states[namespace] = state
        return self._namespaces[namespace]

    def check_model(self, namespace: str) -> None:
        row = self._namespace_row(namespace)
        if row is not None:
            memories.refuse_other_model(namespace, row[0], self._s.model_id)

    def namespace_delta(self, namespace: str) -> float | None:
        row = self._namespace_row(namespace)
        return None if row is None else row[1]

    def learned_delta(self, namespace: str) -> float | None:
        row = self._namespace_row(namespace)
        return None if row is None else row[2]

    def reported_tasks(self, namespace: str, limit: int) -> list[ReportedTask]:
        return ledger.reported_tasks(self.conn, namespace, limit)

    def nearest_intents(
        self, query: np.ndarray, namespace: str, k: int
    ) -> list[tuple[int, float]]:
        # the state read with the namespace's row, once: a later search reads its own
        state = None if self._writing else self._index_states.pop(namespace, None)
        return self._s.index.search(
            self.conn, self._s.checked_vector(query), namespace, k, state=state
        )

    def members(self, intent_ids: Sequence[int], cap: int) -> list[MemoryRow]:
        return memories.members(self.conn, intent_ids, cap)

    def get(self, memory_ids: Sequence[int]) -> dict[int, MemoryRow]:
        return shared_sql.get(self.conn, SQLITE, memory_ids)

    def task(self, task_id: str) -> TaskRow | None:
        return ledger.task(self.conn, task_id)

    def q_of(self, memory_ids: Sequence[int]) -> dict[int, float]:
        return shared_sql.q_of(self.conn, SQLITE, memory_ids)

    def memories_page(self, namespace: str | None, after_id: int, limit: int) -> list[MemoryRow]:
        return shared_sql.memories_page(self.conn, SQLITE, namespace, after_id, limit)

    def stats(self, namespace: str | None) -> list[dict[str, Any]]:
        where = "" if namespace is None else "WHERE n.namespace = ?"
        rows = self.conn.execute(
            f"""
            SELECT n.namespace, n.model_id, n.delta, n.learned_delta,
              (SELECT count(*) FROM memories m WHERE m.namespace = n.namespace),
              (SELECT count(*) FROM intents i WHERE i.namespace = n.namespace),
              (SELECT avg(q) FROM memories m WHERE m.namespace = n.namespace),
              (SELECT count(*) FROM memories m
                 WHERE m.namespace = n.namespace AND successes + failures >= 1),
              (SELECT count(*) FROM memories m WHERE m.namespace = n.namespace AND kind = 'failure'),
              (SELECT count(*) FROM tasks t WHERE t.namespace = n.namespace),
              (SELECT count(*) FROM tasks t WHERE t.namespace = n.namespace AND reward IS NOT NULL),
              (SELECT avg(reward > 0) FROM tasks t WHERE t.namespace = n.namespace AND reward IS NOT NULL),
              (SELECT count(*) FROM archived_memories a WHERE a.namespace = n.namespace)
            FROM namespaces n {where} ORDER BY n.namespace
            """,
            [] if namespace is None else [namespace],
        ).fetchall()
        return [dict(zip(_STATS_KEYS, r)) for r in rows]

    def archived(self, memory_ids: Sequence[int]) -> dict[int, ArchivedRow]:
        return shared_sql.archived(self.conn, SQLITE, memory_ids)

    def archived_page(
        self, namespace: str | None, after_id: int, limit: int
    ) -> list[ArchivedRow]:
        return shared_sql.archived_page(self.conn, SQLITE, namespace, after_id, limit)

    def superseded_live(self, namespace: str) -> list[int]:
        return shared_sql.superseded_live(self.conn, SQLITE, namespace)

    # -- writes -----------------------------------------------------------------------------

    def insert_memories(
        self, items: Sequence[NewMemory], config: MemoryConfig
    ) -> list[tuple[int, bool]]:
        vectors = [self._s.checked_vector(m.vector) for m in items]
        return memories.insert(self.conn, self._s.index, items, vectors, self._s.model_id, config)

    def record_task(self, task: NewTask) -> None:
        ledger.record_task(self.conn, self._s.model_id, task)

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
        return ledger.apply_outcome(
            self.conn, task_id, outcome, reward, used_ids, credit, rule, rewards
        )

    def delete_memories(self, memory_ids: Sequence[int]) -> int:
        return memories.delete(self.conn, self._s.index, memory_ids)

    def archive_memories(
        self, memory_ids: Sequence[int], reason: str, superseded_by: int | None = None
    ) -> list[int]:
        return memories.archive(self.conn, self._s.index, memory_ids, reason, superseded_by)

    def lock_memories(self, memory_ids: Sequence[int]) -> None:
        """Nothing to do: the write transaction holds the file."""

    def delete_archived(self, memory_ids: Sequence[int]) -> int:
        return memories.delete_archived(self.conn, memory_ids)

    def restore_memories(self, memory_ids: Sequence[int], config: MemoryConfig) -> list[int]:
        return memories.restore(self.conn, self._s.index, memory_ids, self._s.model_id, config)

    def record_feedback(self, task_id: str, feedback: Sequence[tuple[int, str]]) -> None:
        memories.record_feedback(self.conn, task_id, feedback)

    def count_gate_report(self, namespace: str) -> int:
        return shared_sql.count_gate_report(self.conn, SQLITE, namespace)

    def set_learned_delta(self, namespace: str, delta: float | None) -> None:
        shared_sql.set_learned_delta(self.conn, SQLITE, namespace, delta)


class SqliteStorage:
    """One database file. `SqliteStorage(path, dim, model_id)`; close with `close()`."""

    def __init__(self, path: str | Path, dim: int, model_id: str, **index_options: Any) -> None:
        self.target = self.path = str(path)
        self.model_id = model_id
        self.dim = dim
        self.index = VectorIndex(dim, **index_options)
        self._lock = threading.RLock()
        self._inspect_lock = threading.Lock()
        self._inspect_conn: Any = None
        self._conn = connect(self.path)
        try:
            apply_migrations(self._conn, dim)
        except BaseException:
            self._conn.close()  # e.g. a dimension mismatch: do not leak the connection
            raise

    @contextmanager
    def read(self) -> Iterator[SqliteTx]:
        with self._lock:
            yield SqliteTx(self, self._conn)

    @contextmanager
    def write(self) -> Iterator[SqliteTx]:
        with self._lock, write_transaction(self._conn) as conn:
            yield SqliteTx(self, conn, writing=True)

    @contextmanager
    def inspect(self) -> Iterator[SqliteInspect]:
        """A read transaction (one consistent snapshot) on the inspection connection; an
        in-memory database has only the main one."""
        if self.path == ":memory:":
            with self._lock:
                yield SqliteInspect(self._conn)
            return
        with self._inspect_lock:
            if self._inspect_conn is None:
                self._inspect_conn = connect(self.path, readonly=True)
                self._inspect_conn.execute("PRAGMA query_only = ON")  # a write raises
            conn = self._inspect_conn
            conn.execute("BEGIN")
            try:
                yield SqliteInspect(conn)
            finally:
                conn.execute("ROLLBACK")  # read only: nothing to commit

    def preload(self, namespace: str, *, finish_later: bool = False) -> int:
        """Read a namespace's search data into memory ahead of its first recall. With
        `finish_later`, what only speeds up later searches (the exact scan's projection,
        tens of ms at 10k rows) is left to `finish_preload`."""
        with self._lock:
            return self.index.preload(self._conn, namespace, fit_later=finish_later)

    def finish_preload(self) -> None:
        """The work `preload(..., finish_later=True)` left; recalls go on meanwhile (it
        takes no lock they wait for: it reads only this process's cache)."""
        self.index.fit_pending()

    def close(self) -> None:
        with self._inspect_lock:
            if self._inspect_conn is not None:
                self._inspect_conn.close()
                self._inspect_conn = None
        with self._lock:
            self._conn.close()

    def checked_vector(self, vec: np.ndarray) -> np.ndarray:
        """Refuse a vector sqlite-vec would reject (wrong size) or store as garbage (NaN)."""
        vec = np.asarray(vec, dtype=np.float32)
        if vec.shape != (self.dim,):
            raise ModelMismatchError(
                f"vector has shape {vec.shape}, expected ({self.dim},): the embedding "
                f"model does not match this database ({self.dim}-dimensional vectors)"
            )
        if not np.isfinite(vec).all():
            raise InvalidInputError("vector has non-finite values (NaN or infinity)")
        return vec
