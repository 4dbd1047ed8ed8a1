"""The warm hook daemon: one per user and database, started by the first hook that needs
it (`python -m memrl_server.hooks.daemon --db ... --home ...`), exiting when idle.

Order of start-up, each step for a reason:
1. take an exclusive lock on `<key>.lock` (standard library only, before any heavy
   import): a second daemon for the same database exits here at once; the lock dies with
   its process, so a crashed daemon never blocks the next;
2. open the database and load the embedding model (0.5-2.5 s); a failure is written to
   `<key>.error` so hooks stop starting new daemons for a minute;
3. replace any stale socket file and listen; the hooks poll until it answers.
It exits after `--idle` seconds without a request, on SIGTERM/SIGINT, on a `shutdown`
request, or when its socket file is removed or replaced (a test cleaning up, a newer
daemon): never lingering as an orphan.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import socketserver
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from .locations import Locations, database_path, private_dir

MAX_REQUEST_BYTES = 4 * 1024 * 1024
WATCH_INTERVAL = 1.0  # seconds between idle / socket checks


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    loc = Locations(database_path(args.db) if args.db else None, Path(args.home))
    loc.ensure_home()
    lock = _take_lock(loc.lock)
    if lock is None:
        return 0  # another daemon serves this database
    import logging

    logging.basicConfig(
        level=os.environ.get("MEMRL_LOG_LEVEL", "INFO").upper(),
        stream=sys.stderr,
        format=f"%(asctime)s memrl-hook-daemon[{os.getpid()}] %(levelname)s %(message)s",
    )
    log = logging.getLogger("memrl.hooks")
    try:
        service = _open_service(loc)
    except Exception as e:  # noqa: BLE001 -- reported to the hooks through the error file
        log.error("cannot start: %s", e)
        loc.start_error.write_text(f"{type(e).__name__}: {e}\n")
        return 1
    loc.start_error.unlink(missing_ok=True)
    try:
        return _serve(loc, service, args.idle, log)
    finally:
        service.memory.close()
        lock.close()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="memrl-hook-daemon")
    p.add_argument("--db", help="database file (default: the one `memrl serve` uses)")
    p.add_argument("--home", required=True)
    p.add_argument("--idle", type=float, default=1800.0)
    return p


def _take_lock(path: Path) -> IO[str] | None:
    fh = open(path, "a")  # noqa: SIM115 -- held for the life of the process
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    return fh


def _open_service(loc: Locations) -> Any:
    import logging

    from .service import HookService, open_hook_memory

    started = time.perf_counter()
    memory, db = open_hook_memory(loc.db)
    logging.getLogger("memrl.hooks").info(
        "memory ready in %.2fs (db %s)", time.perf_counter() - started, db
    )
    return HookService(memory, db)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = False  # server_close() waits for requests in flight before the
    block_on_close = True  # memory is closed

    def __init__(self, path: str, service: Any, log: Any) -> None:
        self.service = service
        self.log = log
        self.last_request = time.monotonic()
        super().__init__(path, _Handler)

    def answer(self, raw: bytes) -> dict[str, Any]:
        self.last_request = time.monotonic()
        try:
            request = json.loads(raw)
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
        except ValueError as e:
            return {"ok": False, "error": f"bad request: {e}"}
        from .transport import PROTOCOL

        if request.get("proto") != PROTOCOL:
            return {"ok": False, "error": "protocol", "proto": PROTOCOL}
        if request.get("op") == "shutdown":
            threading.Thread(target=self.shutdown, daemon=True).start()
            return {"ok": True}
        try:
            answer: dict[str, Any] = self.service.handle(request)
        except Exception:  # noqa: BLE001 -- one bad request must not take the daemon down
            self.log.exception("internal error on %s", request.get("op"))
            return {"ok": False, "error": "internal error in the hook daemon; see its log"}
        return answer


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.request.settimeout(10)
        raw = self.rfile.readline(MAX_REQUEST_BYTES)
        answer = self.server.answer(raw)
        self.wfile.write(json.dumps(answer).encode() + b"\n")


def _serve(loc: Locations, service: Any, idle: float, log: Any) -> int:
    path = loc.socket
    private_dir(path.parent)
    path.unlink(missing_ok=True)  # we hold the lock: any socket file left is stale
    old_umask = os.umask(0o077)
    try:
        server = _Server(str(path), service, log)
    finally:
        os.umask(old_umask)
    inode = path.stat().st_ino
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: threading.Thread(target=server.shutdown).start())
    watcher = threading.Thread(target=_watch, args=(server, path, inode, idle, log), daemon=True)
    watcher.start()
    log.info("listening on %s (idle timeout %.0fs)", path, idle)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if _same_file(path, inode):
            path.unlink(missing_ok=True)
        log.info("stopped")
    return 0


def _watch(server: _Server, path: Path, inode: int, idle: float, log: Any) -> None:
    while True:
        time.sleep(min(WATCH_INTERVAL, max(idle / 4, 0.05)))
        if time.monotonic() - server.last_request > idle:
            log.info("idle for %.0fs: exiting", idle)
            break
        if not _same_file(path, inode):
            log.info("socket %s was removed or replaced: exiting", path)
            break
    server.shutdown()


def _same_file(path: Path, inode: int) -> bool:
    try:
        return path.stat().st_ino == inode
    except FileNotFoundError:
        return False


if __name__ == "__main__":
    sys.exit(main())
