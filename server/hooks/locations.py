"""Where the hooks keep things: the database (the same file as `memrl serve` and the CLI)
and, per database, the daemon's socket, lock, log, last start error and the session state.

Standard library plus platformdirs only: this runs in every hook process, and importing
`memrl` (numpy, the SQLite extension, the model code) costs ~150 ms there.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import platformdirs

SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux, 104 on macOS


def database_path(explicit: str | None) -> Path:
    """`--db`, else MEMRL_DB, else the user data dir: the rule of `memrl.default_db_path`
    (tests/test_hooks_units.py checks the two agree), without importing `memrl`."""
    chosen = explicit or os.environ.get("MEMRL_DB")
    if chosen:
        return Path(chosen).expanduser().resolve()
    return (Path(platformdirs.user_data_dir("memrl")) / "memrl.db").resolve()


def hook_home() -> Path:
    """MEMRL_HOOK_DIR, else the user state dir (e.g. ~/.local/state/memrl/hooks)."""
    chosen = os.environ.get("MEMRL_HOOK_DIR")
    return (
        Path(chosen).expanduser()
        if chosen
        else Path(platformdirs.user_state_dir("memrl")) / "hooks"
    )


class Locations:
    """The files of the daemon serving one database."""

    def __init__(self, db: Path, home: Path) -> None:
        self.db = db
        self.home = home
        raw = str(db).encode()
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
    info = path.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise PermissionError(
            f"{path} is not a private directory of this user (owner uid {info.st_uid}, "
            f"mode {oct(info.st_mode & 0o777)}): remove it or set MEMRL_HOOK_DIR"
        )
