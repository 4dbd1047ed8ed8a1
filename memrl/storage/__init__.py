"""Storage backends behind one interface (base.py): the embedded SQLite file by default."""

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
    "open_storage",
]


def open_storage(target: str | Path, dim: int, model_id: str) -> Storage:
    """The storage at `target`: a SQLite file path."""
    return SqliteStorage(target, dim, model_id)
