"""The embedded SQLite backend (one file, sqlite-vec for the intent vectors)."""

from .backend import SqliteStorage

__all__ = ["SqliteStorage"]
