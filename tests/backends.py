"""The storage backends the conformance suite runs on, behind one test-side handle.

`Backend.target` is where a fresh store lives: a SQLite file in the test's tmp_path, or a
PostgreSQL schema of its own (created for the test, dropped after it) in the database named
by MEMRL_TEST_POSTGRES_DSN. Without that variable the PostgreSQL cases skip, saying so;
with MEMRL_REQUIRE_POSTGRES=1 (CI) they fail instead.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from memrl import SqliteStorage, Storage

DSN_ENV = "MEMRL_TEST_POSTGRES_DSN"
REQUIRE_ENV = "MEMRL_REQUIRE_POSTGRES"
BACKENDS = ["sqlite", "postgres"]


def postgres_dsn() -> str:
    """The test server's DSN, or skip (fail under MEMRL_REQUIRE_POSTGRES=1) without one."""
    dsn = os.environ.get(DSN_ENV)
    if dsn:
        return dsn
    reason = (
        f"PostgreSQL cases need {DSN_ENV} (a postgresql:// URL of a database with pgvector); "
        f"start one with: export {DSN_ENV}=$(bash .ci/postgres.sh | tail -n 1)"
    )
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}")
    pytest.skip(reason)


def with_schema(dsn: str, schema: str) -> str:
    """The DSN with its search path set to `schema` (then public, where pgvector lives)."""
    options = quote(f"-csearch_path={schema},public")
    return f"{dsn}{'&' if '?' in dsn else '?'}options={options}"


def admin(dsn: str) -> Any:
    import psycopg

    return psycopg.connect(dsn, autocommit=True)


class Backend:
    """A fresh place for stores of one backend; `close()` removes it."""

    def __init__(self, name: str, tmp_path: Path) -> None:
        self.name = name
        self.schema: str | None = None
        if name == "sqlite":
            self.target = str(tmp_path / "memrl.db")
            return
        self.dsn = postgres_dsn()
        self.schema = "t_" + secrets.token_hex(6)
        with admin(self.dsn) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute(f"CREATE SCHEMA {self.schema}")
        self.target = with_schema(self.dsn, self.schema)

    def close(self) -> None:
        if self.schema is not None:
            with admin(self.dsn) as conn:
                conn.execute(f"DROP SCHEMA {self.schema} CASCADE")


def query(store: Storage, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of `sql` (with `?` placeholders) on the store's database. On PostgreSQL, JSON
    values come back as the JSON text SQLite would hold, so one assertion fits both."""
    if isinstance(store, SqliteStorage):
        return [tuple(r) for r in store._conn.execute(sql, args).fetchall()]
    with admin(store.url) as conn:  # type: ignore[attr-defined]
        cur = conn.execute(sql.replace("?", "%s"), args)
        rows = cur.fetchall() if cur.description is not None else []
    return [tuple(_as_sqlite(v) for v in r) for r in rows]


def _as_sqlite(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    if isinstance(value, bool):
        return int(value)
    return value


def table_snapshot(store: Storage) -> dict[str, Any]:
    """Every row of every table and the schema version (sequences left out on PostgreSQL:
    a rolled-back insert still advances one, which is how ids are never reused)."""
    if isinstance(store, SqliteStorage):
        return _sqlite_snapshot(store)
    with admin(store.url) as conn:  # type: ignore[attr-defined]
        names = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "ORDER BY tablename"
            )
        ]
        return {n: sorted(map(repr, conn.execute(f'SELECT * FROM "{n}"'))) for n in names}


def _sqlite_snapshot(store: SqliteStorage) -> dict[str, Any]:
    conn = store._conn
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND (name NOT LIKE 'sqlite%' OR name = 'sqlite_sequence') ORDER BY name"
        )
    ]
    snap: dict[str, Any] = {n: sorted(map(repr, conn.execute(f'SELECT * FROM "{n}"'))) for n in names}
    snap["user_version"] = conn.execute("PRAGMA user_version").fetchone()[0]
    return snap
