"""The inspection page's reads in the SQLite file (SQL only; see `InspectReads` in base.py).

Every query is bounded and served by an index (migration m004 adds the sort indexes):
- memory pages: keyset pagination on (sort column, id) over `memories_by_q`,
  `memories_by_updates`, `memories_by_created` or the rowid, never OFFSET;
- usage, Q history and appearances of a memory: `task_candidates_memory`, then the
  tasks' primary key;
- ledger pages and the learning curve: `tasks_namespace` (namespace, created_at).
A substring search has no index: it scans the namespace (measured in docs/UI.md).
The memory pages and counts, the ledger pages and a memory's appearances are built for
both backends by shared_sql.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .. import shared_sql
from ..base import (
    Appearance,
    LedgerEntry,
    LedgerFilter,
    MemoryFilter,
    MemoryRow,
    PoolMember,
    TaskPoint,
    Usage,
)
from ..shared_sql import SQLITE

_CHUNK = 500


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


class SqliteInspect:
    """`InspectReads` on one connection, inside the read transaction `Storage.inspect()` opened."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def memory_page(self, query: MemoryFilter) -> list[MemoryRow]:
        sql, args = shared_sql.memory_page(SQLITE, query)
        return [MemoryRow.from_row(r) for r in self.conn.execute(sql, args).fetchall()]

    def memory_count(self, query: MemoryFilter) -> int:
        sql, args = shared_sql.memory_count(SQLITE, query)
        return int(self.conn.execute(sql, args).fetchone()[0])

    def usage(self, memory_ids: Sequence[int]) -> dict[int, Usage]:
        out: dict[int, Usage] = {}
        ids = [int(m) for m in memory_ids]
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            rows = self.conn.execute(
                "SELECT c.memory_id, count(*), count(CASE WHEN c.injected THEN 1 END), "
                "count(CASE WHEN c.injected AND t.reward IS NOT NULL THEN 1 END), "
                "count(CASE WHEN c.injected AND t.reward > 0 THEN 1 END), "
                "max(CASE WHEN c.injected THEN t.created_at END) "
                "FROM task_candidates c JOIN tasks t ON t.task_id = c.task_id "
                f"WHERE c.memory_id IN ({_placeholders(len(chunk))}) GROUP BY c.memory_id",
                chunk,
            ).fetchall()
            for r in rows:
                out[int(r[0])] = Usage(int(r[1]), int(r[2]), int(r[3]), int(r[4]), r[5])
        return out

    def q_history(
        self, memory_ids: Sequence[int], per_memory: int
    ) -> dict[int, list[tuple[float, float]]]:
        out: dict[int, list[tuple[float, float]]] = {}
        for mid in memory_ids:
            rows = self.conn.execute(
                "SELECT t.reported_at, c.q_after FROM task_candidates c "
                "JOIN tasks t ON t.task_id = c.task_id WHERE c.memory_id = ? AND c.credited = 1 "
                "AND c.q_after IS NOT NULL ORDER BY t.reported_at DESC, t.task_id DESC LIMIT ?",
                (int(mid), per_memory),
            ).fetchall()
            if rows:
                out[int(mid)] = [(float(at), float(q)) for at, q in reversed(rows)]
        return out

    def appearances(self, memory_id: int, limit: int) -> list[Appearance]:
        rows = self.conn.execute(shared_sql.appearances(SQLITE), (int(memory_id), limit))
        return [Appearance.from_row(r) for r in rows.fetchall()]

    def ledger_page(self, query: LedgerFilter) -> list[LedgerEntry]:
        sql, args = shared_sql.ledger_page(SQLITE, query)
        rows = self.conn.execute(sql, args).fetchall()
        pools = self._pools([r[0] for r in rows])
        return [
            LedgerEntry.from_row(
                r, pools.get(r[0], []), None if r[13] is None else json.loads(r[13])
            )
            for r in rows
        ]

    def _pools(self, task_ids: Sequence[str]) -> dict[str, list[PoolMember]]:
        out: dict[str, list[PoolMember]] = {}
        if not task_ids:
            return out
        rows = self.conn.execute(
            "SELECT c.task_id, c.memory_id, c.rank, c.similarity, c.q, c.score, c.injected, "
            "c.credited, c.q_after, m.intent, m.kind FROM task_candidates c "
            "LEFT JOIN memories m ON m.id = c.memory_id "
            f"WHERE c.task_id IN ({_placeholders(len(task_ids))}) ORDER BY c.task_id, c.rank",
            list(task_ids),
        ).fetchall()
        for r in rows:
            out.setdefault(r[0], []).append(
                PoolMember(r[1], r[2], r[3], r[4], r[5], bool(r[6]), bool(r[7]), *r[8:])
            )
        return out

    def task_points(self, namespace: str, limit: int) -> list[TaskPoint]:
        rows = self.conn.execute(
            "SELECT t.created_at, t.reward, "
            "(SELECT count(*) FROM task_candidates c WHERE c.task_id = t.task_id), "
            "(SELECT count(*) FROM task_candidates c WHERE c.task_id = t.task_id AND c.injected) "
            "FROM tasks t WHERE t.namespace = ? ORDER BY t.created_at DESC LIMIT ?",
            (namespace, limit),
        ).fetchall()
        return [TaskPoint(float(r[0]), r[1], int(r[2]), int(r[3])) for r in reversed(rows)]
