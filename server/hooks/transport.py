"""The hook side of the daemon: one JSON request per connection over a Unix socket, and
starting the daemon when none answers.

Start-up races are settled by the daemon, not here: every daemon first takes an exclusive
lock on its lock file and exits at once when another holds it, so N hooks that find no
daemon at the same moment start N processes of which one stays, and all N connect to it.
A socket file whose daemon died refuses connections; the next daemon replaces it. A start
that fails (model missing, database unreadable) leaves a note the hooks read, so they do
not start a new doomed daemon on every call for the next minute.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .locations import Locations, private_dir

PROTOCOL = 1
REQUEST_TIMEOUT = 20.0  # seconds for one answer from a running daemon
FAILED_START_MEMORY = 60.0  # seconds a failed start stops new attempts
LOG_ROTATE_BYTES = 1_000_000
POLL = 0.02
RESPAWN_AFTER = 3.0  # seconds a started daemon has to take its lock before another is started


class DaemonUnavailable(RuntimeError):
    """No daemon answered (and none could be started in time)."""


class DaemonError(RuntimeError):
    """The daemon answered with an error."""


def call(
    loc: Locations,
    request: dict[str, Any],
    *,
    start: bool = True,
    idle: float = 1800.0,
    start_timeout: float = 20.0,
) -> dict[str, Any]:
    """The daemon's answer to `request`, starting the daemon if it is not running."""
    message = {**request, "proto": PROTOCOL}
    try:
        return _answer(exchange(loc.socket, message))
    except (FileNotFoundError, ConnectionRefusedError):
        if not start:
            raise DaemonUnavailable(
                f"no memrl hook daemon for {loc.db or 'the default database'}"
            ) from None
    except _WrongProtocol:
        stop(loc)  # an older daemon after an upgrade: replace it
    except (OSError, ValueError) as e:
        raise DaemonUnavailable(f"the memrl hook daemon did not answer: {e}") from e
    return _answer(_wait_for_answer(loc, message, idle, start_timeout))


def ensure_running(loc: Locations, idle: float = 1800.0) -> bool:
    """Start the daemon without waiting for it; True if one already answered."""
    try:
        exchange(loc.socket, {"op": "ping", "proto": PROTOCOL}, timeout=1.0)
        return True
    except (OSError, ValueError):
        spawn(loc, idle)
        return False


def stop(loc: Locations) -> bool:
    """Ask the daemon to exit; False if none was running."""
    try:
        exchange(loc.socket, {"op": "shutdown", "proto": PROTOCOL}, timeout=5.0)
        return True
    except (OSError, ValueError):
        return False


def exchange(
    path: Path, message: dict[str, Any], timeout: float = REQUEST_TIMEOUT
) -> dict[str, Any]:
    """Send one request, read one answer (one JSON line each way)."""
    import socket  # only hooks that need the memory pay for it

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps(message).encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    if not chunks:
        raise ConnectionRefusedError("the daemon closed the connection without an answer")
    answer = json.loads(b"".join(chunks))
    if not isinstance(answer, dict):
        raise ValueError(f"daemon answer is not an object: {answer!r}")
    return answer


class _WrongProtocol(Exception):
    pass


def _answer(answer: dict[str, Any]) -> dict[str, Any]:
    if answer.get("ok"):
        return answer
    if answer.get("error") == "protocol":
        raise _WrongProtocol()
    raise DaemonError(str(answer.get("error", "the daemon failed without saying why")))


def spawn(loc: Locations, idle: float) -> float:
    """Start a daemon detached from this process (its own session, no inherited pipes, so
    the host never waits for it). Returns the start time."""
    import subprocess

    loc.ensure_home()
    private_dir(loc.socket.parent)
    _recent_failure(loc)
    _rotate(loc.log)
    started = time.time()
    with open(loc.log, "ab") as log:
        db = [] if loc.db is None else ["--db", str(loc.db)]
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "memrl_server.hooks.daemon",
                *db,
                "--home",
                str(loc.home),
                "--idle",
                str(idle),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    return started


def _wait_for_answer(
    loc: Locations, message: dict[str, Any], idle: float, timeout: float
) -> dict[str, Any]:
    """Start a daemon and wait for its answer. A daemon that lost the start-up race to a
    daemon that was exiting leaves no one holding the lock: start another then."""
    spawned_at = spawn(loc, idle)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return exchange(loc.socket, message)
        except (FileNotFoundError, ConnectionRefusedError):
            _failed_since(loc, spawned_at)
            if time.time() - spawned_at > RESPAWN_AFTER and _lock_is_free(loc):
                spawned_at = spawn(loc, idle)
            time.sleep(POLL)
        except (OSError, ValueError) as e:
            raise DaemonUnavailable(f"the memrl hook daemon did not answer: {e}") from e
    raise DaemonUnavailable(
        f"the memrl hook daemon did not answer within {timeout:.0f} s (log: {loc.log})"
    )


def _lock_is_free(loc: Locations) -> bool:
    """True if no daemon (starting or running) holds the lock of this database."""
    import fcntl

    try:
        with open(loc.lock, "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(fh, fcntl.LOCK_UN)
            return True
    except OSError:
        return False


def _recent_failure(loc: Locations) -> None:
    _failed_since(loc, time.time() - FAILED_START_MEMORY)


def _failed_since(loc: Locations, since: float) -> None:
    try:
        info = loc.start_error.stat()
    except FileNotFoundError:
        return
    if info.st_mtime >= since:
        reason = loc.start_error.read_text(errors="replace").strip()
        raise DaemonUnavailable(f"the memrl hook daemon failed to start: {reason} (log: {loc.log})")


def _rotate(log: Path) -> None:
    try:
        if log.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(log, log.with_suffix(".log.1"))
    except FileNotFoundError:
        pass
