"""The SQLite file: memories, their vectors, namespaces and the task ledger.

`MemoryStore` holds one connection (sqlite-vec loaded) shared by the threads of one
process under a lock; several processes share the file through WAL and `BEGIN IMMEDIATE`
write transactions. Every multi-row write is one transaction. The store knows SQL, not
the learning rule's parameters: those come from the caller.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import calibration
from .config import MemoryConfig
from .db import connect, write_transaction
from .errors import InvalidInputError, ModelMismatchError
from .migrations import apply_migrations
from .ranking import Selection
from .vector_index import VectorIndex

MEMORY_COLUMNS = (
    "id, namespace, intent, experience, kind, q, n_updates, last_reward, created_at, "
    "updated_at, content_hash, metadata, model_id, source_task_id"
)


@dataclass(frozen=True)
class MemoryRow:
    id: int
    namespace: str
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
        values[11] = json.loads(values[11])
        return cls(*values)


@dataclass(frozen=True)
class NewMemory:
    namespace: str
    intent: str
    experience: str
    kind: str
    content_hash: str
    metadata: str  # JSON text
    vector: np.ndarray
    source_task_id: str | None = None
    q: float = 0.0
    n_updates: int = 0
    last_reward: float | None = None
    created_at: float | None = None
    updated_at: float | None = None


@dataclass(frozen=True)
class TaskRow:
    task_id: str
    namespace: str
    query: str
    outcome: str | None
    reward: float | None
    injected: list[int]
    credited: list[int]


class MemoryStore:
    """One database file. Open with `MemoryStore(path, dim, model_id)`; close with `close()`."""

    def __init__(self, path: str | Path, dim: int, model_id: str) -> None:
        self.path = str(path)
        self.model_id = model_id
        self.index = VectorIndex(dim)
        self._lock = threading.RLock()
        self._conn = connect(self.path)
        try:
            apply_migrations(self._conn, self.index)
        except BaseException:
            self._conn.close()  # e.g. a dimension mismatch: do not leak the connection
            raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _read(self) -> Iterator[Any]:
        with self._lock:
            yield self._conn

    @contextmanager
    def _write(self) -> Iterator[Any]:
        with self._lock, write_transaction(self._conn) as conn:
            yield conn

    def _checked_vector(self, vec: np.ndarray) -> np.ndarray:
        """Refuse a vector sqlite-vec would reject (wrong size) or store as garbage (NaN)."""
        vec = np.asarray(vec, dtype=np.float32)
        if vec.shape != (self.index.dim,):
            raise ModelMismatchError(
                f"vector has shape {vec.shape}, expected ({self.index.dim},): the embedding "
                f"model does not match this database ({self.index.dim}-dimensional vectors)"
            )
        if not np.isfinite(vec).all():
            raise InvalidInputError("vector has non-finite values (NaN or infinity)")
        return vec

    # -- namespaces -------------------------------------------------------------------------

    def _claim_namespace(self, conn: Any, namespace: str) -> None:
        """Bind a namespace to this store's model on first write; refuse another model later."""
        conn.execute(
            "INSERT INTO namespaces(namespace, model_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (namespace, self.model_id),
        )
        self._check_model(conn, namespace)

    def _check_model(self, conn: Any, namespace: str) -> None:
        row = conn.execute(
            "SELECT model_id FROM namespaces WHERE namespace = ?", (namespace,)
        ).fetchone()
        if row is not None and row[0] != self.model_id:
            raise ModelMismatchError(
                f"namespace {namespace!r} holds vectors of model {row[0]!r}, but this server "
                f"embeds with {self.model_id!r}: use the same model, or another namespace"
            )

    def namespace_delta(self, namespace: str) -> float | None:
        with self._read() as conn:
            self._check_model(conn, namespace)
            row = conn.execute(
                "SELECT delta FROM namespaces WHERE namespace = ?", (namespace,)
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def _recalibrate_if_due(self, conn: Any, namespace: str, config: MemoryConfig) -> None:
        count = conn.execute(
            "SELECT count(*) FROM memories WHERE namespace = ?", (namespace,)
        ).fetchone()[0]
        at = conn.execute(
            "SELECT delta_count FROM namespaces WHERE namespace = ?", (namespace,)
        ).fetchone()[0]
        if not calibration.due(count, at, config):
            return
        vectors = self.index.vectors(conn, namespace, calibration.SAMPLE)
        conn.execute(
            "UPDATE namespaces SET delta = ?, delta_count = ?, delta_at = ? WHERE namespace = ?",
            (calibration.gate(vectors, config), count, time.time(), namespace),
        )

    # -- memories ---------------------------------------------------------------------------

    def insert(self, items: Sequence[NewMemory], config: MemoryConfig) -> list[tuple[int, bool]]:
        """Insert memories (one transaction); (id, created) per item, existing id for duplicates."""
        checked = [self._checked_vector(m.vector) for m in items]
        with self._write() as conn:
            return self._insert(conn, items, checked, config)

    def _insert(
        self,
        conn: Any,
        items: Sequence[NewMemory],
        vectors: Sequence[np.ndarray],
        config: MemoryConfig,
    ) -> list[tuple[int, bool]]:
        out: list[tuple[int, bool]] = []
        now = time.time()
        new_vectors = []
        for ns in sorted({m.namespace for m in items}):
            self._claim_namespace(conn, ns)
        for m, vector in zip(items, vectors):
            row = conn.execute(
                f"INSERT INTO memories({MEMORY_COLUMNS}) "
                "VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(namespace, content_hash) DO NOTHING RETURNING id",
                (
                    m.namespace,
                    m.intent,
                    m.experience,
                    m.kind,
                    m.q,
                    m.n_updates,
                    m.last_reward,
                    m.created_at or now,
                    m.updated_at or now,
                    m.content_hash,
                    m.metadata,
                    self.model_id,
                    m.source_task_id,
                ),
            ).fetchone()
            if row is None:
                existing = conn.execute(
                    "SELECT id FROM memories WHERE namespace = ? AND content_hash = ?",
                    (m.namespace, m.content_hash),
                ).fetchone()
                out.append((int(existing[0]), False))
            else:
                out.append((int(row[0]), True))
                new_vectors.append((int(row[0]), m.namespace, vector))
        self.index.add_many(conn, new_vectors)
        for ns in sorted({m.namespace for m in items}):
            self._recalibrate_if_due(conn, ns, config)
        return out

    def get(self, memory_ids: Sequence[int]) -> dict[int, MemoryRow]:
        if not memory_ids:
            return {}
        marks = ",".join("?" * len(memory_ids))
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {MEMORY_COLUMNS} FROM memories WHERE id IN ({marks})", list(memory_ids)
            ).fetchall()
        return {int(r[0]): MemoryRow.from_row(r) for r in rows}

    def iter_memories(self, namespace: str | None = None, batch: int = 500) -> Iterator[MemoryRow]:
        last = 0
        while True:
            where = "id > ?"
            args: list[object] = [last]
            if namespace is not None:
                where, args = "id > ? AND namespace = ?", [last, namespace]
            with self._read() as conn:
                rows = conn.execute(
                    f"SELECT {MEMORY_COLUMNS} FROM memories WHERE {where} ORDER BY id LIMIT ?",
                    [*args, batch],
                ).fetchall()
            if not rows:
                return
            for r in rows:
                yield MemoryRow.from_row(r)
            last = int(rows[-1][0])

    def delete(self, memory_ids: Sequence[int]) -> int:
        """Delete memories and their vectors; the ledger keeps its history. Returns the count."""
        ids = sorted(set(memory_ids))
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        with self._write() as conn:
            present = [
                int(r[0])
                for r in conn.execute(f"SELECT id FROM memories WHERE id IN ({marks})", ids)
            ]
            conn.execute(f"DELETE FROM memories WHERE id IN ({marks})", ids)
            self.index.delete(conn, present)
        return len(present)

    # -- retrieval --------------------------------------------------------------------------

    def nearest(self, query: np.ndarray, namespace: str, k: int) -> list[tuple[int, float, float]]:
        """Phase A's raw material: the k nearest memories as (id, similarity, q), best first."""
        query = self._checked_vector(query)
        with self._read() as conn:
            self._check_model(conn, namespace)
            hits = self.index.search(conn, query, namespace, k)
            if not hits:
                return []
            marks = ",".join("?" * len(hits))
            q_of = dict(
                conn.execute(
                    f"SELECT id, q FROM memories WHERE id IN ({marks})", [h[0] for h in hits]
                ).fetchall()
            )
        return [(mid, sim, float(q_of[mid])) for mid, sim in hits if mid in q_of]

    def preload(self, namespace: str) -> int:
        """Read a namespace's search codes into memory ahead of its first recall."""
        with self._read() as conn:
            return self.index.preload(conn, namespace)

    # -- the task ledger --------------------------------------------------------------------

    def record_task(
        self,
        task_id: str,
        namespace: str,
        query: str,
        params: dict[str, float],
        selection: Selection,
    ) -> None:
        """Log one recall: its parameters, the whole candidate pool, what was injected."""
        with self._write() as conn:
            self._claim_namespace(conn, namespace)
            inserted = conn.execute(
                "INSERT INTO tasks(task_id, namespace, query, model_id, created_at, k1, k2, lam, "
                "delta, epsilon, explored, selection_prob) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(task_id) DO NOTHING RETURNING task_id",
                (
                    task_id,
                    namespace,
                    query,
                    self.model_id,
                    time.time(),
                    params["k1"],
                    params["k2"],
                    params["lam"],
                    params["delta"],
                    params["epsilon"],
                    int(selection.explored),
                    selection.selection_prob,
                ),
            ).fetchone()
            if inserted is None:  # checked here too: another process may have taken the id
                raise InvalidInputError(f"task id {task_id!r} is already used: pick a new one")
            conn.executemany(
                "INSERT INTO task_candidates(task_id, memory_id, rank, similarity, q, score, "
                "injected) VALUES (?,?,?,?,?,?,?)",
                [
                    (task_id, s.memory_id, rank, s.similarity, s.q, s.score, int(s.injected))
                    for rank, s in enumerate(selection.ranked)
                ],
            )

    def task_exists(self, task_id: str) -> bool:
        with self._read() as conn:
            return (
                conn.execute("SELECT 1 FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
                is not None
            )

    def task(self, task_id: str) -> TaskRow | None:
        with self._read() as conn:
            return self._task(conn, task_id)

    @staticmethod
    def _task(conn: Any, task_id: str) -> TaskRow | None:
        row = conn.execute(
            "SELECT task_id, namespace, query, outcome, reward FROM tasks WHERE task_id = ?",
            (task_id,),
        ).fetchone()
        if row is None:
            return None
        cands = conn.execute(
            "SELECT memory_id, injected, credited FROM task_candidates WHERE task_id = ? "
            "ORDER BY rank",
            (task_id,),
        ).fetchall()
        return TaskRow(
            task_id=row[0],
            namespace=row[1],
            query=row[2],
            outcome=row[3],
            reward=row[4],
            injected=[int(c[0]) for c in cands if c[1]],
            credited=[int(c[0]) for c in cands if c[2]],
        )

    def apply_outcome(
        self,
        task_id: str,
        outcome: str,
        reward: float,
        used_ids: list[int] | None,
        alpha: float,
        learning: bool,
        check: Any,
        reflection: NewMemory | None = None,
        config: MemoryConfig | None = None,
    ) -> tuple[TaskRow | None, dict[int, float], bool, int | None]:
        """Record a task's outcome and move Q of the credited memories, once.

        `check(task_row)` runs inside the write transaction (validation against the ledger)
        and returns the ids to credit. `reflection`, if given, is stored in the same
        transaction, so an outcome is never recorded without it. Returns (task before the
        update, {id: new q}, applied?, reflection id) where applied is False if the task
        already had an outcome (then nothing is written).
        """
        vector = None if reflection is None else self._checked_vector(reflection.vector)
        with self._write() as conn:
            # Read the clock under the write lock, so reported_at orders the ledger the way
            # the Q updates were applied, also across processes (replayable history).
            now = time.time()
            task = self._task(conn, task_id)
            if task is None or task.reward is not None:
                return task, self._q_of(conn, task.credited if task else []), False, None
            credit = check(task)
            marks = ",".join("?" * len(credit))
            if credit:
                conn.execute(
                    f"UPDATE task_candidates SET credited = 1 "
                    f"WHERE task_id = ? AND memory_id IN ({marks})",
                    [task_id, *credit],
                )
            conn.execute(
                "UPDATE tasks SET outcome = ?, reward = ?, used_ids = ?, reported_at = ? "
                "WHERE task_id = ? AND reward IS NULL",
                (outcome, reward, None if used_ids is None else json.dumps(used_ids), now, task_id),
            )
            new_q: dict[int, float] = {}
            if learning and credit:
                # The learning rule as one statement: no read-modify-write in Python.
                rows = conn.execute(
                    "UPDATE memories SET q = q + ? * (? - q), n_updates = n_updates + 1, "
                    "last_reward = ?, updated_at = ? WHERE id IN ("
                    "SELECT memory_id FROM task_candidates WHERE task_id = ? AND credited = 1) "
                    "RETURNING id, q",
                    (alpha, reward, reward, now, task_id),
                ).fetchall()
                new_q = {int(r[0]): float(r[1]) for r in rows}
            elif credit:
                new_q = self._q_of(conn, credit)
            reflection_id = None
            if reflection is not None and vector is not None:
                [(reflection_id, _)] = self._insert(
                    conn, [reflection], [vector], config or MemoryConfig()
                )
        return task, new_q, True, reflection_id

    @staticmethod
    def _q_of(conn: Any, ids: Sequence[int]) -> dict[int, float]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = conn.execute(f"SELECT id, q FROM memories WHERE id IN ({marks})", list(ids))
        return {int(r[0]): float(r[1]) for r in rows}

    # -- statistics -------------------------------------------------------------------------

    def stats(self, namespace: str | None = None) -> list[dict[str, Any]]:
        where = "" if namespace is None else "WHERE n.namespace = ?"
        args = [] if namespace is None else [namespace]
        with self._read() as conn:
            rows = conn.execute(
                f"""
                SELECT n.namespace, n.model_id, n.delta,
                  (SELECT count(*) FROM memories m WHERE m.namespace = n.namespace),
                  (SELECT avg(q) FROM memories m WHERE m.namespace = n.namespace),
                  (SELECT count(*) FROM memories m WHERE m.namespace = n.namespace AND kind = 'failure'),
                  (SELECT count(*) FROM tasks t WHERE t.namespace = n.namespace),
                  (SELECT count(*) FROM tasks t WHERE t.namespace = n.namespace AND reward IS NOT NULL),
                  (SELECT avg(reward > 0) FROM tasks t WHERE t.namespace = n.namespace AND reward IS NOT NULL)
                FROM namespaces n {where} ORDER BY n.namespace
                """,
                args,
            ).fetchall()
        keys = (
            "namespace",
            "model_id",
            "delta",
            "memories",
            "mean_q",
            "failure_memories",
            "tasks",
            "tasks_reported",
            "success_rate",
        )
        return [dict(zip(keys, r)) for r in rows]
