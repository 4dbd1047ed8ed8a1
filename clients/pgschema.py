"""A fresh PostgreSQL schema per run (eval policies, bench tiers): the run's tables stay
apart from every other memory in the database, and a rerun starts clean."""

from __future__ import annotations

import re
from urllib.parse import quote


def schema_url(dsn: str, schema: str) -> str:
    """`dsn` with its search path set to `schema`, then public (where pgvector lives)."""
    options = quote(f"-csearch_path={schema},public")
    return f"{dsn}{'&' if '?' in dsn else '?'}options={options}"


def schema_name(label: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", label.lower())[:63]


def fresh_schema(dsn: str, schema: str) -> str:
    """Drop and create `schema` in the database at `dsn`; the URL that uses it."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
    return schema_url(dsn, schema)
