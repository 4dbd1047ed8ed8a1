"""The stdio front: the handshake answered from the server's own earlier answers.

Importing the MCP SDK takes most of a stdio server's start (its protocol types are
pydantic models: ~0.5 s here), so a client waits that long for `initialize` and
`tools/list` although their answers never change between runs of the same code with the
same settings. The front (POSIX only) stands between the real stdin/stdout and the SDK,
and starts before the SDK is imported:

- fd 0 and fd 1 become pipes for the SDK; the front keeps duplicates of the real ones;
- the front thread reads the client's lines and forwards EVERY line unchanged to the SDK,
  so the SDK's session state is exactly as if it had answered. The first request that
  opens the session (`initialize`, or the 2026-07-28 protocol's `server/discover`) whose
  method and params (all of them, as canonical JSON) have a cached answer is also answered
  at once from the cache with the request's id, and so is the first `tools/list` after
  it when its params equal those cached (never one with a cursor); their ids are
  remembered;
- the back thread copies the SDK's output lines to the real stdout and drops the SDK's own
  first response to each remembered id (MCP forbids a client to reuse an id in a
  session). On a cache miss it keeps the SDK's answers to that opening request and `tools/list`
  and writes them to the cache for the next start.

The cache file's name is a digest of everything that can change those answers: memrl's
and the SDK's versions (and pydantic's, which writes the schemas), the source of the
server package and of memrl.config (tools, schemas, instructions, bounds), the Python
version, the settings, and the opening request's method and params. Files live in
`<user cache dir>/memrl/handshake/` and are written atomically; a file that cannot be read
or written only means the SDK answers, as without the front.

Lines that are not one JSON object (batches, broken JSON) are only forwarded: the SDK's
transport (server/stdio.py) answers them. `MEMRL_STDIO_FRONT=0` turns the front off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import sys
import threading
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

from .settings import ServerSettings

log = logging.getLogger(__name__)

FORMAT = 1  # of the cache file
# the requests that open a session: a legacy client's initialize, or the 2026-07-28
# protocol's server/discover (the SDK's own client sends that, then requests that each
# carry the protocol version and client info in their params' _meta)
OPENING = ("initialize", "server/discover")
MAX_ENTRIES = 64  # cache files kept
_MARKERS = tuple(f'"{method}"'.encode() for method in (*OPENING, "tools/list"))
_DISTRIBUTIONS = ("memrl", "mcp", "mcp-types", "pydantic", "pydantic-core")


def cache_dir() -> Path:
    from memrl import paths

    return paths.cache_dir() / "handshake"


def _version(name: str) -> str:
    try:
        return dist_version(name)
    except PackageNotFoundError:
        return "-"


def _sources() -> list[Path]:
    """The files whose code defines the handshake's answers."""
    server = Path(__file__).resolve().parent
    import memrl.config  # already imported by the settings

    return sorted(server.glob("*.py")) + [Path(memrl.config.__file__).resolve()]


def settings_key(settings: ServerSettings) -> str:
    """The digest of everything but the opening request that can change the answers."""
    digest = hashlib.sha256()
    parts: dict[str, Any] = {
        "format": FORMAT,
        "versions": {name: _version(name) for name in _DISTRIBUTIONS},
        "python": sys.version,
        # the settings build_server reads for the server it builds (the tools' schemas and
        # instructions are code today, but a default namespace or a memory configuration
        # that shapes them later must not meet a stale answer); the database and the model
        # only serve tool calls
        "settings": {
            "namespace": settings.namespace,
            "memory": repr(asdict(settings.memory)),
        },
    }
    digest.update(json.dumps(parts, sort_keys=True).encode())
    for path in _sources():
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _entry_path(folder: Path, key: str, opening_params: str) -> Path:
    name = hashlib.sha256(f"{key}\0{opening_params}".encode()).hexdigest()
    return folder / f"{name}.json"


def _read_entry(path: Path, opening_params: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(entry, dict)
        or entry.get("format") != FORMAT
        or entry.get("opening_params") != opening_params
        or not isinstance(entry.get("opening"), dict)
        or not isinstance(entry.get("tools_list"), dict)
    ):
        return None
    return entry


def _write_entry(path: Path, entry: dict[str, Any]) -> None:
    from memrl import atomic_files

    try:
        atomic_files.write_text(path, json.dumps(entry, ensure_ascii=False))
        _prune(path.parent)
    except OSError as e:  # only a slower next start
        log.debug("could not write the handshake cache %s: %s", path, e)


def _prune(folder: Path) -> None:
    """Keep the MAX_ENTRIES newest entries (each namespace, client and code version makes
    its own; the rest would only pile up)."""
    entries = []
    for path in folder.glob("*.json"):
        try:
            entries.append((path.stat().st_mtime, path))
        except OSError:
            continue
    for _, path in sorted(entries, reverse=True)[MAX_ENTRIES:]:
        try:
            path.unlink()
        except OSError:
            pass


def _request(line: bytes) -> dict[str, Any] | None:
    """The line as a JSON-RPC request object (None: anything else)."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return None
    if not isinstance(message.get("method"), str):
        return None
    found = message.get("id")
    if isinstance(found, bool) or not isinstance(found, (int, str)):
        return None
    return message


def _response(line: bytes) -> dict[str, Any] | None:
    """The line as a JSON-RPC response object (None: anything else)."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, dict) or "method" in message:
        return None
    if "result" not in message and "error" not in message:
        return None
    return message


def _id_key(value: Any) -> str:
    """An id as a dict key: 1 and "1" are different ids."""
    return canonical(value)


def _answer(request_id: Any, result: Any) -> bytes:
    """The answer as the SDK writes it (compact, keys in the SDK's order, UTF-8)."""
    message = {"jsonrpc": "2.0", "id": request_id, "result": result}
    return (json.dumps(message, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class StdioFront:
    """Started before the SDK's import; `close()` after the server returned."""

    def __init__(self, key: str, folder: Path) -> None:
        self._key = key
        self._folder = folder
        self._out_lock = threading.Lock()  # every write to the real stdout
        self._state = threading.Lock()
        # ids answered here whose SDK answer is dropped -> the part of the cache entry sent
        self._answered: dict[str, str] = {}
        self._hit: tuple[Path, dict[str, Any]] | None = None  # the cache entry answering
        self._capture: dict[str, str] = {}  # id -> "opening" | "tools_list" (cache miss)
        self._captured: dict[str, Any] = {}
        self._opening_params: str | None = None  # of a cache miss
        self._tools_params: str | None = None
        self._out_broken = False
        self._forward_lock = threading.Lock()
        self._sentinel = f"memrl-front-end-{secrets.token_hex(16)}".encode()
        # duplicates of the real stdin/stdout: the front's own
        self._real_in = os.dup(0)
        self._real_out = os.dup(1)
        sdk_in_r, self._sdk_in_w = os.pipe()
        self._sdk_out_r, sdk_out_w = os.pipe()
        sys.stdout.flush()
        os.dup2(sdk_in_r, 0)
        os.dup2(sdk_out_w, 1)
        os.close(sdk_in_r)
        os.close(sdk_out_w)
        self._sdk_in_open = True
        self._front = threading.Thread(target=self._run_front, name="memrl-stdio-front", daemon=True)
        self._back = threading.Thread(target=self._run_back, name="memrl-stdio-back", daemon=True)
        self._front.start()
        self._back.start()

    # -- the client's side -------------------------------------------------------------

    def _run_front(self) -> None:
        entry: dict[str, Any] | None = None
        handshake = True  # until the opening request and a tools/list went by
        seen_opening = False
        try:
            with os.fdopen(self._real_in, "rb", closefd=True) as real_in:
                while True:
                    try:
                        line = real_in.readline()
                    except (OSError, ValueError):
                        line = b""
                    if not line:
                        break
                    if handshake and any(marker in line for marker in _MARKERS):
                        try:
                            message = _request(line)
                            if message is not None and message["method"] in OPENING:
                                if not seen_opening:
                                    seen_opening = True
                                    entry = self._on_opening(message)
                            elif message is not None and message["method"] == "tools/list":
                                if seen_opening:
                                    handshake = False
                                    self._on_tools_list(message, entry)
                        except Exception:  # noqa: BLE001 -- the SDK answers what the front cannot
                            log.exception("stdio front: forwarding only from here on")
                            handshake = False
                    if not self._forward(line):
                        break
        finally:  # whatever happened, the SDK sees the end of its input
            self._close_sdk_in()

    def _on_opening(self, message: dict[str, Any]) -> dict[str, Any] | None:
        params = canonical([message["method"], message.get("params")])
        entry = _read_entry(_entry_path(self._folder, self._key, params), params)
        if entry is None:
            with self._state:
                self._opening_params = params
                self._capture[_id_key(message["id"])] = "opening"
            return None
        with self._state:
            self._hit = (_entry_path(self._folder, self._key, params), entry)
            self._answered[_id_key(message["id"])] = "opening"
        self._to_client(_answer(message["id"], entry["opening"]))
        return entry

    def _on_tools_list(self, message: dict[str, Any], entry: dict[str, Any] | None) -> None:
        params = message.get("params")
        if isinstance(params, dict) and "cursor" in params:  # a later page: the SDK answers
            return
        if entry is None:
            with self._state:
                if self._opening_params is not None:
                    self._tools_params = canonical(params)
                    self._capture[_id_key(message["id"])] = "tools_list"
            return
        if entry.get("tools_list_params") != canonical(params):
            return
        with self._state:
            self._answered[_id_key(message["id"])] = "tools_list"
        self._to_client(_answer(message["id"], entry["tools_list"]))

    def _forward(self, line: bytes) -> bool:
        with self._forward_lock:
            if not self._sdk_in_open:
                return False
            try:
                _write_all(self._sdk_in_w, line)
            except OSError:  # the SDK is gone
                return False
        return True

    def _close_sdk_in(self) -> None:
        """EOF for the SDK: the client closed stdin, or no longer reads stdout."""
        with self._forward_lock:
            if self._sdk_in_open:
                self._sdk_in_open = False
                os.close(self._sdk_in_w)

    # -- the SDK's side ------------------------------------------------------------------

    def _run_back(self) -> None:
        with os.fdopen(self._sdk_out_r, "rb", closefd=True) as sdk_out:
            while True:
                line = sdk_out.readline()
                if not line or line.rstrip(b"\r\n") == self._sentinel:
                    break
                try:
                    wanted = self._wanted(line)
                except Exception:  # noqa: BLE001 -- a line the front cannot judge goes out
                    log.exception("stdio front: passing the SDK's line on")
                    wanted = True
                if line.strip() and wanted:
                    self._to_client(line)

    def _wanted(self, line: bytes) -> bool:
        """Whether the SDK's line goes to the client (False: answered here already)."""
        with self._state:
            if not self._answered and not self._capture:
                return True
        message = _response(line)
        if message is None:
            return True
        key = _id_key(message.get("id"))
        with self._state:
            if key in self._answered:
                self._check(self._answered.pop(key), message)
                return False
            what = self._capture.pop(key, None)
            if what is None or "result" not in message:
                if what is not None:  # an error is never cached
                    self._capture.clear()
                return True
            self._captured[what] = message["result"]
            complete = "opening" in self._captured and "tools_list" in self._captured
            entry = {
                "format": FORMAT,
                "opening_params": self._opening_params,
                "opening": self._captured.get("opening"),
                "tools_list_params": self._tools_params,
                "tools_list": self._captured.get("tools_list"),
            }
        if complete and self._opening_params is not None:
            _write_entry(_entry_path(self._folder, self._key, self._opening_params), entry)
        return True

    def _check(self, part: str, message: dict[str, Any]) -> None:
        """The SDK's own answer to a request answered from the cache entry: should they
        differ (something the key misses changed), the entry is corrected for the next start."""
        if self._hit is None:
            return
        path, entry = self._hit
        if message.get("result") == entry[part]:
            return
        log.warning("stdio front: the cached answer to %s was stale; corrected for next time", part)
        if "result" in message:
            entry[part] = message["result"]
            _write_entry(path, entry)
        else:  # the SDK refused what the cache answered: never answer from it again
            try:
                path.unlink()
            except OSError:
                pass
            self._hit = None

    def _to_client(self, data: bytes) -> None:
        with self._out_lock:
            if self._out_broken:
                return
            try:
                _write_all(self._real_out, data)
            except OSError:  # the client no longer reads: let the server end
                self._out_broken = True
        if self._out_broken:
            self._close_sdk_in()

    def close(self, timeout: float = 10.0) -> None:
        """After the server returned: copy what the SDK wrote last, then give back fd 0/1."""
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        try:  # fd 1 is the SDK's pipe again (the SDK restores it when it ends)
            _write_all(1, b"\n" + self._sentinel + b"\n")
        except OSError:
            pass
        self._back.join(timeout)
        self._close_sdk_in()
        os.dup2(self._real_out, 1)
        os.close(self._real_out)


def start(settings: ServerSettings) -> StdioFront | None:
    """The front for this stdio server, or None (turned off, not POSIX, or it failed)."""
    if not settings.stdio_front or os.name != "posix":
        return None
    try:
        return StdioFront(settings_key(settings), cache_dir())
    except OSError as e:
        log.warning("no stdio front (%s): the SDK answers the handshake", e)
        return None
