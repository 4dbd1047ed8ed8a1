"""Connections to PostgreSQL: a pool of psycopg 3 connections with pgvector's types, and
errors that say what to fix.

Every connection of the pool gets the session settings of a search (`configure`):
- `hnsw.iterative_scan = relaxed_order`: with a namespace filter an HNSW scan otherwise
  stops at `ef_search` index tuples and returns only those that pass the filter (1 of 50
  rows came back before it was set). relaxed_order may return the rows slightly out of
  order; the backend re-ranks them by exact cosine anyway (backend.py), so strict_order
  would only cost time.
- `hnsw.ef_search`: the candidate list of a scan (see backend.py for the figure).
- `synchronous_commit = off`, unless the server, database, role or URL sets it: a commit
  returns before its WAL reaches the disk, as the SQLite backend's WAL with
  synchronous=NORMAL does. A server crash can lose the last fraction of a second of
  outcomes; it cannot corrupt the database or apply half a transaction. Measured here: a
  write transaction took 6.4 ms with the fsync, most of a recall's or report's time. Set
  `?options=-csynchronous_commit%3Don` in the URL (or on the role) to keep every commit.
"""

from __future__ import annotations

import logging
from typing import Any

from ...errors import DatabaseError
from ...paths import redact_url

log = logging.getLogger(__name__)

EF_SEARCH = 100
ITERATIVE_SCAN = "relaxed_order"
MIN_PGVECTOR = (0, 8)  # hnsw.iterative_scan arrived in 0.8.0
INSTALL_HINT = (
    "install pgvector >= 0.8 on the server (Debian/Ubuntu: apt install "
    "postgresql-<version>-pgvector; from source: https://github.com/pgvector/pgvector; "
    "for development: bash .ci/postgres.sh starts a local server with it)"
)


def _driver() -> Any:
    try:
        import psycopg
        import psycopg_pool  # noqa: F401
        from pgvector.psycopg import register_vector  # noqa: F401
    except ImportError as e:
        raise DatabaseError(
            "PostgreSQL support is not installed: pip install 'memrl[postgres]' "
            f"(psycopg, psycopg-pool, pgvector); missing: {e.name}"
        ) from e
    return psycopg


def connect(url: str, *, autocommit: bool = False) -> Any:
    """One plain connection (for migrations), with a message that says what to fix."""
    psycopg = _driver()
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as e:
        raise DatabaseError(
            f"cannot connect to PostgreSQL at {redact_url(url)}: {str(e).strip()}; "
            "check that the server is running and the URL (host, port, user, password, "
            "database) is right"
        ) from e


def vector_version(conn: Any) -> tuple[int, ...] | None:
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    return None if row is None else _version(row[0])


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def ensure_vector_extension(conn: Any, url: str) -> None:
    """Create the `vector` extension if the server has it; refuse a missing or old one."""
    psycopg = _driver()
    version = vector_version(conn)
    if version is None:
        available = conn.execute(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
        if available is None:
            raise DatabaseError(
                f"the PostgreSQL server at {redact_url(url)} has no `vector` extension: "
                + INSTALL_HINT
            )
        try:
            with conn.transaction():
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.errors.InsufficientPrivilege as e:
            raise DatabaseError(
                f"the `vector` extension is not enabled in this database and this user cannot "
                f"enable it: run `CREATE EXTENSION vector;` as a superuser in "
                f"{redact_url(url)}"
            ) from e
        version = vector_version(conn)
    if version is None or version < MIN_PGVECTOR:
        raise DatabaseError(
            f"pgvector {'.'.join(map(str, version or ()))} is too old: memrl needs >= 0.8 "
            "(filtered HNSW search); run `ALTER EXTENSION vector UPDATE;` after upgrading: "
            + INSTALL_HINT
        )


def configure(conn: Any) -> None:
    """Session setup of a pooled connection: pgvector types and the search settings."""
    from pgvector.psycopg import register_vector

    register_vector(conn)
    conn.execute(f"SET hnsw.iterative_scan = {ITERATIVE_SCAN}")
    conn.execute(f"SET hnsw.ef_search = {EF_SEARCH}")
    source = conn.execute(
        "SELECT source FROM pg_settings WHERE name = 'synchronous_commit'"
    ).fetchone()
    if source is not None and source[0] == "default":
        conn.execute("SET synchronous_commit = off")
    conn.commit()


def open_pool(url: str, max_size: int) -> Any:
    """A connection pool on `url` (opened, one connection made, so a bad URL fails here)."""
    _driver()
    from psycopg_pool import ConnectionPool, PoolTimeout

    pool = ConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        configure=configure,
        kwargs={"autocommit": True},  # reads run bare; a write() opens its own transaction
        open=False,
        name="memrl",
        timeout=30.0,
    )
    try:
        pool.open(wait=True, timeout=15.0)
    except PoolTimeout as e:
        pool.close()
        raise DatabaseError(
            f"cannot open connections to PostgreSQL at {redact_url(url)}: {e}"
        ) from e
    return pool
