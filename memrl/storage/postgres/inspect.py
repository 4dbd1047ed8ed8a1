"""The inspection page's reads in PostgreSQL (SQL only; see `InspectReads` in base.py).

The same answers as the SQLite backend's (sqlite/inspect.py), which the conformance suite
checks on both (tests/test_conformance_inspection.py). Every query is bounded and served
by an index (migration m002 adds the sort indexes):
- memory pages: keyset pagination on (sort column, id) over `memories_by_q`,
  `memories_by_updates`, `memories_by_created` or `memories_namespace`, never OFFSET; the
  cursor is a row comparison, which the btree takes as its start position;
- usage, Q history and appearances of a memory: `task_candidates_memory`, then the tasks'
  primary key; the usage and the Q histories of a page's memories are one statement each
  (a LATERAL subquery per memory), not one round trip per memory;
- ledger pages and the learning curve: `tasks_by_created` (namespace, created_at,
  task_id); a page's pools are one statement on the primary key of `task_candidates`.
A substring search has no index: it scans the namespace (measured in docs/UI.md).

The memory pages and counts, the ledger pages and a memory's appearances are built for
both backends by shared_sql.py, where the dialect's fields (shared_sql.POSTGRES) make
PostgreSQL agree with SQLite where it would differ by default:
- text search folds ASCII letters only (SQLite's LIKE): lower() in the "C" collation,
  not ILIKE or lower() in the database's collation, which fold by its locale (É to é).
  Measured on the 100k namespace of docs/UI.md: `translate()` over A-Z cost 18-20 s a
  pass, lower() in "C" 0.9-1.0 s (machine at load 14-16);
- task ids tie-break in byte order (SQLite's BINARY collation): `COLLATE "C"`;
- the cursor's value is cast to the column's type, so the index stays usable; an
  n_updates cursor that is not a whole number is rounded the way the comparison goes.
"""

from __future__ import annotations

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
from ..shared_sql import POSTGRES


class PostgresInspect:
    """`InspectReads` on one pooled connection, inside the read-only repeatable-read
    transaction `Storage.inspect()` opened."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def memory_page(self, query: MemoryFilter) -> list[MemoryRow]:
        sql, args = shared_sql.memory_page(POSTGRES, query)
        return [MemoryRow.from_row(r) for r in self.conn.execute(sql, args).fetchall()]

    def memory_count(self, query: MemoryFilter) -> int:
        sql, args = shared_sql.memory_count(POSTGRES, query)
        return int(self.conn.execute(sql, args).fetchone()[0])

    def usage(self, memory_ids: Sequence[int]) -> dict[int, Usage]:
        """One statement, a LATERAL aggregate per memory: each walks that memory's rows of
        `task_candidates_memory` and their tasks by primary key, whatever the size of the
        ledger (a join over all the ids at once may hash the whole tasks table)."""
        ids = [int(m) for m in memory_ids]
        if not ids:
            return {}
        rows = self.conn.execute(
            "SELECT m.id, u.* FROM unnest(%s::bigint[]) AS m(id) CROSS JOIN LATERAL ("
            "SELECT count(*) AS pools, count(*) FILTER (WHERE c.injected), "
            "count(*) FILTER (WHERE c.injected AND t.reward IS NOT NULL), "
            "count(*) FILTER (WHERE c.injected AND t.reward > 0), "
            "max(t.created_at) FILTER (WHERE c.injected) "
            "FROM task_candidates c JOIN tasks t ON t.task_id = c.task_id "
            "WHERE c.memory_id = m.id) u WHERE u.pools > 0",
            (ids,),
        ).fetchall()
        return {int(r[0]): Usage(int(r[1]), int(r[2]), int(r[3]), int(r[4]), r[5]) for r in rows}

    def q_history(
        self, memory_ids: Sequence[int], per_memory: int
    ) -> dict[int, list[tuple[float, float]]]:
        ids = [int(m) for m in memory_ids]
        if not ids:
            return {}
        rows = self.conn.execute(
            "SELECT m.id, h.reported_at, h.q_after FROM unnest(%s::bigint[]) AS m(id) "
            "CROSS JOIN LATERAL (SELECT t.reported_at, c.q_after FROM task_candidates c "
            "JOIN tasks t ON t.task_id = c.task_id WHERE c.memory_id = m.id AND c.credited "
            'AND c.q_after IS NOT NULL ORDER BY t.reported_at DESC, t.task_id COLLATE "C" DESC '
            "LIMIT %s) h",
            (ids, int(per_memory)),
        ).fetchall()
        newest_first: dict[int, list[tuple[float, float]]] = {}
        for mid, at, q in rows:
            newest_first.setdefault(int(mid), []).append((float(at), float(q)))
        return {mid: points[::-1] for mid, points in newest_first.items()}

    def appearances(self, memory_id: int, limit: int) -> list[Appearance]:
        rows = self.conn.execute(shared_sql.appearances(POSTGRES), (int(memory_id), limit))
        return [Appearance.from_row(r) for r in rows.fetchall()]

    def ledger_page(self, query: LedgerFilter) -> list[LedgerEntry]:
        sql, args = shared_sql.ledger_page(POSTGRES, query)
        rows = self.conn.execute(sql, args).fetchall()
        pools = self._pools([r[0] for r in rows])
        return [
            LedgerEntry.from_row(r, pools.get(r[0], []), None if r[13] is None else [int(m) for m in r[13]])
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
            "WHERE c.task_id = ANY(%s::text[]) ORDER BY c.task_id, c.rank",
            (list(task_ids),),
        ).fetchall()
        for r in rows:
            out.setdefault(r[0], []).append(
                PoolMember(int(r[1]), r[2], r[3], r[4], r[5], bool(r[6]), bool(r[7]), *r[8:])
            )
        return out

    def task_points(self, namespace: str, limit: int) -> list[TaskPoint]:
        rows = self.conn.execute(
            "SELECT t.created_at, t.reward, "
            "(SELECT count(*) FROM task_candidates c WHERE c.task_id = t.task_id), "
            "(SELECT count(*) FROM task_candidates c WHERE c.task_id = t.task_id AND c.injected) "
            'FROM tasks t WHERE t.namespace = %s ORDER BY t.created_at DESC, t.task_id COLLATE "C" '
            "DESC LIMIT %s",
            (namespace, limit),
        ).fetchall()
        return [TaskPoint(float(r[0]), r[1], int(r[2]), int(r[3])) for r in reversed(rows)]
