"""Where the database lives by default: the user's data directory.

The CLI lets MEMRL_DB or --db choose another file (server/settings.py reads both); the core
reads no environment.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs


def default_db_path() -> Path:
    return Path(platformdirs.user_data_dir("memrl")) / "memrl.db"
