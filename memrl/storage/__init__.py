"""Storage backends behind one interface (base.py): the embedded SQLite file by default."""

from __future__ import annotations

from pathlib import Path

from ..errors import MemrlError
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
    "explain",
    "open_storage",
]


def open_storage(target: str | Path, dim: int, model_id: str) -> Storage:
    """The storage at `target`: a SQLite file path."""
    return SqliteStorage(target, dim, model_id)


def explain(error: BaseException, target: str | Path) -> MemrlError | None:
    """A failure of the storage at `target` as an error that says what to do, or None when
    it is not one the person can act on (an internal error)."""
    from .sqlite.failures import explain as explain_sqlite

    return explain_sqlite(error, target)
