"""Where the hooks keep things: per database, the daemon's socket, lock, log, last start
error and the session state, in one private directory.

Standard library only: this runs in every hook process. Importing `memrl` (numpy, the
SQLite extension, the model code) costs ~150 ms there, and even platformdirs ~10-25 ms
(it imports tempfile), so the default database is resolved by the daemon itself, with
`memrl.default_db_path()`: hooks, `memrl serve` and the CLI share one file by construction.
"""

from __future__ import annotations

import os
import sys
import zlib
from pathlib import Path

SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux, 104 on macOS


def database_path(explicit: str | None) -> Path | str | None:
    """`--db`, else MEMRL_DB: a file path, resolved, or a PostgreSQL URL as given; None for
    the default database (the daemon finds it the way `memrl serve` does)."""
    chosen = explicit or os.environ.get("MEMRL_DB")
    if not chosen:
        return None
    if chosen.lower().startswith(("postgresql://", "postgres://")):
        return chosen
    return Path(chosen).expanduser().resolve()


def hook_home() -> Path:
    """MEMRL_HOOK_DIR, else the user state dir: $XDG_STATE_HOME/memrl/hooks or
    ~/.local/state/memrl/hooks (~/Library/Application Support/memrl/hooks on macOS)."""
    chosen = os.environ.get("MEMRL_HOOK_DIR")
    if chosen:
        return Path(chosen).expanduser()
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home())
    else:
        xdg = os.environ.get("XDG_STATE_HOME", "").strip()
        base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "state"
    return base / "memrl" / "hooks"


class Locations:
    """The files of the daemon serving one database."""

    def __init__(self, db: Path | str | None, home: Path) -> None:
        self.db = db  # None: the default database
        self.home = home
        raw = str(db or "default").encode()
        self.key = f"{zlib.crc32(raw):08x}{zlib.adler32(raw):08x}"

    def ensure_home(self) -> None:
        private_dir(self.home)

    @property
    def lock(self) -> Path:
        return self.home / f"{self.key}.lock"

    @property
    def log(self) -> Path:
        return self.home / f"{self.key}.log"

    @property
    def start_error(self) -> Path:
        return self.home / f"{self.key}.error"

    @property
    def state(self) -> Path:
        return self.home / f"{self.key}.state.db"

    @property
    def socket(self) -> Path:
        """In the home dir, or in a private temp dir when that path is too long for a
        Unix socket address."""
        path = self.home / f"{self.key}.sock"
        if len(os.fsencode(str(path))) <= SOCKET_PATH_MAX:
            return path
        import tempfile

        short = Path(tempfile.gettempdir()) / f"memrl-{os.getuid()}"
        return short / f"{self.key}.sock"


def private_dir(path: Path) -> None:
    """Create `path` (mode 0700) and refuse one that another user owns or can write: a
    socket there could be someone else's daemon answering our hooks."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.name != "posix":
        return  # no uid or mode bits to check
    info = path.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise PermissionError(
            f"{path} is not a private directory of this user (owner uid {info.st_uid}, "
            f"mode {oct(info.st_mode & 0o777)}): remove it or set MEMRL_HOOK_DIR"
        )
