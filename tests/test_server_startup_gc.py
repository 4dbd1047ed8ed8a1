"""The collector paused while `memrl serve` starts and frozen once the memory is loaded
(server/startup_gc.py); nothing changes for anyone who did not pause it."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from memrl_server import startup_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    startup_gc._paused = False
    if enabled:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.usefixtures("restored_gc")
def test_a_paused_start_ends_frozen_with_collection_on() -> None:
    startup_gc.pause()
    assert not gc.isenabled()
    startup_gc.started()
    assert gc.isenabled() and gc.get_freeze_count() > 0
    frozen = gc.get_freeze_count()
    startup_gc.started()  # once only
    assert gc.get_freeze_count() == frozen


@pytest.mark.usefixtures("restored_gc")
def test_without_a_pause_nothing_changes() -> None:
    gc.disable()  # e.g. a caller's own choice
    startup_gc.started()
    assert not gc.isenabled() and gc.get_freeze_count() == 0


def test_memrl_serve_collects_again_once_the_memory_is_loaded(tmp_path: Path) -> None:
    """A real `memrl serve` over stdio: the log says the start froze its objects and turned
    collection back on, and the session works."""
    env = dict(os.environ, MEMRL_LOG_LEVEL="DEBUG", MEMRL_STDIO_FRONT="0")
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "memrl_server", "serve", "--db", str(tmp_path / "m.db"),
             "--namespace", "gc-test"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, env=env,
        )
    assert proc.stdin is not None and proc.stdout is not None

    def call(message: dict[str, object]) -> dict[str, object]:
        proc.stdin.write((json.dumps(message) + "\n").encode())  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        while True:
            answer = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
            if answer.get("id") == message["id"]:
                return dict(answer)

    try:
        call({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}})
        proc.stdin.write(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
        answer = call({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "recall_experience", "arguments": {"task": "fix the csv parser"}}})
        assert "error" not in answer and not answer["result"]["isError"]  # type: ignore[index]
    finally:
        proc.stdin.close()
        proc.wait(timeout=120)
        proc.stdout.close()
    log = log_path.read_text()
    frozen = [line for line in log.splitlines() if "start over:" in line]
    assert len(frozen) == 1 and "garbage collection on" in frozen[0], log[-2000:]
    assert int(frozen[0].split("start over: ")[1].split()[0]) > 10_000
