"""Where the database lives by default: the user's data directory, overridable by MEMRL_DB."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def default_db_path() -> Path:
    env = os.environ.get("MEMRL_DB")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("memrl")) / "memrl.db"
