"""Over stdio, every line gets an answer: a line that is no JSON-RPC message gets a JSON-RPC
error at once (with the request's id when the line shows it), instead of silence until the
client's timeout; the session goes on working afterwards."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path

from mcp_helpers import serve_args, server_env


class Wire:
    """A `memrl serve` process spoken to line by line, as a client would."""

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, *serve_args(db, "--namespace", "ns")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=server_env(),
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def send(self, raw: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(raw + b"\n")
        self.proc.stdin.flush()

    def answer(self, timeout: float = 60) -> dict:
        return json.loads(self.lines.get(timeout=timeout))

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)
        self._reader.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}


def test_malformed_lines_get_json_rpc_errors_and_the_session_goes_on(tmp_path: Path):
    wire = Wire(tmp_path / "m.db")
    try:
        wire.send(b"this is not json")
        reply = wire.answer()
        assert reply["id"] is None and reply["error"]["code"] == -32700
        assert "the line is not JSON" in reply["error"]["message"]

        wire.send(b'{"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {"x": "\\ud800"}}')
        reply = wire.answer()
        assert reply["id"] == 7 and reply["error"]["code"] == -32700
        assert "lone UTF-16 surrogate" in reply["error"]["message"]

        wire.send(b"[1, 2]")
        reply = wire.answer()
        assert reply["id"] is None and reply["error"]["code"] == -32600

        wire.send(b'{"jsonrpc": "2.0", "id": "r-9", "method": 5}')
        reply = wire.answer()
        assert reply["id"] == "r-9" and reply["error"]["code"] == -32600
        assert "is not a JSON-RPC 2.0 message" in reply["error"]["message"]

        wire.send(b"[" * 5000 + b"]" * 5000)  # deeper than any parser's recursion
        assert wire.answer()["error"]["code"] == -32700

        wire.send(b"")  # a blank line asks nothing and is answered with nothing
        wire.send(json.dumps(INITIALIZE).encode())
        assert wire.answer()["result"]["serverInfo"]["name"] == "memrl"
        wire.send(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}')
        wire.send(b'{"jsonrpc": "2.0", "id": 2, "method": "tools/list"}')
        reply = wire.answer()
        assert reply["id"] == 2 and len(reply["result"]["tools"]) == 3
    finally:
        wire.close()
    assert wire.proc.returncode == 0
