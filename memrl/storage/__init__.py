"""Storage backends behind one interface (base.py): the embedded SQLite file by default,
PostgreSQL with pgvector for a team (a `postgresql://` URL)."""

from __future__ import annotations

from pathlib import Path

from .base import MemoryRow, NewMemory, NewTask, Outcome, PoolRow, Storage, TaskCandidate, TaskRow
from .sqlite import SqliteStorage

__all__ = [
    "MemoryRow",
    "NewMemory",
    "NewTask",
    "Outcome",
    "PoolRow",
    "SqliteStorage",
    "Storage",
    "TaskCandidate",
    "TaskRow",
    "is_postgres_url",
    "open_storage",
]


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(target: str | Path) -> bool:
    return isinstance(target, str) and target.lower().startswith(POSTGRES_SCHEMES)


def open_storage(target: str | Path, dim: int, model_id: str) -> Storage:
    """The storage at `target`: a PostgreSQL URL (`postgresql://user@host:5432/db`, or
    `postgres://`), otherwise a SQLite file path."""
    if is_postgres_url(target):
        from .postgres import PostgresStorage  # psycopg is an optional dependency

        return PostgresStorage(str(target), dim, model_id)
    return SqliteStorage(Path(target).expanduser() if isinstance(target, str) else target, dim, model_id)
