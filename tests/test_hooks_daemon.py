"""The warm daemon's life: one per database whatever the races, replaced when it dies,
gone when idle, when told to, or when its socket disappears; never left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hook_helpers import MEMRL, HookEnv, alive, kill, prompt, wait_gone
from memrl_server.hooks.locations import Locations

from memrl import Experience, Memory, SqliteStorage

TASK = "renew the staging TLS certificate before it expires"
NS = "test/daemon"


@pytest.fixture
def env(tmp_path, real_model) -> Iterator[HookEnv]:
    hooks = HookEnv(tmp_path)
    hooks.env["MEMRL_NAMESPACE"] = NS
    store = SqliteStorage(hooks.db, real_model.dim, real_model.model_id)
    Memory(store, real_model).store_many(
        [
            Experience(
                "renew the TLS certificate of the staging cluster", "certbot renew", namespace=NS
            )
        ]
    )
    store.close()
    yield hooks
    hooks.stop_daemon()
    for pid in hooks.daemon_pids():
        wait_gone(pid, timeout=15)
    assert hooks.daemon_pids() == [], "a daemon outlived its test"


def socket_of(env: HookEnv):
    return Locations(env.db.resolve(), env.home).socket


def test_concurrent_first_calls_start_one_daemon(env):
    procs = [
        subprocess.Popen(
            [*MEMRL, "hook"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env.env,
            text=True,
        )
        for _ in range(4)
    ]
    payload = '{"session_id": "s-%d", "hook_event_name": "UserPromptSubmit", "prompt": "%s"}'
    for i, p in enumerate(procs):  # all four payloads go out at once, as from four sessions
        p.stdin.write(payload % (i, TASK))
        p.stdin.close()
    outputs = []
    for p in procs:
        with p:
            outputs.append((p.stdout.read(), p.stderr.read()))
    assert all(p.returncode == 0 for p in procs)
    assert all("#1 success" in out for out, _ in outputs), outputs
    deadline = time.monotonic() + 15  # losers of the lock exit at once; a busy machine
    while len(env.daemon_pids()) > 1 and time.monotonic() < deadline:  # may be slow to
        time.sleep(0.1)  # start them
    assert len(env.daemon_pids()) == 1


def test_a_killed_daemon_is_replaced(env):
    assert env.hook(prompt("s-1", TASK)).context
    first = env.status()["pid"]
    kill(first)
    assert socket_of(env).exists()  # a stale socket file: connections are refused
    assert env.hook(prompt("s-1", TASK)).context
    second = env.status()["pid"]
    assert second != first and alive(second)


def test_an_idle_daemon_exits_and_removes_its_socket(env):
    env.env["MEMRL_HOOK_IDLE"] = "1"
    assert env.hook(prompt("s-1", TASK)).context
    pid = env.status()["pid"]
    wait_gone(pid, timeout=20)
    assert not socket_of(env).exists()


def test_a_daemon_exits_when_its_socket_is_removed_or_on_sigterm(env):
    env.hook(prompt("s-1", TASK))
    pid = env.status()["pid"]
    socket_of(env).unlink()
    wait_gone(pid, timeout=20)
    env.hook(prompt("s-1", TASK))
    pid = env.status()["pid"]
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid, timeout=20)
    assert not socket_of(env).exists()


def test_a_daemon_that_cannot_start_does_not_block_the_host(env, tmp_path):
    env.env["MEMRL_MODEL_DIR"] = str(tmp_path / "no-model-here")
    started = time.monotonic()
    done = env.hook(prompt("s-1", TASK))
    assert done.answer is None
    assert "memory unavailable, nothing done" in done.stderr
    assert "failed to start" in done.stderr
    first = time.monotonic() - started
    started = time.monotonic()
    again = env.hook(prompt("s-1", TASK))  # within a minute: no new doomed daemon
    assert "failed to start" in again.stderr
    assert time.monotonic() - started < max(first, 5.0)
    assert env.daemon_pids() == []


def test_without_the_daemon_the_hook_works_in_its_own_process(env):
    done = env.hook(prompt("s-1", TASK), "--no-daemon")
    assert "#1 success" in done.context
    assert env.daemon_pids() == []


def test_status_and_stop_daemon(env):
    assert env.status()["running"] is False
    env.hook(prompt("s-1", TASK))
    status = env.status()
    assert status["running"] is True and alive(status["pid"])
    done = subprocess.run(
        [*MEMRL, "hook", "--stop-daemon"], env=env.env, capture_output=True, text=True
    )
    assert '"stopped": true' in done.stdout
    wait_gone(status["pid"])


def test_without_memrl_db_the_daemon_uses_the_servers_default_database(tmp_path, real_model):
    hooks = HookEnv(tmp_path)
    del hooks.env["MEMRL_DB"]
    hooks.env.update({"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")})
    hooks.env["MEMRL_NAMESPACE"] = NS
    try:
        hooks.hook(prompt("s-1", TASK))
        code = "from memrl import default_db_path; print(default_db_path())"
        expected = subprocess.run(
            [sys.executable, "-c", code], env=hooks.env, capture_output=True, text=True, check=True
        ).stdout.strip()
        assert hooks.status()["db"] == expected
        assert Path(expected).exists()
    finally:
        hooks.stop_daemon()
