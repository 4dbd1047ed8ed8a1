"""Memories, their intents and namespaces in the SQLite file (SQL only; callers hold the
connection and, for writes, the transaction)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ... import calibration
from ...config import MemoryConfig
from ...retrieval import intent_key
from ..base import MEMORY_FIELDS, MemoryRow, NewMemory, refuse_clash, refuse_other_model
from ..shared_sql import ARCHIVE_EXTRA, COLUMNS
from .index import STATE_COLUMNS, State, VectorIndex, state_of
from .kernels import blobs_matrix

_CHUNK = 500
# the memory columns of `members`, which joins the asked intents to the table as `m`
MEMBER_COLUMNS = ", ".join(f"m.{field}" for field in MEMORY_FIELDS)


# -- namespaces ------------------------------------------------------------------------------


def claim_namespace(conn: Any, namespace: str, model_id: str) -> None:
    """Bind a namespace to the model on its first write; refuse another model later."""
    conn.execute(
        "INSERT INTO namespaces(namespace, model_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (namespace, model_id),
    )
    check_model(conn, namespace, model_id)


def check_model(conn: Any, namespace: str, model_id: str) -> None:
    row = namespace_row(conn, namespace)
    if row is not None:
        refuse_other_model(namespace, row[0], model_id)


NamespaceRow = tuple[str, float | None, float | None]


def namespace_row(conn: Any, namespace: str) -> NamespaceRow | None:
    """(model_id, calibrated delta, learned delta) of a namespace, None before its first
    write."""
    values = conn.execute(
        "SELECT model_id, delta, learned_delta FROM namespaces WHERE namespace = ?",
        (namespace,),
    ).fetchone()
    return _namespace_row(values)


def namespace_row_and_state(conn: Any, namespace: str) -> tuple[NamespaceRow | None, State]:
    """The namespace's row (as `namespace_row`) and its vector index state
    (index.STATE_COLUMNS) in the same statement: a recall needs both, and a statement read
    after the query's embedding costs 30-50 us in caches the model run has emptied."""
    values = conn.execute(
        f"SELECT n.model_id, n.delta, n.learned_delta, {STATE_COLUMNS} "
        "FROM (SELECT 1) LEFT JOIN namespaces AS n ON n.namespace = :ns",
        {"ns": namespace},
    ).fetchone()
    return _namespace_row(values), state_of(values[3:])


def _namespace_row(values: Any) -> NamespaceRow | None:
    """The row from (model_id, delta, learned_delta, ...); None when there is none (model_id
    is NOT NULL, so a NULL one is the LEFT JOIN's missing row)."""
    if values is None or values[0] is None:
        return None
    return (
        str(values[0]),
        None if values[1] is None else float(values[1]),
        None if values[2] is None else float(values[2]),
    )


def recalibrate_if_due(
    conn: Any, index: VectorIndex, namespace: str, config: MemoryConfig
) -> None:
    """Recompute the namespace's gate from its distinct intents when it has grown enough."""
    count = conn.execute(
        "SELECT count(*) FROM intents WHERE namespace = ?", (namespace,)
    ).fetchone()[0]
    at = conn.execute(
        "SELECT delta_count FROM namespaces WHERE namespace = ?", (namespace,)
    ).fetchone()[0]
    if not calibration.due(count, at, config):
        return
    vectors = index.vectors(conn, namespace, calibration.SAMPLE)
    conn.execute(
        "UPDATE namespaces SET delta = ?, delta_count = ?, delta_at = ? WHERE namespace = ?",
        (calibration.gate(vectors, config), count, time.time(), namespace),
    )


# -- writes ----------------------------------------------------------------------------------


def insert(
    conn: Any,
    index: VectorIndex,
    items: Sequence[NewMemory],
    vectors: Sequence[np.ndarray],
    model_id: str,
    config: MemoryConfig,
) -> list[tuple[int, bool]]:
    """Insert memories under their intents; (id, created) per item, the existing id for a
    duplicate (same namespace, intent and experience)."""
    now = time.time()
    namespaces = sorted({m.namespace for m in items})
    for ns in namespaces:
        claim_namespace(conn, ns, model_id)
    out: list[tuple[int, bool]] = []
    for m, vector in zip(items, vectors):
        existing = conn.execute(
            "SELECT id FROM memories WHERE namespace = ? AND content_hash = ?",
            (m.namespace, m.content_hash),
        ).fetchone()
        if existing is not None:
            out.append((int(existing[0]), False))
            continue
        intent_id = _intent(conn, index, m, vector, now)
        row = conn.execute(
            f"INSERT INTO memories({COLUMNS}) VALUES (NULL{', ?' * (len(MEMORY_FIELDS) - 1)}) "
            "RETURNING id",
            m.row(intent_id, model_id, now),
        ).fetchone()
        out.append((int(row[0]), True))
    for ns in namespaces:
        recalibrate_if_due(conn, index, ns, config)
    return out


def _intent(conn: Any, index: VectorIndex, m: NewMemory, vector: np.ndarray, now: float) -> int:
    """The id of the memory's intent, created (with its vector) if the namespace has none."""
    return _intent_of(
        conn, index, m.namespace, m.intent_key, m.intent, m.created_at or now, vector
    )


def _intent_of(
    conn: Any,
    index: VectorIndex,
    namespace: str,
    key: str,
    text: str,
    created_at: float,
    vector: np.ndarray,
) -> int:
    row = conn.execute(
        "SELECT id FROM intents WHERE namespace = ? AND key = ?", (namespace, key)
    ).fetchone()
    if row is not None:
        return int(row[0])
    intent_id = int(
        conn.execute(
            "INSERT INTO intents(namespace, key, text, created_at) VALUES (?, ?, ?, ?) "
            "RETURNING id",
            (namespace, key, text, created_at),
        ).fetchone()[0]
    )
    index.add(conn, intent_id, namespace, vector)
    return intent_id


def delete(conn: Any, index: VectorIndex, memory_ids: Sequence[int]) -> int:
    """Delete memories; an intent left without memories goes too, with its vector."""
    ids = sorted(set(int(m) for m in memory_ids))
    deleted = 0
    emptied: set[int] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = json.dumps(ids[start : start + _CHUNK])
        intents = [
            int(r[0])
            for r in conn.execute(
                "DELETE FROM memories WHERE id IN (SELECT value FROM json_each(?)) "
                "RETURNING intent_id",
                (chunk,),
            ).fetchall()
        ]
        deleted += len(intents)
        emptied.update(intents)
    orphans = [
        iid
        for iid in sorted(emptied)
        if conn.execute("SELECT 1 FROM memories WHERE intent_id = ? LIMIT 1", (iid,)).fetchone()
        is None
    ]
    if orphans:
        index.delete(conn, orphans)
        conn.executemany("DELETE FROM intents WHERE id = ?", [(i,) for i in orphans])
    return deleted


# -- the archive (its reads: shared_sql.py) ---------------------------------------------------


def archive(
    conn: Any,
    index: VectorIndex,
    memory_ids: Sequence[int],
    reason: str,
    superseded_by: int | None,
) -> list[int]:
    """Copy live memories (with their intent's vector) into `archived_memories`, then
    delete them by `delete`, the path of forget: an intent left empty leaves the index."""
    now = time.time()
    ids = sorted(set(int(m) for m in memory_ids))
    cols = ", ".join(f"m.{c}" for c in MEMORY_FIELDS)
    moved: list[int] = []
    for start in range(0, len(ids), _CHUNK):
        rows = conn.execute(
            f"INSERT INTO archived_memories({COLUMNS}, embedding, {ARCHIVE_EXTRA}) "
            f"SELECT {cols}, v.embedding, ?, ?, ? FROM memories m "
            "JOIN intent_vectors v ON v.intent_id = m.intent_id "
            "WHERE m.id IN (SELECT value FROM json_each(?)) RETURNING id",
            (reason, superseded_by, now, json.dumps(ids[start : start + _CHUNK])),
        ).fetchall()
        moved += [int(r[0]) for r in rows]
    moved.sort()
    if superseded_by is not None and moved:
        conn.executemany(
            "INSERT INTO memory_corrections(memory_id, superseded_by, created_at) "
            "VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            [(m, superseded_by, now) for m in moved],
        )
    delete(conn, index, moved)
    return moved


def restore(
    conn: Any, index: VectorIndex, memory_ids: Sequence[int], model_id: str, config: MemoryConfig
) -> list[int]:
    """Move archived memories back into `memories` under their ids, each filed under its
    intent (re-created with the archived vector if it was deleted)."""
    restored: list[int] = []
    namespaces: set[str] = set()
    for mid in sorted(set(int(m) for m in memory_ids)):
        row = conn.execute(
            "SELECT namespace, intent, content_hash, created_at, embedding "
            "FROM archived_memories WHERE id = ?",
            (mid,),
        ).fetchone()
        if row is None:
            continue
        namespace, intent, chash, created_at, blob = row
        claim_namespace(conn, namespace, model_id)
        refuse_clash(mid, namespace, _existing(conn, namespace, chash))
        vector = blobs_matrix([blob], index.dim)[0]
        intent_id = _intent_of(
            conn, index, namespace, intent_key(intent), intent, created_at, vector
        )
        rest = ", ".join(MEMORY_FIELDS[3:])
        conn.execute(
            f"INSERT INTO memories({COLUMNS}) SELECT id, namespace, ?, {rest} "
            "FROM archived_memories WHERE id = ?",
            (intent_id, mid),
        )
        conn.execute("DELETE FROM archived_memories WHERE id = ?", (mid,))
        restored.append(mid)
        namespaces.add(namespace)
    for ns in sorted(namespaces):
        recalibrate_if_due(conn, index, ns, config)
    return restored


def delete_archived(conn: Any, memory_ids: Sequence[int]) -> int:
    ids = sorted(set(int(m) for m in memory_ids))
    gone = 0
    for start in range(0, len(ids), _CHUNK):
        gone += conn.execute(
            "DELETE FROM archived_memories WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(ids[start : start + _CHUNK]),),
        ).rowcount
    return int(gone)


def _existing(conn: Any, namespace: str, content_hash: str) -> int | None:
    row = conn.execute(
        "SELECT id FROM memories WHERE namespace = ? AND content_hash = ?",
        (namespace, content_hash),
    ).fetchone()
    return None if row is None else int(row[0])


def record_feedback(conn: Any, task_id: str, feedback: Sequence[tuple[int, str]]) -> None:
    now = time.time()
    conn.executemany(
        "INSERT INTO memory_feedback(task_id, memory_id, verdict, created_at) VALUES (?, ?, ?, ?)",
        [(task_id, int(m), v, now) for m, v in feedback],
    )


# -- reads -----------------------------------------------------------------------------------


def members(conn: Any, intent_ids: Sequence[int], cap: int) -> list[MemoryRow]:
    """Per intent, at most `cap` memories: highest Q first, newest first among equal Q;
    intents in the order given (one asked twice is answered once).

    One statement, whatever the number of intents: each intent (a JSON list) is joined to
    the rows whose ids are its best `cap` in the covering index `memories_intent`
    (intent_id, q, id), which stops after `cap` entries however many memories the intent
    holds. Measured for five intents: 65 us, 86 us when one of them holds 5,000 memories.
    Other forms took longer: the best ids joined into a JSON list per intent and read back
    by `json_each` (the previous form) 80 / 101 us, a UNION ALL of one subquery per intent
    176 / 204 us (and SQLite refuses more than 500 terms), a window function over the
    intents 40 us but 3.3 ms with the large intent."""
    ids = list(dict.fromkeys(int(i) for i in intent_ids))
    if not ids or cap <= 0:
        return []
    rows = conn.execute(
        f"SELECT {MEMBER_COLUMNS} FROM json_each(?1) AS asked JOIN memories AS m ON m.id IN "
        "(SELECT best.id FROM memories AS best WHERE best.intent_id = asked.value "
        "ORDER BY best.q DESC, best.id DESC LIMIT ?2)",
        (json.dumps(ids), int(cap)),
    ).fetchall()
    position = {iid: i for i, iid in enumerate(ids)}
    found = [MemoryRow.from_row(r) for r in rows]
    found.sort(key=lambda m: (position[m.intent_id], -m.q, -m.id))
    return found
