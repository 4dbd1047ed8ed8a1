"""Storage backends behind one interface (base.py): the embedded SQLite file by default,
PostgreSQL with pgvector for a team (a `postgresql://` URL)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import MemrlError
from ..lazy import lazy_attributes
from ..paths import is_postgres_url

if TYPE_CHECKING:
    from .base import (
        MemoryRow,
        NewMemory,
        NewTask,
        Outcome,
        PoolRow,
        Storage,
        TaskCandidate,
        TaskRow,
    )
    from .sqlite import SqliteStorage

# Imported on first use (PEP 562): `explain` alone must not load numpy and the SQLite
# extension (the command line imports it before anything is stored or searched).
_LAZY = {
    **{n: "base" for n in ("MemoryRow", "NewMemory", "NewTask", "Outcome", "PoolRow", "Storage",
                           "TaskCandidate", "TaskRow")},
    "SqliteStorage": "sqlite",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)


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
    "explain",
    "is_postgres_url",
    "open_storage",
]


def open_storage(target: str | Path, dim: int, model_id: str) -> Storage:
    """The storage at `target`: a PostgreSQL URL (`postgresql://user@host:5432/db`, or
    `postgres://`), otherwise a SQLite file path."""
    if is_postgres_url(target):
        from .postgres import PostgresStorage  # psycopg is an optional dependency

        return PostgresStorage(str(target), dim, model_id)
    from .sqlite import SqliteStorage

    return SqliteStorage(Path(target).expanduser() if isinstance(target, str) else target, dim, model_id)


def explain(error: BaseException, target: str | Path) -> MemrlError | None:
    """A failure of the storage at `target` as an error that says what to do, or None when
    it is not one the person can act on (an internal error). On PostgreSQL the backend
    raises errors that already say what to do (postgres/connection.py), passed through."""
    if is_postgres_url(target):
        return error if isinstance(error, MemrlError) else None
    from .sqlite.failures import explain as explain_sqlite

    return explain_sqlite(error, target)
