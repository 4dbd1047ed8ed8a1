"""Numbered schema migrations, applied in order on open (PRAGMA user_version is the counter).

Each migration runs in its own `BEGIN IMMEDIATE` transaction and re-reads the version
inside it, so processes opening a new file at the same moment migrate it exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .db import write_transaction
from .errors import DatabaseError, ModelMismatchError
from .vector_index import VectorIndex


def m001_initial(conn: Any, index: VectorIndex) -> None:
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute(
        "INSERT INTO meta(key, value) VALUES ('embedding_dim', ?), ('created_at', ?)",
        (str(index.dim), repr(time.time())),
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
    for statement in index.schema_sql():
        conn.execute(statement)


def m002_code_snapshots(conn: Any, index: VectorIndex) -> None:
    """The vector index's code snapshots (files created by m001 before it included them)."""
    for statement in index.snapshot_schema_sql():
        conn.execute(statement)


MIGRATIONS: list[Callable[[Any, VectorIndex], None]] = [m001_initial, m002_code_snapshots]


def schema_version(conn: Any) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def apply_migrations(conn: Any, index: VectorIndex) -> int:
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
            MIGRATIONS[version](conn, index)
            conn.execute(f"PRAGMA user_version = {version + 1}")
    check_dimension(conn, index.dim)
    return latest


def check_dimension(conn: Any, dim: int) -> None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'embedding_dim'").fetchone()
    if row is not None and int(row[0]) != dim:
        raise ModelMismatchError(
            f"this database stores {row[0]}-dimensional vectors but the embedding model "
            f"gives {dim}: use the model the database was created with, or a new --db file"
        )
