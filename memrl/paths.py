"""Where the memory lives: a SQLite file (by default in the user's data directory) or a
`postgresql://` URL for a team's PostgreSQL.

The CLI lets MEMRL_DB or --db choose another store (server/settings.py reads both); the
core reads no environment.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def cache_dir() -> Path:
    """The user's cache folder for memrl (e.g. ~/.cache/memrl): nothing in it is needed,
    everything in it can be rebuilt."""
    return Path(platformdirs.user_cache_dir("memrl"))


def default_db_path() -> Path:
    return Path(platformdirs.user_data_dir("memrl")) / "memrl.db"


def is_postgres_url(target: str | Path) -> bool:
    return isinstance(target, str) and target.lower().startswith(POSTGRES_SCHEMES)


def db_target(value: str | Path | None) -> str | Path:
    """The store to open: `value` (a path or a PostgreSQL URL), else the default file.
    URLs stay strings (a Path would fold `postgresql://` into one slash)."""
    text = str(value) if value else ""
    if not text:
        return default_db_path()
    return text if is_postgres_url(text) else Path(text).expanduser()


def redact_url(target: str) -> str:
    """`target` without the password of a URL (for messages and logs)."""
    parts = urlsplit(target)
    if "://" not in target or parts.password is None:
        return target
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()
