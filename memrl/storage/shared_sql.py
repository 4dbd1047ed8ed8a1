"""The SQL both backends run alike, written once.

The SQLite and PostgreSQL backends differ here only by the driver's placeholder and a few
points of dialect, each a field of `Dialect`; every builder takes the backend's dialect
(`SQLITE` or `POSTGRES`). The statements run on either driver's connection: sqlite3's and
psycopg's both answer `conn.execute(sql, args).fetchall()`. What the two backends do
differently in substance (writes, phase A, usage and Q history, the ledger's pools) stays
in each backend's own modules.
"""

from __future__ import annotations

import math
import string
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .base import MEMORY_FIELDS, ArchivedRow, LedgerFilter, MemoryFilter, MemoryRow


@dataclass(frozen=True)
class Dialect:
    """What tells the two backends' shared SQL apart."""

    mark: str  # the driver's placeholder: "?" (sqlite3) or "%s" (psycopg)
    # A list of ids goes as one array parameter (`id = ANY(%s)`); else one placeholder per
    # id, CHUNK ids a statement.
    arrays: bool
    # Parameters compared with a column are cast to its type (`%s::float8`), so that the
    # column's index stays usable whatever type the driver sends.
    casts: bool
    # Text search lower-cases A-Z itself: PostgreSQL's LIKE is case-sensitive, SQLite's
    # folds ASCII letters (and only them) already.
    fold_ascii: bool
    # What makes task ids sort byte by byte: SQLite's default BINARY collation; PostgreSQL
    # needs the "C" collation (its index tasks_by_created has it).
    byte_order: str


SQLITE = Dialect("?", arrays=False, casts=False, fold_ascii=False, byte_order="")
POSTGRES = Dialect("%s", arrays=True, casts=True, fold_ascii=True, byte_order=' COLLATE "C"')

COLUMNS = ", ".join(MEMORY_FIELDS)
# An archived memory: its memory columns, then why, by what and when (ArchivedRow.from_row).
ARCHIVE_EXTRA = "reason, superseded_by, archived_at"
ARCHIVED_COLUMNS = f"{COLUMNS}, {ARCHIVE_EXTRA}"
CHUNK = 500  # ids a statement where each id is a placeholder of its own


def _typed(d: Dialect, sql_type: str) -> str:
    """A placeholder, cast to `sql_type` where the dialect casts."""
    return f"{d.mark}::{sql_type}" if d.casts else d.mark


def _id_chunks(d: Dialect, ids: Sequence[int], column: str = "id") -> Iterator[tuple[str, list[Any]]]:
    """(condition, args) pairs that together match `column` against every id of `ids`."""
    if not ids:
        return
    if d.arrays:
        yield f"{column} = ANY({d.mark})", [list(ids)]
        return
    for start in range(0, len(ids), CHUNK):
        chunk = list(ids[start : start + CHUNK])
        yield f"{column} IN ({','.join([d.mark] * len(chunk))})", chunk


def _by_id(conn: Any, d: Dialect, table: str, columns: str, memory_ids: Sequence[int]) -> list[Any]:
    rows: list[Any] = []
    for where, args in _id_chunks(d, [int(m) for m in memory_ids]):
        rows += conn.execute(f"SELECT {columns} FROM {table} WHERE {where}", args).fetchall()
    return rows


def _id_page(
    conn: Any, d: Dialect, table: str, columns: str, namespace: str | None, after_id: int, limit: int
) -> list[Any]:
    """A page of `table` in id order after `after_id` (of one namespace, or all)."""
    where = f"id > {d.mark}"
    args: list[Any] = [after_id]
    if namespace is not None:
        where, args = f"namespace = {d.mark} AND id > {d.mark}", [namespace, after_id]
    return conn.execute(
        f"SELECT {columns} FROM {table} WHERE {where} ORDER BY id LIMIT {d.mark}", [*args, limit]
    ).fetchall()


# -- memories and the archive ------------------------------------------------------------------


def get(conn: Any, d: Dialect, memory_ids: Sequence[int]) -> dict[int, MemoryRow]:
    rows = _by_id(conn, d, "memories", COLUMNS, memory_ids)
    return {int(r[0]): MemoryRow.from_row(r) for r in rows}


def q_of(conn: Any, d: Dialect, memory_ids: Sequence[int]) -> dict[int, float]:
    return {int(r[0]): float(r[1]) for r in _by_id(conn, d, "memories", "id, q", memory_ids)}


def memories_page(
    conn: Any, d: Dialect, namespace: str | None, after_id: int, limit: int
) -> list[MemoryRow]:
    rows = _id_page(conn, d, "memories", COLUMNS, namespace, after_id, limit)
    return [MemoryRow.from_row(r) for r in rows]


def archived(conn: Any, d: Dialect, memory_ids: Sequence[int]) -> dict[int, ArchivedRow]:
    rows = _by_id(conn, d, "archived_memories", ARCHIVED_COLUMNS, memory_ids)
    return {int(r[0]): ArchivedRow.from_row(r) for r in rows}


def archived_page(
    conn: Any, d: Dialect, namespace: str | None, after_id: int, limit: int
) -> list[ArchivedRow]:
    rows = _id_page(conn, d, "archived_memories", ARCHIVED_COLUMNS, namespace, after_id, limit)
    return [ArchivedRow.from_row(r) for r in rows]


def superseded_live(conn: Any, d: Dialect, namespace: str) -> list[int]:
    rows = conn.execute(
        "SELECT DISTINCT m.id FROM memories m JOIN memory_corrections c ON c.memory_id = m.id "
        f"JOIN memories s ON s.id = c.superseded_by WHERE m.namespace = {d.mark} ORDER BY m.id",
        (namespace,),
    ).fetchall()
    return [int(r[0]) for r in rows]


# -- the gate learned from outcomes (gate_learning.py) -----------------------------------------


def count_gate_report(conn: Any, d: Dialect, namespace: str) -> int:
    """One more outcome toward the gate's recomputation; the count now, 0 for a namespace
    without a row. On PostgreSQL the update locks the namespace's row until the outcome
    commits: with learning on, outcomes of one namespace queue here (learning is off by
    default); SQLite's write transaction holds the file anyway."""
    row = conn.execute(
        "UPDATE namespaces SET learned_reports = learned_reports + 1 "
        f"WHERE namespace = {d.mark} RETURNING learned_reports",
        (namespace,),
    ).fetchone()
    return 0 if row is None else int(row[0])


def set_learned_delta(conn: Any, d: Dialect, namespace: str, delta: float | None) -> None:
    conn.execute(
        f"UPDATE namespaces SET learned_delta = {d.mark}, learned_at = {d.mark} "
        f"WHERE namespace = {d.mark}",
        (delta, time.time(), namespace),
    )


# -- the inspection page's filters and pages (InspectReads) ------------------------------------

# The column of each memory sort (base.MEMORY_SORTS); the condition of each ledger outcome
# filter (base.OUTCOME_FILTERS).
SORT_COLUMNS = {"q": "q", "created": "created_at", "updates": "n_updates", "id": "id"}
OUTCOME_SQL = {"success": "reward > 0", "failure": "reward <= 0", "pending": "reward IS NULL"}

_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_MAX_ID = 2**63 - 1
_UPDATES_BOUND = 2**62  # beyond any n_updates; keeps a rounded cursor inside bigint


def like_pattern(text: str, fold_ascii: bool) -> str:
    """A LIKE pattern (escape character `\\`) matching `text` as a plain substring, with
    ASCII letters lower-cased if the column is."""
    if fold_ascii:
        text = text.translate(_FOLD)
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _searched(d: Dialect, column: str) -> str:
    """The column as text search compares it: with ASCII letters lower-cased and nothing
    else where the dialect folds (lower() in the "C" collation folds A-Z only, whatever the
    database's locale; ILIKE would fold by the locale, É to é)."""
    return f'lower({column} COLLATE "C")' if d.fold_ascii else column


def memory_filters(d: Dialect, f: MemoryFilter) -> tuple[str, list[Any]]:
    """The WHERE condition (and its args) of a memory filter, its cursor left out."""
    clauses: list[str] = [f"namespace = {d.mark}"]
    args: list[Any] = [f.namespace]
    if f.kind is not None:
        clauses.append(f"kind = {d.mark}")
        args.append(f.kind)
    if f.q_min is not None:
        clauses.append(f"q >= {_typed(d, 'float8')}")
        args.append(float(f.q_min))
    if f.q_max is not None:
        clauses.append(f"q <= {_typed(d, 'float8')}")
        args.append(float(f.q_max))
    if f.text:
        clauses.append(
            f"({_searched(d, 'intent')} LIKE {d.mark} ESCAPE '\\' "
            f"OR {_searched(d, 'experience')} LIKE {d.mark} ESCAPE '\\')"
        )
        args += [like_pattern(f.text, d.fold_ascii)] * 2
    return " AND ".join(clauses), args


def updates_cursor(value: float, last_id: int, descending: bool) -> tuple[int, int]:
    """An n_updates cursor as whole numbers with the same rows after it (n_updates is an
    integer column, and ids are positive), as an index on (n_updates, id) takes it."""
    value = min(max(float(value), -_UPDATES_BOUND), _UPDATES_BOUND)
    if value == math.floor(value):
        return int(value), int(last_id)
    if descending:  # n < 2.5  <=>  (n, id) < (3, 0): ids are positive
        return math.ceil(value), 0
    return math.floor(value), _MAX_ID  # n > 2.5  <=>  (n, id) > (2, max)


def memory_page(d: Dialect, f: MemoryFilter) -> tuple[str, list[Any]]:
    """One page of memories: keyset pagination on (sort column, id), never OFFSET; the
    cursor is a row comparison, which the sort index takes as its start position."""
    column = SORT_COLUMNS[f.sort]
    where, args = memory_filters(d, f)
    op, order = ("<", "DESC") if f.descending else (">", "ASC")
    if f.after is not None:
        value, last_id = f.after
        if column == "id":
            where += f" AND id {op} {d.mark}"
            args.append(int(last_id))
        elif column == "n_updates":
            where += f" AND (n_updates, id) {op} ({_typed(d, 'bigint')}, {_typed(d, 'bigint')})"
            args += list(updates_cursor(value, last_id, f.descending))
        else:
            where += f" AND ({column}, id) {op} ({_typed(d, 'float8')}, {_typed(d, 'bigint')})"
            args += [float(value), int(last_id)]
    order_by = "id" if column == "id" else f"{column} {order}, id"
    sql = f"SELECT {COLUMNS} FROM memories WHERE {where} ORDER BY {order_by} {order} LIMIT {d.mark}"
    return sql, [*args, f.limit]


def memory_count(d: Dialect, f: MemoryFilter) -> tuple[str, list[Any]]:
    where, args = memory_filters(d, f)
    return f"SELECT count(*) FROM memories WHERE {where}", args


LEDGER_COLUMNS = (
    "task_id, namespace, query, created_at, k1, k2, lam, delta, epsilon, explored, "
    "selection_prob, outcome, reward, used_ids, reported_at"
)  # LedgerEntry.from_row


def ledger_page(d: Dialect, query: LedgerFilter) -> tuple[str, list[Any]]:
    """One page of a namespace's tasks (LEDGER_COLUMNS), newest first, task ids tie-broken
    in byte order, before the keyset cursor."""
    clauses: list[str] = [f"namespace = {d.mark}"]
    args: list[Any] = [query.namespace]
    if query.outcome is not None:
        clauses.append(OUTCOME_SQL[query.outcome])
    if query.empty_pool is not None:
        exists = "EXISTS (SELECT 1 FROM task_candidates c WHERE c.task_id = t.task_id)"
        clauses.append(f"NOT {exists}" if query.empty_pool else exists)
    if query.before is not None:
        at, task_id = query.before
        clauses.append(
            f"(created_at, task_id{d.byte_order}) < ({_typed(d, 'float8')}, {_typed(d, 'text')})"
        )
        args += [float(at), str(task_id)]
    sql = (
        f"SELECT {LEDGER_COLUMNS} FROM tasks t WHERE {' AND '.join(clauses)} "
        f"ORDER BY created_at DESC, task_id{d.byte_order} DESC LIMIT {d.mark}"
    )
    return sql, [*args, query.limit]


def appearances(d: Dialect) -> str:
    """The last tasks (args: memory id, limit) with a memory in their pool, newest first
    (Appearance.from_row's columns)."""
    return (
        "SELECT t.task_id, t.created_at, t.query, c.rank, c.similarity, c.q, c.score, "
        "c.injected, c.credited, t.outcome, t.reward, t.reported_at, c.q_after "
        "FROM task_candidates c JOIN tasks t ON t.task_id = c.task_id "
        f"WHERE c.memory_id = {d.mark} "
        f"ORDER BY t.created_at DESC, t.task_id{d.byte_order} DESC LIMIT {d.mark}"
    )
