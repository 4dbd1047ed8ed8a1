"""Memories, their intents and namespaces in PostgreSQL (SQL only; callers hold the
connection and, for writes, the transaction).

Concurrent writers are the normal case here (many servers, one database), so every
insert that could race is an `INSERT ... ON CONFLICT DO NOTHING` against a unique
constraint, followed by a read of the row that won: two servers storing the same memory
or the same intent at the same moment end with one row, both told its id.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ... import calibration
from ...config import MemoryConfig
from ...retrieval import intent_key
from ..base import MEMORY_FIELDS, MemoryRow, NewMemory, refuse_clash, refuse_other_model
from ..shared_sql import ARCHIVE_EXTRA, COLUMNS

INSERT_COLUMNS = ", ".join(MEMORY_FIELDS[1:])  # the id comes from the identity sequence


# -- namespaces ------------------------------------------------------------------------------


def claim_namespace(conn: Any, namespace: str, model_id: str) -> None:
    """Bind a namespace to the model on its first write; refuse another model later."""
    conn.execute(
        "INSERT INTO namespaces(namespace, model_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (namespace, model_id),
    )
    check_model(conn, namespace, model_id)


def check_model(conn: Any, namespace: str, model_id: str) -> None:
    row = namespace_row(conn, namespace)
    if row is not None:
        refuse_other_model(namespace, row[0], model_id)


def namespace_row(
    conn: Any, namespace: str
) -> tuple[str, float | None, float | None] | None:
    """(model_id, calibrated delta, learned delta) of a namespace, None before its first
    write."""
    row = conn.execute(
        "SELECT model_id, delta, learned_delta FROM namespaces WHERE namespace = %s",
        (namespace,),
    ).fetchone()
    if row is None:
        return None
    return (
        str(row[0]),
        None if row[1] is None else float(row[1]),
        None if row[2] is None else float(row[2]),
    )


def newest_vectors(conn: Any, namespace: str, limit: int, dim: int) -> np.ndarray:
    """Up to `limit` intent vectors of a namespace, newest first, as an (n, dim) array."""
    rows = conn.execute(
        "SELECT embedding FROM intents WHERE namespace = %s ORDER BY id DESC LIMIT %s",
        (namespace, int(limit)),
        binary=True,
    ).fetchall()
    if not rows:
        return np.zeros((0, dim), dtype=np.float32)
    return np.stack([r[0].to_numpy() for r in rows])


def recalibrate_if_due(conn: Any, namespace: str, config: MemoryConfig, dim: int) -> None:
    """Recompute the namespace's gate from its distinct intents when it has grown enough
    (the rule of the SQLite backend: calibration.due over the intent count)."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM intents WHERE namespace = %s), "
        "(SELECT delta_count FROM namespaces WHERE namespace = %s)",
        (namespace, namespace),
    ).fetchone()
    count, at = int(row[0]), int(row[1])
    if not calibration.due(count, at, config):
        return
    vectors = newest_vectors(conn, namespace, calibration.SAMPLE, dim)
    conn.execute(
        "UPDATE namespaces SET delta = %s, delta_count = %s, delta_at = %s WHERE namespace = %s",
        (calibration.gate(vectors, config), count, time.time(), namespace),
    )


# -- writes ----------------------------------------------------------------------------------


def insert(
    conn: Any,
    items: Sequence[NewMemory],
    vectors: Sequence[np.ndarray],
    model_id: str,
    config: MemoryConfig,
    dim: int,
) -> list[tuple[int, bool]]:
    """Insert memories under their intents; (id, created) per item, the existing id for a
    duplicate (same namespace, intent and experience)."""
    now = time.time()
    namespaces = sorted({m.namespace for m in items})
    for ns in namespaces:
        claim_namespace(conn, ns, model_id)
    out = [_insert_one(conn, m, vector, model_id, now) for m, vector in zip(items, vectors)]
    for ns in namespaces:
        recalibrate_if_due(conn, ns, config, dim)
    return out


def _existing(conn: Any, namespace: str, content_hash: str) -> int | None:
    row = conn.execute(
        "SELECT id FROM memories WHERE namespace = %s AND content_hash = %s",
        (namespace, content_hash),
    ).fetchone()
    return None if row is None else int(row[0])


def _insert_one(
    conn: Any, m: NewMemory, vector: np.ndarray, model_id: str, now: float
) -> tuple[int, bool]:
    existing = _existing(conn, m.namespace, m.content_hash)
    if existing is not None:
        return existing, False
    intent_id = _intent(conn, m, vector, now)
    row = conn.execute(
        f"INSERT INTO memories({INSERT_COLUMNS}) VALUES "
        "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s) "
        "ON CONFLICT (namespace, content_hash) DO NOTHING RETURNING id",
        m.row(intent_id, model_id, now),
    ).fetchone()
    if row is not None:
        return int(row[0]), True
    # Another server stored the same memory between our read and insert.
    raced = _existing(conn, m.namespace, m.content_hash)
    assert raced is not None  # the conflict means a committed row exists
    return raced, False


def _intent_of(conn: Any, namespace: str, key: str, inserted: Any) -> int:
    """The intent's id: the row `inserted` (an INSERT ... ON CONFLICT DO NOTHING RETURNING
    id, already run) created, else the one that was there."""
    row = inserted.fetchone()
    if row is None:
        row = conn.execute(
            "SELECT id FROM intents WHERE namespace = %s AND key = %s", (namespace, key)
        ).fetchone()
    return int(row[0])


def _intent(conn: Any, m: NewMemory, vector: np.ndarray, now: float) -> int:
    """The id of the memory's intent, created with its vector if the namespace has none."""
    return _intent_of(
        conn,
        m.namespace,
        m.intent_key,
        conn.execute(
            "INSERT INTO intents(namespace, key, text, created_at, embedding) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (namespace, key) DO NOTHING RETURNING id",
            (m.namespace, m.intent_key, m.intent, m.created_at or now, vector),
        ),
    )


def delete(conn: Any, memory_ids: Sequence[int]) -> int:
    """Delete memories; an intent left without memories goes too, with its vector."""
    ids = sorted(set(int(m) for m in memory_ids))
    if not ids:
        return 0
    rows = conn.execute(
        "DELETE FROM memories WHERE id = ANY(%s) RETURNING intent_id", (ids,)
    ).fetchall()
    emptied = sorted({int(r[0]) for r in rows})
    if emptied:
        conn.execute(
            "DELETE FROM intents i WHERE i.id = ANY(%s) "
            "AND NOT EXISTS (SELECT 1 FROM memories m WHERE m.intent_id = i.id)",
            (emptied,),
        )
    return len(rows)


# -- the archive (its reads: shared_sql.py) ---------------------------------------------------


def archive(
    conn: Any, memory_ids: Sequence[int], reason: str, superseded_by: int | None
) -> list[int]:
    """Copy live memories (with their intent's vector) into `archived_memories`, then
    delete them by `delete`, the path of forget. The rows are locked first (in id order),
    so the copy holds the Q of any outcome that committed before."""
    now = time.time()
    ids = sorted(set(int(m) for m in memory_ids))
    if not ids:
        return []
    conn.execute(
        "SELECT id FROM memories WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (ids,)
    ).fetchall()
    cols = ", ".join(f"m.{c}" for c in MEMORY_FIELDS)
    rows = conn.execute(
        f"INSERT INTO archived_memories({COLUMNS}, embedding, {ARCHIVE_EXTRA}) "
        f"SELECT {cols}, i.embedding, %s, %s, %s FROM memories m "
        "JOIN intents i ON i.id = m.intent_id WHERE m.id = ANY(%s) "
        "ON CONFLICT (id) DO NOTHING RETURNING id",
        (reason, superseded_by, now, ids),
    ).fetchall()
    moved = sorted(int(r[0]) for r in rows)
    if superseded_by is not None and moved:
        conn.execute(
            "INSERT INTO memory_corrections(memory_id, superseded_by, created_at) "
            "SELECT u, %s, %s FROM unnest(%s::bigint[]) AS u ON CONFLICT DO NOTHING",
            (superseded_by, now, moved),
        )
    delete(conn, moved)
    return moved


def restore(
    conn: Any, memory_ids: Sequence[int], model_id: str, config: MemoryConfig, dim: int
) -> list[int]:
    """Move archived memories back into `memories` under their ids (OVERRIDING SYSTEM
    VALUE: the id came from the identity sequence), each filed under its intent,
    re-created with the archived vector if it was deleted."""
    restored: list[int] = []
    namespaces: set[str] = set()
    rest = ", ".join(MEMORY_FIELDS[3:])
    for mid in sorted(set(int(m) for m in memory_ids)):
        row = conn.execute(
            "SELECT namespace, intent FROM archived_memories WHERE id = %s FOR UPDATE", (mid,)
        ).fetchone()
        if row is None:
            continue
        namespace, intent = row
        claim_namespace(conn, namespace, model_id)
        key = intent_key(intent)
        intent_id = _intent_of(
            conn,
            namespace,
            key,
            conn.execute(
                "INSERT INTO intents(namespace, key, text, created_at, embedding) "
                "SELECT namespace, %s, intent, created_at, embedding FROM archived_memories "
                "WHERE id = %s ON CONFLICT (namespace, key) DO NOTHING RETURNING id",
                (key, mid),
            ),
        )
        back = conn.execute(
            f"INSERT INTO memories({COLUMNS}) OVERRIDING SYSTEM VALUE "
            f"SELECT id, namespace, %s, {rest} FROM archived_memories WHERE id = %s "
            "ON CONFLICT (namespace, content_hash) DO NOTHING RETURNING id",
            (intent_id, mid),
        ).fetchone()
        if back is None:
            holder = conn.execute(
                "SELECT m.id FROM memories m JOIN archived_memories a "
                "ON a.namespace = m.namespace AND a.content_hash = m.content_hash "
                "WHERE a.id = %s",
                (mid,),
            ).fetchone()
            refuse_clash(mid, namespace, None if holder is None else int(holder[0]))
            raise AssertionError("a conflict without a holder")  # pragma: no cover
        conn.execute("DELETE FROM archived_memories WHERE id = %s", (mid,))
        restored.append(mid)
        namespaces.add(namespace)
    for ns in sorted(namespaces):
        recalibrate_if_due(conn, ns, config, dim)
    return restored


def delete_archived(conn: Any, memory_ids: Sequence[int]) -> int:
    ids = sorted(set(int(m) for m in memory_ids))
    if not ids:
        return 0
    return int(conn.execute("DELETE FROM archived_memories WHERE id = ANY(%s)", (ids,)).rowcount)


def record_feedback(conn: Any, task_id: str, feedback: Sequence[tuple[int, str]]) -> None:
    if not feedback:
        return
    conn.execute(
        "INSERT INTO memory_feedback(task_id, memory_id, verdict, created_at) "
        "SELECT %s, u.m, u.v, %s FROM unnest(%s::bigint[], %s::text[]) AS u(m, v)",
        (task_id, time.time(), [int(m) for m, _ in feedback], [v for _, v in feedback]),
    )


# -- reads -----------------------------------------------------------------------------------


def members(conn: Any, intent_ids: Sequence[int], cap: int) -> list[MemoryRow]:
    """Per intent, at most `cap` memories: highest Q first, newest first among equal Q.

    One statement: a LATERAL subquery per intent, through the index on intent_id; an
    intent holds few memories, so sorting them by Q costs microseconds. An intent asked
    twice is answered once, as on SQLite."""
    intent_ids = list(dict.fromkeys(int(i) for i in intent_ids))
    if not intent_ids or cap <= 0:
        return []
    rows = conn.execute(
        f"SELECT m.* FROM unnest(%s::bigint[]) WITH ORDINALITY AS i(id, pos) "
        f"CROSS JOIN LATERAL (SELECT {COLUMNS} FROM memories WHERE intent_id = i.id "
        "ORDER BY q DESC, id DESC LIMIT %s) m ORDER BY i.pos, m.q DESC, m.id DESC",
        ([int(i) for i in intent_ids], int(cap)),
    ).fetchall()
    return [MemoryRow.from_row(r) for r in rows]
