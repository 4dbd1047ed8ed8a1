"""memrl: episodic memory that learns which past experiences help (MemRL), on SQLite +
sqlite-vec, or PostgreSQL + pgvector for a team.

The core library: storage, embeddings, two-phase retrieval and outcome learning. It has no
MCP dependency; the MCP server (memrl_server) and the CLI are thin layers over `Memory`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .config import DEFAULT_NAMESPACE, MemoryConfig
from .errors import (
    DatabaseError,
    InvalidInputError,
    MemrlError,
    ModelMismatchError,
    ModelUnavailableError,
    UnknownMemoryError,
    UnknownTaskError,
)
from .lazy import lazy_attributes
from .paths import db_target, default_db_path

if TYPE_CHECKING:
    from .embeddings import Embedder, LazyEmbedder, load_embedder
    from .memory import Experience, ForgetResult, Memory, OutcomeResult, RecallResult, StoreResult
    from .storage import SqliteStorage, Storage, open_storage

# Imported on first use (PEP 562): they pull in numpy, the SQLite extension and the model
# code, which `memrl serve` does not need before its first tool call (cold start).
_LAZY = {
    "Embedder": "embeddings",
    "LazyEmbedder": "embeddings",
    "load_embedder": "embeddings",
    "Experience": "memory",
    "ForgetResult": "memory",
    "Memory": "memory",
    "OutcomeResult": "memory",
    "RecallResult": "memory",
    "StoreResult": "memory",
    "SqliteStorage": "storage",
    "Storage": "storage",
    "open_storage": "storage",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "DEFAULT_NAMESPACE",
    "DatabaseError",
    "Embedder",
    "Experience",
    "ForgetResult",
    "InvalidInputError",
    "LazyEmbedder",
    "Memory",
    "MemoryConfig",
    "MemrlError",
    "ModelMismatchError",
    "ModelUnavailableError",
    "OutcomeResult",
    "RecallResult",
    "SqliteStorage",
    "Storage",
    "StoreResult",
    "UnknownMemoryError",
    "UnknownTaskError",
    "db_target",
    "default_db_path",
    "load_embedder",
    "open_memory",
    "open_storage",
]


def open_memory(
    db_path: str | Path | None = None,
    config: MemoryConfig | None = None,
    embedder: Embedder | None = None,
) -> Memory:
    """A Memory on `db_path` (a SQLite file or a `postgresql://` URL; default: MEMRL_DB,
    else a file in the user's data directory) with the local model."""
    from .embeddings import load_embedder
    from .memory import Memory
    from .storage import open_storage

    embedder = embedder or load_embedder()
    storage = open_storage(db_target(db_path), embedder.dim, embedder.model_id)
    return Memory(storage, embedder, config)
