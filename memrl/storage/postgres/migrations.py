"""Numbered schema migrations of the PostgreSQL backend, applied on open.

`schema_migrations` records each applied migration. The pending ones run in one
transaction that first takes a transaction-level advisory lock, then re-reads the version:
servers opening a new database at the same moment migrate it exactly once, and a failed
migration leaves nothing behind (PostgreSQL's DDL is transactional). This module owns every
DDL statement of the backend, and a migration that has shipped is never edited: a change
of schema is a new migration.

The tables mirror the SQLite backend's (sqlite/migrations.py), in PostgreSQL types:
- `intents` hold the vector (`vector(dim)`), searched by an HNSW index with cosine
  distance. m=16, ef_construction=64 (pgvector's defaults): see backend.py for recall.
- `memories` are filed under intents, in a table created with fillfactor=80. Under m001
  its only indexes were on id, (namespace, content hash), intent_id and (namespace, id),
  so the Q update of an outcome was a HOT update (no index write; 5,013 updates/s at
  fillfactor 80 against 1,420 at 100 on this machine). m002 adds the inspection page's
  sort indexes on (namespace, q, id) and (namespace, n_updates, id): since then a Q update
  writes every index of the row (a report measured 1.2-2.0 ms slower at p50, see
  docs/PERFORMANCE.md#postgresql), and the free space still keeps the new row version on
  its page.
- ids are identity columns: a sequence never hands out a number twice, so ids are never
  reused (the SQLite backend needs AUTOINCREMENT for the same).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ...errors import DatabaseError, ModelMismatchError
from .connection import ensure_vector_extension

# A fixed key for pg_advisory_xact_lock: "memrl" as an integer.
LOCK_KEY = 0x6D656D726C
MAX_HNSW_DIM = 2000  # pgvector indexes `vector` columns of at most 2,000 dimensions


def m001_initial(conn: Any, dim: int) -> None:
    conn.execute("CREATE TABLE memrl_meta (key text PRIMARY KEY, value text NOT NULL)")
    conn.execute(
        "INSERT INTO memrl_meta(key, value) VALUES ('embedding_dim', %s), ('created_at', %s)",
        (str(dim), repr(time.time())),
    )
    conn.execute(
        """
        CREATE TABLE namespaces (
            namespace text PRIMARY KEY,
            model_id text NOT NULL,
            delta double precision,
            delta_count bigint NOT NULL DEFAULT 0,
            delta_at double precision
        )
        """
    )
    conn.execute(
        f"""
        CREATE TABLE intents (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            namespace text NOT NULL,
            key text NOT NULL,
            text text NOT NULL,
            created_at double precision NOT NULL,
            embedding vector({int(dim)}) NOT NULL,
            UNIQUE (namespace, key)
        )
        """
    )
    conn.execute("CREATE INDEX intents_namespace ON intents(namespace, id)")
    conn.execute(
        "CREATE INDEX intents_embedding ON intents USING hnsw (embedding vector_cosine_ops) "
        "WITH (m = 16, ef_construction = 64)"
    )
    conn.execute(
        """
        CREATE TABLE memories (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            namespace text NOT NULL,
            intent_id bigint NOT NULL REFERENCES intents(id),
            intent text NOT NULL,
            experience text NOT NULL,
            kind text NOT NULL CHECK (kind IN ('success', 'failure', 'note')),
            q double precision NOT NULL,
            n_updates bigint NOT NULL DEFAULT 0,
            last_reward double precision,
            created_at double precision NOT NULL,
            updated_at double precision NOT NULL,
            content_hash text NOT NULL,
            metadata jsonb NOT NULL DEFAULT '{}',
            model_id text NOT NULL,
            source_task_id text,
            UNIQUE (namespace, content_hash)
        ) WITH (fillfactor = 80)
        """
    )
    conn.execute("CREATE INDEX memories_intent ON memories(intent_id)")
    conn.execute("CREATE INDEX memories_namespace ON memories(namespace, id)")
    conn.execute(
        """
        CREATE TABLE tasks (
            task_id text PRIMARY KEY,
            namespace text NOT NULL,
            query text NOT NULL,
            model_id text NOT NULL,
            created_at double precision NOT NULL,
            k1 integer NOT NULL,
            k2 integer NOT NULL,
            lam double precision NOT NULL,
            delta double precision NOT NULL,
            epsilon double precision NOT NULL,
            explored boolean NOT NULL DEFAULT false,
            selection_prob double precision,
            outcome text CHECK (outcome IN ('success', 'failure', 'reward')),
            reward double precision,
            used_ids jsonb,
            reported_at double precision
        ) WITH (fillfactor = 90)
        """
    )
    conn.execute("CREATE INDEX tasks_namespace ON tasks(namespace, created_at)")
    conn.execute(
        """
        CREATE TABLE task_candidates (
            task_id text NOT NULL REFERENCES tasks(task_id),
            memory_id bigint NOT NULL,
            rank integer NOT NULL,
            similarity double precision NOT NULL,
            q double precision NOT NULL,
            score double precision NOT NULL,
            injected boolean NOT NULL,
            credited boolean NOT NULL DEFAULT false,
            PRIMARY KEY (task_id, memory_id)
        ) WITH (fillfactor = 90)
        """
    )
    conn.execute("CREATE INDEX task_candidates_memory ON task_candidates(memory_id)")


def m002_inspection(conn: Any, dim: int) -> None:
    """What the inspection page (`memrl ui`) reads (SQLite's m004, in PostgreSQL terms).

    - `task_candidates.q_after`: a credited memory's Q right after the outcome (written by
      `apply_outcome`), so a memory's Q history comes from the ledger. Rows of outcomes
      reported before this migration keep NULL: that Q was never recorded. Adding a
      nullable column without a default rewrites nothing.
    - indexes for the memory list sorted by Q, by n_updates and by created_at inside a
      namespace, each ending with id (the tie-breaker, which SQLite's indexes carry as the
      rowid): a page of 50 of 100k memories reads 51 index entries, the keyset cursor
      `(q, id) < (?, ?)` being an index condition. The price: an index now covers q and
      n_updates, so the Q update of an outcome is no longer a HOT update (measured in
      docs/PERFORMANCE.md#postgresql).
    - the ledger's order, (namespace, created_at, task_id), with task_id in the "C"
      collation (byte order, SQLite's BINARY): ledger pages and their cursor
      `(created_at, task_id) < (?, ?)` walk it whatever the database's collation is. It
      replaces `tasks_namespace` (namespace, created_at), of which it is a superset.

    The indexes are built inside the migration's transaction, which holds writes to
    memories and tasks while they build: 1.4 s for the four at 100k memories and 3,000
    tasks on this machine (load 11).
    """
    conn.execute("ALTER TABLE task_candidates ADD COLUMN q_after double precision")
    conn.execute("CREATE INDEX memories_by_q ON memories(namespace, q, id)")
    conn.execute("CREATE INDEX memories_by_updates ON memories(namespace, n_updates, id)")
    conn.execute("CREATE INDEX memories_by_created ON memories(namespace, created_at, id)")
    conn.execute(
        'CREATE INDEX tasks_by_created ON tasks(namespace, created_at, task_id COLLATE "C")'
    )
    conn.execute("DROP INDEX tasks_namespace")


def m003_evidence(conn: Any, dim: int) -> None:
    """The evidence next to Q (SQLite's m005): credited successes and failures, and the
    fast EMA of change detection; earlier memories start with no evidence and q_recent = q.
    """
    conn.execute(
        "ALTER TABLE memories ADD COLUMN successes double precision NOT NULL DEFAULT 0, "
        "ADD COLUMN failures double precision NOT NULL DEFAULT 0, "
        "ADD COLUMN q_recent double precision NOT NULL DEFAULT 0"
    )
    conn.execute("UPDATE memories SET q_recent = q")


def m004_archive(conn: Any, dim: int) -> None:
    """The archive, corrections and per-memory feedback (SQLite's m006, in PostgreSQL terms).

    - `archived_memories`: a memory's row as it left `memories`, under the same id (taken
      from the identity sequence once: never handed out again), with the vector of the
      intent it was filed under (restoring re-creates a deleted intent without
      re-embedding), the reason, the correction that replaced it, and when.
    - `memory_corrections`: every supersession (memory -> correction), kept after a restore.
    - `memory_feedback`: report_outcome's verdicts per task and memory.
    """
    conn.execute(
        f"""
        CREATE TABLE archived_memories (
            id bigint PRIMARY KEY,
            namespace text NOT NULL,
            intent_id bigint NOT NULL,
            intent text NOT NULL,
            experience text NOT NULL,
            kind text NOT NULL CHECK (kind IN ('success', 'failure', 'note')),
            q double precision NOT NULL,
            n_updates bigint NOT NULL DEFAULT 0,
            last_reward double precision,
            created_at double precision NOT NULL,
            updated_at double precision NOT NULL,
            content_hash text NOT NULL,
            metadata jsonb NOT NULL DEFAULT '{{}}',
            model_id text NOT NULL,
            source_task_id text,
            successes double precision NOT NULL DEFAULT 0,
            failures double precision NOT NULL DEFAULT 0,
            q_recent double precision NOT NULL DEFAULT 0,
            embedding vector({int(dim)}) NOT NULL,
            reason text NOT NULL
                CHECK (reason IN ('superseded', 'pruned', 'manual', 'outdated')),
            superseded_by bigint,
            archived_at double precision NOT NULL
        )
        """
    )
    conn.execute("CREATE INDEX archived_memories_namespace ON archived_memories(namespace, id)")
    conn.execute(
        "CREATE TABLE memory_corrections (memory_id bigint NOT NULL, "
        "superseded_by bigint NOT NULL, created_at double precision NOT NULL, "
        "PRIMARY KEY (memory_id, superseded_by))"
    )
    conn.execute(
        """
        CREATE TABLE memory_feedback (
            task_id text NOT NULL REFERENCES tasks(task_id),
            memory_id bigint NOT NULL,
            verdict text NOT NULL CHECK (verdict IN ('useful', 'incorrect', 'outdated')),
            created_at double precision NOT NULL,
            PRIMARY KEY (task_id, memory_id)
        )
        """
    )
    conn.execute("CREATE INDEX memory_feedback_memory ON memory_feedback(memory_id)")


def m005_learned_gate(conn: Any, dim: int) -> None:
    """The gate learned from outcomes (SQLite's m007_learned_gate, in PostgreSQL terms):
    `namespaces.learned_delta` (NULL: none learned), `learned_reports` (outcomes counted
    while learning is on) and `learned_at`. Nullable columns and a constant default rewrite
    nothing.
    """
    conn.execute("ALTER TABLE namespaces ADD COLUMN learned_delta double precision")
    conn.execute("ALTER TABLE namespaces ADD COLUMN learned_reports bigint NOT NULL DEFAULT 0")
    conn.execute("ALTER TABLE namespaces ADD COLUMN learned_at double precision")


MIGRATIONS: list[Callable[[Any, int], None]] = [
    m001_initial,
    m002_inspection,
    m003_evidence,
    m004_archive,
    m005_learned_gate,
]


def _applied(conn: Any) -> int:
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0])


def apply_migrations(conn: Any, dim: int, url: str) -> int:
    """Bring the schema up to date on `conn` (a plain connection); the version in force."""
    if dim > MAX_HNSW_DIM:
        raise DatabaseError(
            f"{dim}-dimensional vectors: pgvector's HNSW index takes at most {MAX_HNSW_DIM}; "
            "use a smaller embedding model with the PostgreSQL backend"
        )
    latest = len(MIGRATIONS)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        ensure_vector_extension(conn, url)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
            "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        version = _applied(conn)
        if version > latest:
            raise DatabaseError(
                f"database schema version {version} is newer than this memrl understands "
                f"({latest}): upgrade memrl"
            )
        if version > 0:
            check_dimension(conn, dim)
        for number in range(version, latest):
            MIGRATIONS[number](conn, dim)
            conn.execute(
                "INSERT INTO schema_migrations(version, name) VALUES (%s, %s)",
                (number + 1, MIGRATIONS[number].__name__),
            )
    return latest


def check_dimension(conn: Any, dim: int) -> None:
    row = conn.execute("SELECT value FROM memrl_meta WHERE key = 'embedding_dim'").fetchone()
    if row is not None and int(row[0]) != dim:
        raise ModelMismatchError(
            f"this database stores {row[0]}-dimensional vectors but the embedding model "
            f"gives {dim}: use the model the database was created with, or another database "
            "(or schema)"
        )
