"""Shared pieces of the MCP tests: server commands, ports, and the learning loop."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

# Three intents close to the task; A is the most similar, so similarity alone injects A.
MEMORIES = [
    (
        "fix flaky test caused by a race condition in the async job queue",
        "A: add a sleep(1) before the assertion",
    ),
    (
        "flaky async job queue test fails because of a race condition",
        "B: await the queue's join() before asserting, never sleep",
    ),
    (
        "speed up the docker image build for the job queue service",
        "C: order Dockerfile layers so dependencies cache",
    ),
]
TASK = "fix the flaky race-condition test in the async job queue"


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MEMRL_NAMESPACE", None)
    env.update(extra or {})
    return env


def serve_args(db: Path, *extra: str) -> list[str]:
    return ["-m", "memrl_server", "serve", "--db", str(db), *extra]


def stdio_params(db: Path, *extra: str, cwd: Path | None = None) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=serve_args(db, *extra),
        env=server_env(),
        cwd=str(cwd) if cwd else None,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_http_server(db: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, *serve_args(db, "--http", "--port", str(port), *extra)],
        env=server_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("HTTP server did not start within 60 s")


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def learning_loop(client: Client, namespace: str) -> dict[str, Any]:
    """store -> recall -> report failure -> recall: the failed memory must lose its place.

    With k=1 only the top-scored memory is injected. At first all Q are 0, so the most similar
    memory (A) is injected. Its failure lowers Q(A) to -0.3, and phase B then prefers B.
    """
    ids = []
    for intent, experience in MEMORIES:
        out = await call(
            client,
            "store_experience",
            intent=intent,
            experience=experience,
            namespace=namespace,
        )
        assert out["created"] is True and out["namespace"] == namespace
        ids.append(out["id"])
    first = await call(client, "recall_experience", task=TASK, namespace=namespace, k=1)
    assert [m["id"] for m in first["memories"]] == [ids[0]]
    assert first["memories"][0]["q"] == 0.0
    outcome = await call(client, "report_outcome", task_id=first["task_id"], success=False)
    assert outcome["status"] == "updated"
    assert outcome["credited"] == [{"id": ids[0], "q": -0.3}]
    again = await call(client, "report_outcome", task_id=first["task_id"], success=False)
    assert again["status"] == "already_reported"
    second = await call(client, "recall_experience", task=TASK, namespace=namespace, k=1)
    assert [m["id"] for m in second["memories"]] == [ids[1]]
    return {"ids": ids, "first": first, "second": second}
