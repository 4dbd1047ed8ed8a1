"""The stdio front (server/stdio_front.py): the handshake answered from the server's own
earlier answers. Real `memrl serve` processes, spoken to line by line and with the SDK's
client: the answers equal those of a server without the front, the SDK's own answers to the
requests answered from the cache never reach the client, a changed setting or initialize
misses the cache, and the server still ends at stdin's EOF."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp_helpers import learning_loop, serve_args, server_env

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the front is POSIX only")


def initialize(request_id: Any = 1, version: str = "2025-06-18") -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"},
        },
    }


INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def tools_list(request_id: Any = 2, params: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": "tools/list"}
    if params is not None:
        message["params"] = params
    return message


def call(request_id: Any, tool: str, **arguments: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }


def env(cache: Path, front: bool = True) -> dict[str, str]:
    return server_env({"XDG_CACHE_HOME": str(cache), "MEMRL_STDIO_FRONT": "1" if front else "0"})


def session(
    db: Path, cache: Path, lines: list[Any], *extra: str, front: bool = True,
    expect: int | None = None, until: Callable[[], bool] | None = None,
) -> list[dict[str, Any]]:
    """Send every line (JSON values, or raw bytes), wait for `expect` answers (default: one
    per request), close stdin, and return every answer line the server wrote until it
    exited (at EOF the SDK drops requests still in flight, so the test waits first; and,
    if given, until `until()` holds)."""
    if expect is None:
        expect = sum(1 for line in lines if isinstance(line, dict) and "id" in line)
    proc = subprocess.Popen(
        [sys.executable, *serve_args(db, "--namespace", "ns", *extra)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(cache, front),
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    answers: queue.Queue[bytes] = queue.Queue()
    reader = threading.Thread(target=lambda: [answers.put(x) for x in proc.stdout], daemon=True)
    reader.start()
    errors = threading.Thread(target=proc.stderr.read, daemon=True)
    errors.start()
    try:
        for line in lines:
            raw = line if isinstance(line, bytes) else json.dumps(line).encode()
            proc.stdin.write(raw + b"\n")
        proc.stdin.flush()
        got = [answers.get(timeout=60) for _ in range(expect)]
        deadline = time.monotonic() + 30
        while until is not None and not until() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.stdin.close()
        assert proc.wait(30) == 0
        reader.join(10)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    while not answers.empty():
        got.append(answers.get())
    return [json.loads(line) for line in got]


def by_id(answers: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    counts = Counter(json.dumps(a.get("id")) for a in answers)
    assert all(n == 1 for n in counts.values()), counts  # one answer per request, never two
    return {a.get("id"): a for a in answers}


def cached(cache: Path) -> list[Path]:
    return sorted((cache / "memrl" / "handshake").glob("*.json"))


HANDSHAKE = [initialize(), INITIALIZED, tools_list()]


def test_cold_then_warm_cache_answers_as_the_sdk_does(tmp_path: Path):
    db, cache = tmp_path / "m.db", tmp_path / "cache"
    sdk = by_id(session(db, tmp_path / "off", HANDSHAKE, front=False))
    assert not cached(tmp_path / "off")
    cold = by_id(session(db, cache, HANDSHAKE))
    assert len(cached(cache)) == 1
    warm = by_id(session(db, cache, HANDSHAKE))
    assert len(cached(cache)) == 1
    for answers in (cold, warm):
        assert answers.keys() == {1, 2}
        assert answers[1] == sdk[1] and answers[2] == sdk[2]
    assert sdk[1]["result"]["serverInfo"]["name"] == "memrl"
    assert len(sdk[2]["result"]["tools"]) == 3


def test_warm_answers_come_from_the_cache_and_the_sdk_answers_are_dropped(tmp_path: Path):
    db, cache = tmp_path / "m.db", tmp_path / "cache"
    session(db, cache, HANDSHAKE)
    (path,) = cached(cache)
    good = json.loads(path.read_text())
    entry = json.loads(path.read_text())
    entry["opening"]["instructions"] = "from the cache"
    entry["tools_list"]["tools"] = entry["tools_list"]["tools"][:1]
    path.write_text(json.dumps(entry))
    answers = by_id(session(db, cache, HANDSHAKE, until=lambda: json.loads(path.read_text()) == good))
    assert answers[1]["result"]["instructions"] == "from the cache"
    assert len(answers[2]["result"]["tools"]) == 1
    # the SDK's own answers differed: the entry is corrected for the next start
    assert json.loads(path.read_text()) == good
    assert by_id(session(db, cache, HANDSHAKE))[1]["result"] == good["opening"]


def test_a_full_session_after_a_warm_handshake(tmp_path: Path):
    db, cache = tmp_path / "m.db", tmp_path / "cache"
    session(db, cache, HANDSHAKE)
    # one call a process: the SDK runs a client's requests concurrently
    store = call(3, "store_experience", intent="fix the flaky queue test", experience="await join()")
    answers = by_id(session(db, cache, [*HANDSHAKE, store]))
    assert answers.keys() == {1, 2, 3}
    stored = answers[3]["result"]["structuredContent"]
    recall = call(4, "recall_experience", task="fix the flaky queue test")
    answers = by_id(session(db, cache, [*HANDSHAKE, recall, {"jsonrpc": "2.0", "id": 5, "method": "ping"}]))
    assert answers.keys() == {1, 2, 4, 5}
    recalled = answers[4]["result"]["structuredContent"]
    assert [m["id"] for m in recalled["memories"]] == [stored["id"]]
    report = call(6, "report_outcome", task_id=recalled["task_id"], success=True)
    answers = by_id(session(db, cache, [*HANDSHAKE, report]))
    assert answers[6]["result"]["structuredContent"]["status"] == "updated"


async def test_the_sdk_client_learning_loop_after_a_warm_handshake(tmp_path: Path):
    db, cache = tmp_path / "m.db", tmp_path / "cache"
    params = StdioServerParameters(
        command=sys.executable,
        args=serve_args(db, "--namespace", "github.com/acme/app"),
        env=env(cache),
    )
    async with Client(params) as client:  # cold: the SDK answers, the cache is written
        assert len((await client.list_tools()).tools) == 3
    assert len(cached(cache)) == 1
    async with Client(params) as client:  # warm
        assert client.server_info is not None and client.server_info.name == "memrl"
        assert len((await client.list_tools()).tools) == 3
        await learning_loop(client, "github.com/acme/app")
    assert len(cached(cache)) == 1


def test_another_namespace_or_protocol_version_misses_the_cache(tmp_path: Path):
    db, cache = tmp_path / "m.db", tmp_path / "cache"
    session(db, cache, HANDSHAKE)
    assert len(cached(cache)) == 1
    by_id(session(db, cache, HANDSHAKE, "--namespace", "other"))
    assert len(cached(cache)) == 2
    old = by_id(session(db, cache, [initialize(version="2025-03-26"), INITIALIZED, tools_list()]))
    assert old[1]["result"]["protocolVersion"] == "2025-03-26"
    assert len(cached(cache)) == 3
    sdk = by_id(
        session(db, tmp_path / "off", [initialize(version="2025-03-26"), INITIALIZED, tools_list()],
                front=False)
    )
    warm = by_id(session(db, cache, [initialize(version="2025-03-26"), INITIALIZED, tools_list()]))
    assert warm == sdk and len(cached(cache)) == 3


def test_what_the_front_never_answers(tmp_path: Path):
    """A ping before initialize, a batch, a second initialize, a tools/list with a cursor
    or before initialize: the SDK answers each, once."""
    db, cache = tmp_path / "m.db", tmp_path / "cache"
    session(db, cache, HANDSHAKE)
    lines = [
        tools_list("early"),
        {"jsonrpc": "2.0", "id": "p", "method": "ping"},
        b'[{"jsonrpc": "2.0", "id": "b", "method": "ping"}]',
        initialize(),
        initialize("again"),
        INITIALIZED,
        tools_list(2, {"cursor": "x"}),
        tools_list(3),
    ]
    on = session(db, cache, lines, expect=7)
    off = session(db, tmp_path / "off", lines, front=False, expect=7)
    assert by_id(on) == by_id(off)
    assert len(on) == 7  # the batch's error has id null
    assert by_id(on)["p"]["result"] == {}
    assert by_id(on)[None]["error"]["code"] == -32600


def test_the_server_ends_at_stdin_eof(tmp_path: Path):
    db, cache = tmp_path / "m.db", tmp_path / "cache"
    assert session(db, cache, [], expect=0) == []
    session(db, cache, HANDSHAKE)
    assert by_id(session(db, cache, [initialize()])).keys() == {1}  # warm, then EOF
    proc = subprocess.Popen(
        [sys.executable, *serve_args(db, "--namespace", "ns")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env(cache),
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(initialize()).encode() + b"\n")
    proc.stdin.flush()
    assert json.loads(proc.stdout.readline())["id"] == 1
    proc.stdout.close()  # the client stops reading, then goes away
    proc.stdin.close()
    assert proc.wait(30) == 0


ENVELOPE = {
    "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
}
DISCOVER = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": ENVELOPE}


def test_the_2026_protocol_discover_and_tools_list_from_the_cache(tmp_path: Path):
    """The SDK's own client opens with server/discover, and each request carries the
    protocol version in its params' _meta (no initialize)."""
    db, cache = tmp_path / "m.db", tmp_path / "cache"
    lines = [DISCOVER, tools_list(2, ENVELOPE)]
    sdk = by_id(session(db, tmp_path / "off", lines, front=False))
    assert sdk[1]["result"]["supportedVersions"] == ["2026-07-28"]
    assert len(sdk[2]["result"]["tools"]) == 3
    assert by_id(session(db, cache, lines)) == sdk  # cold
    (path,) = cached(cache)
    assert by_id(session(db, cache, lines)) == sdk  # warm
    entry = json.loads(path.read_text())
    entry["tools_list"]["tools"] = []
    path.write_text(json.dumps(entry))
    corrected = lambda: json.loads(path.read_text())["tools_list"] == sdk[2]["result"]  # noqa: E731
    assert by_id(session(db, cache, lines, until=corrected))[2]["result"]["tools"] == []
    assert json.loads(path.read_text())["tools_list"] == sdk[2]["result"]  # then corrected
    other = dict(ENVELOPE["_meta"], **{"io.modelcontextprotocol/clientInfo": {"name": "b", "version": "1"}})
    by_id(session(db, cache, [{**DISCOVER, "params": {"_meta": other}}, tools_list(2, {"_meta": other})]))
    assert len(cached(cache)) == 2  # other params: a miss


def test_the_cache_keeps_its_newest_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import memrl_server.stdio_front as front

    monkeypatch.setattr(front, "MAX_ENTRIES", 3)
    folder = tmp_path / "handshake"
    for i in range(5):
        front._write_entry(folder / f"{i}.json", {"i": i})
        os.utime(folder / f"{i}.json", (1000 + i, 1000 + i))
    front._write_entry(folder / "5.json", {"i": 5})
    assert sorted(p.name for p in folder.iterdir()) == ["3.json", "4.json", "5.json"]
