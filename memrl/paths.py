"""Where the memory lives by default: a SQLite file in the user's data directory, or
MEMRL_DB (a file path, or a `postgresql://` URL for a team's PostgreSQL)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs


def default_db_path() -> Path:
    """The default SQLite file (MEMRL_DB when it names a file)."""
    env = os.environ.get("MEMRL_DB")
    if env and not _is_url(env):
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("memrl")) / "memrl.db"


def db_target(value: str | Path | None) -> str | Path:
    """The store to open: `value` (a path or a PostgreSQL URL), else MEMRL_DB, else the
    default file. URLs stay strings (a Path would fold `postgresql://` into one slash)."""
    text = str(value) if value else os.environ.get("MEMRL_DB", "")
    if not text:
        return default_db_path()
    return text if _is_url(text) else Path(text).expanduser()


def _is_url(text: str) -> bool:
    return text.lower().startswith(("postgresql://", "postgres://"))


def redact_url(target: str) -> str:
    """`target` without the password of a URL (for messages and logs)."""
    parts = urlsplit(target)
    if "://" not in target or parts.password is None:
        return target
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()
