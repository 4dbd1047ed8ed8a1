"""Server settings, read once at the entry point (flags and environment) and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from memrl import MemoryConfig

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServerSettings:
    db_path: Path | str  # a SQLite file, or a postgresql:// URL (memrl.db_target)
    namespace: str  # the default for calls that name none
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    model_dir: Path | None = None
    model_wait_seconds: float = (
        60.0  # a call that arrives before the model is loaded waits this long
    )
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None  # bearer token for streamable HTTP
    token_file: Path | None = None  # tokens scoped to namespaces (team.py)

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS
