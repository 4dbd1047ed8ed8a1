"""Intent vectors in sqlite-vec, searched by cosine similarity within one namespace.

The index owns the vec0 table(s). Everything else in the core talks to it through
`VectorIndex`, so the search strategy (exact float KNN, quantized coarse search
re-scored in float, ...) can change without touching the store.

Every method takes the caller's connection: writes happen inside the caller's
transaction, so a memory row and its vector commit or roll back together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

VECTOR_TABLE = "memory_vectors"


def vector_blob(vec: np.ndarray) -> bytes:
    """A float32 little-endian BLOB as sqlite-vec expects it."""
    return np.ascontiguousarray(vec, dtype="<f4").tobytes()


class VectorIndex:
    """Cosine KNN over intent vectors, partitioned by namespace."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def schema_sql(self) -> list[str]:
        """DDL creating the index tables (run once by the migration that introduces them)."""
        return [
            f"CREATE VIRTUAL TABLE {VECTOR_TABLE} USING vec0("
            f"memory_id INTEGER PRIMARY KEY, "
            f"namespace TEXT PARTITION KEY, "
            f"embedding float[{self.dim}] distance_metric=cosine)"
        ]

    def add(self, conn: Any, memory_id: int, namespace: str, vec: np.ndarray) -> None:
        self.add_many(conn, [(memory_id, namespace, vec)])

    def add_many(self, conn: Any, rows: Sequence[tuple[int, str, np.ndarray]]) -> None:
        conn.executemany(
            f"INSERT INTO {VECTOR_TABLE}(memory_id, namespace, embedding) VALUES (?, ?, ?)",
            [(mid, ns, vector_blob(v)) for mid, ns, v in rows],
        )

    def delete(self, conn: Any, memory_ids: Sequence[int]) -> None:
        conn.executemany(
            f"DELETE FROM {VECTOR_TABLE} WHERE memory_id = ?", [(m,) for m in memory_ids]
        )

    def search(
        self, conn: Any, query: np.ndarray, namespace: str, k: int
    ) -> list[tuple[int, float]]:
        """The k nearest memories in `namespace` as (memory_id, cosine similarity), best first."""
        rows = conn.execute(
            f"SELECT memory_id, distance FROM {VECTOR_TABLE} "
            f"WHERE embedding MATCH ? AND k = ? AND namespace = ? ORDER BY distance",
            (vector_blob(query), k, namespace),
        ).fetchall()
        return [(int(mid), 1.0 - float(dist)) for mid, dist in rows]

    def vectors(self, conn: Any, namespace: str, limit: int) -> np.ndarray:
        """Up to `limit` stored vectors of a namespace (newest first), as an (n, dim) array."""
        rows = conn.execute(
            f"SELECT embedding FROM {VECTOR_TABLE} WHERE namespace = ? "
            f"ORDER BY memory_id DESC LIMIT ?",
            (namespace, limit),
        ).fetchall()
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.frombuffer(b"".join(r[0] for r in rows), dtype="<f4").reshape(len(rows), self.dim)
