"""Numbered schema migrations of the SQLite file, applied in order on open.

PRAGMA user_version is the counter. Each migration runs in its own `BEGIN IMMEDIATE`
transaction and re-reads the version inside it, so processes opening a new file at the
same moment migrate it exactly once. This module owns every DDL statement of the file, and
a migration that has shipped is never edited: a change of schema is a new migration.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ...errors import DatabaseError, ModelMismatchError
from ...retrieval import intent_key
from .connection import write_transaction


def m001_initial(conn: Any, dim: int) -> None:
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute(
        "INSERT INTO meta(key, value) VALUES ('embedding_dim', ?), ('created_at', ?)",
        (str(dim), repr(time.time())),
    )
    conn.execute(
        """
        CREATE TABLE memories (
            id INTEGER PRIMARY KEY,
            namespace TEXT NOT NULL,
            intent TEXT NOT NULL,
            experience TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('success', 'failure', 'note')),
            q REAL NOT NULL,
            n_updates INTEGER NOT NULL DEFAULT 0,
            last_reward REAL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            content_hash TEXT NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{}',
            model_id TEXT NOT NULL,
            source_task_id TEXT,
            UNIQUE (namespace, content_hash)
        )
        """
    )
    conn.execute("CREATE INDEX memories_namespace ON memories(namespace, id)")
    conn.execute(
        """
        CREATE TABLE namespaces (
            namespace TEXT PRIMARY KEY,
            model_id TEXT NOT NULL,
            delta REAL,
            delta_count INTEGER NOT NULL DEFAULT 0,
            delta_at REAL
        )
        """
    )
    conn.execute(
        """
        CREATE TABLE tasks (
            task_id TEXT PRIMARY KEY,
            namespace TEXT NOT NULL,
            query TEXT NOT NULL,
            model_id TEXT NOT NULL,
            created_at REAL NOT NULL,
            k1 INTEGER NOT NULL,
            k2 INTEGER NOT NULL,
            lam REAL NOT NULL,
            delta REAL NOT NULL,
            epsilon REAL NOT NULL,
            explored INTEGER NOT NULL DEFAULT 0,
            selection_prob REAL,
            outcome TEXT CHECK (outcome IN ('success', 'failure', 'reward')),
            reward REAL,
            used_ids TEXT,
            reported_at REAL
        )
        """
    )
    conn.execute("CREATE INDEX tasks_namespace ON tasks(namespace, created_at)")
    conn.execute(
        """
        CREATE TABLE task_candidates (
            task_id TEXT NOT NULL REFERENCES tasks(task_id),
            memory_id INTEGER NOT NULL,
            rank INTEGER NOT NULL,
            similarity REAL NOT NULL,
            q REAL NOT NULL,
            score REAL NOT NULL,
            injected INTEGER NOT NULL,
            credited INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (task_id, memory_id)
        ) WITHOUT ROWID
        """
    )
    conn.execute("CREATE INDEX task_candidates_memory ON task_candidates(memory_id)")
    conn.execute(
        "CREATE VIRTUAL TABLE memory_vec0 USING vec0(memory_id INTEGER PRIMARY KEY, "
        f"namespace TEXT PARTITION KEY, embedding float[{int(dim)}] distance_metric=cosine)"
    )
    conn.execute(
        "CREATE TABLE memory_vectors (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
        "memory_id INTEGER NOT NULL UNIQUE, namespace TEXT NOT NULL, code BLOB NOT NULL, "
        "embedding BLOB NOT NULL)"
    )
    conn.execute(
        "CREATE INDEX memory_vectors_codes ON memory_vectors(namespace, seq, memory_id, code)"
    )
    conn.execute(
        "CREATE TABLE memory_vector_state ("
        "namespace TEXT PRIMARY KEY, deletes INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID"
    )
    _m002_snapshot_table(conn)
    conn.execute(
        "CREATE TABLE memory_vector_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID"
    )
    # A random id per database file: cache entries of two files never mix, even for two
    # in-memory databases or two copies at one path.
    conn.execute(
        "INSERT INTO memory_vector_meta(key, value) VALUES "
        f"('instance', lower(hex(randomblob(16)))), ('dim', '{int(dim)}'), "
        "('code', 'sign-bits-v1')"
    )


def _m002_snapshot_table(conn: Any) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS memory_code_snapshots ("
        "namespace TEXT PRIMARY KEY, max_seq INTEGER NOT NULL, "
        "deletes INTEGER NOT NULL, n INTEGER NOT NULL, code_bytes INTEGER NOT NULL, "
        "seqs BLOB NOT NULL, ids BLOB NOT NULL, codes BLOB NOT NULL)"
    )


def m002_code_snapshots(conn: Any, dim: int) -> None:
    """The code snapshots (files created by m001 before it included them)."""
    _m002_snapshot_table(conn)


def m003_intents(conn: Any, dim: int) -> None:
    """Memories filed under distinct intents; ids that are never reused.

    - `intents`: one row per namespace and intent key (retrieval.intent_key); the vector
      index indexes intents, so phase A picks distinct intents (retrieval.py).
    - `memories` rebuilt with AUTOINCREMENT and an `intent_id`: SQLite without it hands a
      deleted row's id to the next insert, and a pending task would credit a stranger.
      The sequence starts above every id the ledger has ever named.
    - the vector tables re-keyed by intent (`intent_vectors`, `intent_vec0`); each intent
      keeps the vector of its oldest memory. Code snapshots are derived: dropped.
    - calibration is over distinct intents now: the next write recalibrates.
    """
    conn.execute(
        """
        CREATE TABLE intents (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            namespace TEXT NOT NULL,
            key TEXT NOT NULL,
            text TEXT NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (namespace, key)
        )
        """
    )
    conn.execute(
        """
        CREATE TABLE memories_v3 (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            namespace TEXT NOT NULL,
            intent_id INTEGER NOT NULL REFERENCES intents(id),
            intent TEXT NOT NULL,
            experience TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('success', 'failure', 'note')),
            q REAL NOT NULL,
            n_updates INTEGER NOT NULL DEFAULT 0,
            last_reward REAL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            content_hash TEXT NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{}',
            model_id TEXT NOT NULL,
            source_task_id TEXT,
            UNIQUE (namespace, content_hash)
        )
        """
    )
    conn.execute(
        "CREATE TABLE intent_vectors (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
        "intent_id INTEGER NOT NULL UNIQUE, namespace TEXT NOT NULL, code BLOB NOT NULL, "
        "embedding BLOB NOT NULL)"
    )
    conn.execute(
        "CREATE VIRTUAL TABLE intent_vec0 USING vec0(intent_id INTEGER PRIMARY KEY, "
        f"namespace TEXT PARTITION KEY, embedding float[{int(dim)}] distance_metric=cosine)"
    )
    _file_memories_under_intents(conn)
    conn.execute("DROP TABLE memories")
    conn.execute("ALTER TABLE memories_v3 RENAME TO memories")
    conn.execute("CREATE INDEX memories_namespace ON memories(namespace, id)")
    conn.execute("CREATE INDEX memories_intent ON memories(intent_id, q, id)")
    highest = conn.execute(
        "SELECT max(coalesce((SELECT max(id) FROM memories), 0), "
        "coalesce((SELECT max(memory_id) FROM task_candidates), 0))"
    ).fetchone()[0]
    conn.execute("DELETE FROM sqlite_sequence WHERE name IN ('memories', 'memories_v3')")
    conn.execute("INSERT INTO sqlite_sequence(name, seq) VALUES ('memories', ?)", (highest,))
    for table in ("memory_vec0", "memory_vectors", "memory_vector_state", "memory_code_snapshots"):
        conn.execute(f"DROP TABLE {table}")
    conn.execute(
        "CREATE INDEX intent_vectors_codes ON intent_vectors(namespace, seq, intent_id, code)"
    )
    conn.execute(
        "CREATE TABLE intent_vector_state ("
        "namespace TEXT PRIMARY KEY, deletes INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID"
    )
    conn.execute(
        "CREATE TABLE intent_code_snapshots ("
        "namespace TEXT PRIMARY KEY, max_seq INTEGER NOT NULL, "
        "deletes INTEGER NOT NULL, n INTEGER NOT NULL, code_bytes INTEGER NOT NULL, "
        "seqs BLOB NOT NULL, ids BLOB NOT NULL, codes BLOB NOT NULL)"
    )
    conn.execute("UPDATE namespaces SET delta_count = 0")


def _file_memories_under_intents(conn: Any) -> None:
    """Copy every memory into memories_v3 under its intent, creating intents and their
    vectors (the oldest memory's) in id order."""
    intent_of: dict[tuple[str, str], int] = {}
    last = 0
    while True:
        rows = conn.execute(
            "SELECT m.id, m.namespace, m.intent, m.experience, m.kind, m.q, m.n_updates, "
            "m.last_reward, m.created_at, m.updated_at, m.content_hash, m.metadata, "
            "m.model_id, m.source_task_id, v.code, v.embedding FROM memories m "
            "LEFT JOIN memory_vectors v ON v.memory_id = m.id WHERE m.id > ? ORDER BY m.id "
            "LIMIT 5000",
            (last,),
        ).fetchall()
        if not rows:
            return
        for row in rows:
            mid, namespace, intent = row[0], row[1], row[2]
            key = (namespace, intent_key(intent))
            if key not in intent_of:
                if row[14] is None:
                    raise DatabaseError(
                        f"memory {mid} has no stored vector: the file is damaged; "
                        "restore it from a backup or export and re-import its memories"
                    )
                iid = conn.execute(
                    "INSERT INTO intents(namespace, key, text, created_at) VALUES (?, ?, ?, ?) "
                    "RETURNING id",
                    (namespace, key[1], intent, row[8]),
                ).fetchone()[0]
                intent_of[key] = iid
                conn.execute(
                    "INSERT INTO intent_vectors(intent_id, namespace, code, embedding) "
                    "VALUES (?, ?, ?, ?)",
                    (iid, namespace, row[14], row[15]),
                )
                conn.execute(
                    "INSERT INTO intent_vec0(intent_id, namespace, embedding) VALUES (?, ?, ?)",
                    (iid, namespace, row[15]),
                )
            conn.execute(
                "INSERT INTO memories_v3(id, namespace, intent_id, intent, experience, kind, q, "
                "n_updates, last_reward, created_at, updated_at, content_hash, metadata, "
                "model_id, source_task_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (mid, namespace, intent_of[key], *row[2:14]),
            )
        last = rows[-1][0]


def m004_inspection(conn: Any, dim: int) -> None:
    """What the inspection page (`memrl ui`) reads.

    - `task_candidates.q_after`: a credited memory's Q right after the outcome (written by
      `apply_outcome`), so a memory's Q history comes from the ledger. Rows of outcomes
      reported before this migration keep NULL: that Q was never recorded.
    - indexes for the memory list sorted by Q, by n_updates and by created_at inside a
      namespace (each with the rowid, the tie-breaker): a page of 50 of 100k memories
      reads 50 index entries instead of sorting the namespace.
    """
    conn.execute("ALTER TABLE task_candidates ADD COLUMN q_after REAL")
    conn.execute("CREATE INDEX memories_by_q ON memories(namespace, q)")
    conn.execute("CREATE INDEX memories_by_updates ON memories(namespace, n_updates)")
    conn.execute("CREATE INDEX memories_by_created ON memories(namespace, created_at)")


def m005_evidence(conn: Any, dim: int) -> None:
    """The evidence next to Q (learning.py): credited successes and failures, and the fast
    EMA of change detection. Memories learned before it start with no evidence counted and
    q_recent = q (their record is unknown, their Q is kept)."""
    conn.execute("ALTER TABLE memories ADD COLUMN successes REAL NOT NULL DEFAULT 0")
    conn.execute("ALTER TABLE memories ADD COLUMN failures REAL NOT NULL DEFAULT 0")
    conn.execute("ALTER TABLE memories ADD COLUMN q_recent REAL NOT NULL DEFAULT 0")
    conn.execute("UPDATE memories SET q_recent = q")


def m006_archive(conn: Any, dim: int) -> None:
    """The archive of memories that left retrieval, and the ledger of corrections and
    per-memory feedback.

    - `archived_memories`: a memory's row as it left `memories` (same id: ids are never
      reused, so restoring it under that id is safe), the float32 vector of the intent it
      was filed under (the intent may be deleted with its last memory; restoring re-creates
      it without re-embedding), why (`reason`), the correction that replaced it
      (`superseded_by`) and when.
    - `memory_corrections`: every supersession ever made (memory -> its correction); kept
      when the memory is restored, so `prune` finds superseded leftovers.
    - `memory_feedback`: the verdicts of report_outcome (useful, incorrect, outdated) per
      task and memory.
    """
    conn.execute(
        """
        CREATE TABLE archived_memories (
            id INTEGER PRIMARY KEY,
            namespace TEXT NOT NULL,
            intent_id INTEGER NOT NULL,
            intent TEXT NOT NULL,
            experience TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('success', 'failure', 'note')),
            q REAL NOT NULL,
            n_updates INTEGER NOT NULL DEFAULT 0,
            last_reward REAL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            content_hash TEXT NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{}',
            model_id TEXT NOT NULL,
            source_task_id TEXT,
            successes REAL NOT NULL DEFAULT 0,
            failures REAL NOT NULL DEFAULT 0,
            q_recent REAL NOT NULL DEFAULT 0,
            embedding BLOB NOT NULL,
            reason TEXT NOT NULL
                CHECK (reason IN ('superseded', 'pruned', 'manual', 'outdated')),
            superseded_by INTEGER,
            archived_at REAL NOT NULL
        )
        """
    )
    conn.execute("CREATE INDEX archived_memories_namespace ON archived_memories(namespace, id)")
    conn.execute(
        "CREATE TABLE memory_corrections (memory_id INTEGER NOT NULL, "
        "superseded_by INTEGER NOT NULL, created_at REAL NOT NULL, "
        "PRIMARY KEY (memory_id, superseded_by)) WITHOUT ROWID"
    )
    conn.execute(
        """
        CREATE TABLE memory_feedback (
            task_id TEXT NOT NULL REFERENCES tasks(task_id),
            memory_id INTEGER NOT NULL,
            verdict TEXT NOT NULL CHECK (verdict IN ('useful', 'incorrect', 'outdated')),
            created_at REAL NOT NULL,
            PRIMARY KEY (task_id, memory_id)
        ) WITHOUT ROWID
        """
    )
    conn.execute("CREATE INDEX memory_feedback_memory ON memory_feedback(memory_id)")


def m007_learned_gate(conn: Any, dim: int) -> None:
    """The gate learned from outcomes (memrl/gate_learning.py), next to the calibrated one.

    - `namespaces.learned_delta`: the learned gate (NULL: none learned yet);
    - `namespaces.learned_reports`: outcomes counted while learning is on (every
      gate_learning.EVERY of them recompute it); `learned_at`: when it was last computed.
    """
    conn.execute("ALTER TABLE namespaces ADD COLUMN learned_delta REAL")
    conn.execute("ALTER TABLE namespaces ADD COLUMN learned_reports INTEGER NOT NULL DEFAULT 0")
    conn.execute("ALTER TABLE namespaces ADD COLUMN learned_at REAL")


MIGRATIONS: list[Callable[[Any, int], None]] = [
    m001_initial,
    m002_code_snapshots,
    m003_intents,
    m004_inspection,
    m005_evidence,
    m006_archive,
    m007_learned_gate,
]


def schema_version(conn: Any) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def apply_migrations(conn: Any, dim: int) -> int:
    """Bring the schema up to date; return the version now in force."""
    latest = len(MIGRATIONS)
    if schema_version(conn) > latest:
        raise DatabaseError(
            f"database schema version {schema_version(conn)} is newer than this memrl "
            f"understands ({latest}): upgrade memrl"
        )
    while schema_version(conn) < latest:
        with write_transaction(conn):
            version = schema_version(conn)
            if version >= latest:
                break
            if version > 0:
                check_dimension(conn, dim)
            MIGRATIONS[version](conn, dim)
            conn.execute(f"PRAGMA user_version = {version + 1}")
    check_dimension(conn, dim)
    return latest


def check_dimension(conn: Any, dim: int) -> None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'embedding_dim'").fetchone()
    if row is not None and int(row[0]) != dim:
        raise ModelMismatchError(
            f"this database stores {row[0]}-dimensional vectors but the embedding model "
            f"gives {dim}: use the model the database was created with, or a new --db file"
        )
