"""memrl: episodic memory that learns which past experiences help (MemRL), on SQLite +
sqlite-vec, or PostgreSQL + pgvector for a team.

The core library: storage, embeddings, two-phase retrieval and outcome learning. It has no
MCP dependency; the MCP server (memrl_server) and the CLI are thin layers over `Memory`.
"""

from __future__ import annotations

from pathlib import Path

from .config import MemoryConfig
from .embeddings import Embedder, LazyEmbedder, load_embedder
from .errors import (
    DatabaseError,
    InvalidInputError,
    MemrlError,
    ModelMismatchError,
    ModelUnavailableError,
    UnknownMemoryError,
    UnknownTaskError,
)
from .memory import (
    DEFAULT_NAMESPACE,
    Experience,
    ForgetResult,
    Memory,
    OutcomeResult,
    RecallResult,
    StoreResult,
)
from .paths import db_target, default_db_path
from .storage import SqliteStorage, Storage, open_storage

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
    embedder = embedder or load_embedder()
    storage = open_storage(db_target(db_path), embedder.dim, embedder.model_id)
    return Memory(storage, embedder, config)
