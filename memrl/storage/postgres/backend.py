"""The team backend: PostgreSQL with pgvector, shared by many servers at once.

`PostgresStorage(url, dim, model_id)` opens a pool of connections (connection.py) after
migrating the schema (migrations.py). Each `read()` and `write()` borrows a connection for
the block; a `write()` is one transaction (committed when the block ends, rolled back if it
raises), so the checks `Memory` makes inside it and the writes they guard are one step, as
on SQLite. Unlike SQLite, writers do not queue behind one lock: they conflict only on the
rows they touch, which the ledger and memory statements handle with row locks, unique
constraints and conditional updates (ledger.py, memories.py).

Phase A runs as the protocol's two calls, `nearest_intents` then `members`, each one
statement. The nearest intents come from the HNSW index (an approximate candidate set of
k + TIE_MARGIN intents, with their vectors) and are ranked by the same exact cosine as the
SQLite backend (`rank_exact`), so both backends give the same similarities and the same
order, ties to the newer intent, for the same data. Measured against one statement (a
CTE for the intents, a LATERAL join for their members; clients/bench/postgres.py): at 100k
intents p50 28.7 ms as two calls against 18.5 ms as one, on a machine at load 15-39 where
each round trip waits for a CPU (an idle loopback round trip is ~0.1 ms). The two calls
were kept: one ranking code for both backends and no new protocol call; the round trips
were cut elsewhere (autocommit reads, one statement per namespace lookup, task log and
task read). See docs/PERFORMANCE.md#postgresql.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from ...config import MemoryConfig
from ...errors import DatabaseError, InvalidInputError, ModelMismatchError
from ...gate_learning import ReportedTask
from ...learning import LearningRule
from ...paths import redact_url
from .. import shared_sql
from ..base import ArchivedRow, MemoryRow, NewMemory, NewTask, Outcome, TaskRow
from ..shared_sql import POSTGRES
from ..sqlite.kernels import rank_exact
from . import ledger, memories
from .connection import connect, open_pool
from .inspect import PostgresInspect
from .migrations import apply_migrations

# Extra neighbours fetched and ranked exactly, so ties at the k-th place resolve by id
# (as in the SQLite backend's index.py).
TIE_MARGIN = 16
POOL_SIZE = 8

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


class PostgresTx:
    """Reads and writes on a borrowed connection (inside a transaction for writes)."""

    def __init__(self, storage: PostgresStorage, conn: Any, *, writing: bool) -> None:
        self._s = storage
        self.conn = conn
        self._writing = writing
        self._namespaces: dict[str, tuple[str, float | None, float | None] | None] = {}

    # -- reads ------------------------------------------------------------------------------

    def _namespace_row(self, namespace: str) -> tuple[str, float | None, float | None] | None:
        """(model_id, delta, learned delta) of a namespace, read once per read transaction: a recall asks
        for both, and each statement is a round trip to the server."""
        if self._writing or namespace not in self._namespaces:
            self._namespaces[namespace] = memories.namespace_row(self.conn, namespace)
        return self._namespaces[namespace]

    def check_model(self, namespace: str) -> None:
        row = self._namespace_row(namespace)
        if row is not None:
            memories.refuse_other_model(namespace, row[0], self._s.model_id)

    def namespace_delta(self, namespace: str) -> float | None:
        row = self._namespace_row(namespace)
        return None if row is None or row[1] is None else float(row[1])

    def learned_delta(self, namespace: str) -> float | None:
        row = self._namespace_row(namespace)
        return None if row is None or row[2] is None else float(row[2])

    def reported_tasks(self, namespace: str, limit: int) -> list[ReportedTask]:
        return ledger.reported_tasks(self.conn, namespace, limit)

    def nearest_intents(
        self, query: np.ndarray, namespace: str, k: int
    ) -> list[tuple[int, float]]:
        q = self._s.unit(query)
        if q is None or k <= 0:
            return []
        rows = self.conn.execute(
            "SELECT id, embedding FROM intents WHERE namespace = %s "
            "ORDER BY embedding <=> %s LIMIT %s",
            (namespace, q, int(k) + TIE_MARGIN),
            binary=True,
        ).fetchall()
        if not rows:
            return []
        ids = np.asarray([r[0] for r in rows], dtype=np.int64)
        mat = np.stack([r[1].to_numpy() for r in rows])
        return rank_exact(ids, mat, q, k)

    def members(self, intent_ids: Sequence[int], cap: int) -> list[MemoryRow]:
        return memories.members(self.conn, intent_ids, cap)

    def get(self, memory_ids: Sequence[int]) -> dict[int, MemoryRow]:
        return shared_sql.get(self.conn, POSTGRES, memory_ids)

    def task(self, task_id: str) -> TaskRow | None:
        return ledger.task(self.conn, task_id, lock=self._writing)

    def q_of(self, memory_ids: Sequence[int]) -> dict[int, float]:
        return shared_sql.q_of(self.conn, POSTGRES, memory_ids)

    def memories_page(self, namespace: str | None, after_id: int, limit: int) -> list[MemoryRow]:
        return shared_sql.memories_page(self.conn, POSTGRES, namespace, after_id, limit)

    def stats(self, namespace: str | None) -> list[dict[str, Any]]:
        where = "" if namespace is None else "WHERE n.namespace = %s"
        rows = self.conn.execute(
            f"""
            SELECT n.namespace, n.model_id, n.delta, n.learned_delta,
              (SELECT count(*) FROM memories m WHERE m.namespace = n.namespace),
              (SELECT count(*) FROM intents i WHERE i.namespace = n.namespace),
              (SELECT avg(q) FROM memories m WHERE m.namespace = n.namespace),
              (SELECT count(*) FROM memories m
                 WHERE m.namespace = n.namespace AND successes + failures >= 1),
              (SELECT count(*) FROM memories m
                 WHERE m.namespace = n.namespace AND kind = 'failure'),
              (SELECT count(*) FROM tasks t WHERE t.namespace = n.namespace),
              (SELECT count(*) FROM tasks t
                 WHERE t.namespace = n.namespace AND reward IS NOT NULL),
              (SELECT avg((reward > 0)::int) FROM tasks t
                 WHERE t.namespace = n.namespace AND reward IS NOT NULL),
              (SELECT count(*) FROM archived_memories a WHERE a.namespace = n.namespace)
            FROM namespaces n {where} ORDER BY n.namespace
            """,
            [] if namespace is None else [namespace],
        ).fetchall()
        return [
            {k: (float(v) if k in ("mean_q", "success_rate") and v is not None else v)
             for k, v in zip(_STATS_KEYS, r)}
            for r in rows
        ]

    def archived(self, memory_ids: Sequence[int]) -> dict[int, ArchivedRow]:
        return shared_sql.archived(self.conn, POSTGRES, memory_ids)

    def archived_page(
        self, namespace: str | None, after_id: int, limit: int
    ) -> list[ArchivedRow]:
        return shared_sql.archived_page(self.conn, POSTGRES, namespace, after_id, limit)

    def superseded_live(self, namespace: str) -> list[int]:
        return shared_sql.superseded_live(self.conn, POSTGRES, namespace)

    # -- writes -----------------------------------------------------------------------------

    def insert_memories(
        self, items: Sequence[NewMemory], config: MemoryConfig
    ) -> list[tuple[int, bool]]:
        vectors = [self._s.checked_vector(m.vector) for m in items]
        return memories.insert(self.conn, items, vectors, self._s.model_id, config, self._s.dim)

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
        return memories.delete(self.conn, memory_ids)

    def archive_memories(
        self, memory_ids: Sequence[int], reason: str, superseded_by: int | None = None
    ) -> list[int]:
        return memories.archive(self.conn, memory_ids, reason, superseded_by)

    def lock_memories(self, memory_ids: Sequence[int]) -> None:
        ids = sorted(set(int(m) for m in memory_ids))
        if ids:
            self.conn.execute(
                "SELECT id FROM memories WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (ids,)
            ).fetchall()

    def delete_archived(self, memory_ids: Sequence[int]) -> int:
        return memories.delete_archived(self.conn, memory_ids)

    def restore_memories(self, memory_ids: Sequence[int], config: MemoryConfig) -> list[int]:
        return memories.restore(self.conn, memory_ids, self._s.model_id, config, self._s.dim)

    def record_feedback(self, task_id: str, feedback: Sequence[tuple[int, str]]) -> None:
        memories.record_feedback(self.conn, task_id, feedback)

    def count_gate_report(self, namespace: str) -> int:
        return shared_sql.count_gate_report(self.conn, POSTGRES, namespace)

    def set_learned_delta(self, namespace: str, delta: float | None) -> None:
        shared_sql.set_learned_delta(self.conn, POSTGRES, namespace, delta)


class PostgresStorage:
    """A PostgreSQL database (a `postgresql://` URL). Close with `close()`."""

    def __init__(self, url: str, dim: int, model_id: str, *, pool_size: int = POOL_SIZE) -> None:
        self.url = url
        self.target = redact_url(url)
        self.model_id = model_id
        self.dim = dim
        conn = connect(url)
        try:
            apply_migrations(conn, dim, url)
        finally:
            conn.close()
        self._pool = open_pool(url, pool_size)
        self._closed = threading.Event()

    @contextmanager
    def read(self) -> Iterator[PostgresTx]:
        """Reads in autocommit, each statement on the newest committed data (as SQLite's
        reads): no BEGIN and COMMIT round trips."""
        with self._connection() as conn:
            yield PostgresTx(self, conn, writing=False)

    @contextmanager
    def write(self) -> Iterator[PostgresTx]:
        """One transaction (BEGIN ... COMMIT), rolled back if the block raises."""
        with self._connection() as conn, conn.transaction():
            yield PostgresTx(self, conn, writing=True)

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        if self._closed.is_set():
            raise DatabaseError(f"the storage on {self.target} is closed")
        from psycopg import OperationalError

        try:
            with self._pool.connection() as conn:
                yield conn
        except OperationalError as e:
            raise DatabaseError(f"PostgreSQL at {self.target}: {str(e).strip()}") from e

    @contextmanager
    def inspect(self) -> Iterator[PostgresInspect]:
        """A read-only REPEATABLE READ transaction on a pooled connection: every read of a
        page sees one snapshot, and it takes no lock a recall or an outcome waits for."""
        with self._connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield PostgresInspect(conn)

    def preload(self, namespace: str, *, finish_later: bool = False) -> int:
        """Nothing to load into this process: the index lives in the server's buffers."""
        return 0

    def finish_preload(self) -> None:
        """Nothing was left by `preload`."""

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._pool.close()

    def unit(self, query: np.ndarray) -> np.ndarray | None:
        q = self.checked_vector(query)
        norm = float(np.linalg.norm(q))
        if norm == 0.0:
            return None
        return (q / norm).astype(np.float32)

    def checked_vector(self, vec: np.ndarray) -> np.ndarray:
        """Refuse a vector of the wrong size or with NaN before PostgreSQL sees it."""
        vec = np.asarray(vec, dtype=np.float32).reshape(-1) if np.ndim(vec) else np.asarray(vec)
        if vec.shape != (self.dim,):
            raise ModelMismatchError(
                f"vector has shape {vec.shape}, expected ({self.dim},): the embedding "
                f"model does not match this database ({self.dim}-dimensional vectors)"
            )
        if not np.isfinite(vec).all():
            raise InvalidInputError("vector has non-finite values (NaN or infinity)")
        return vec
