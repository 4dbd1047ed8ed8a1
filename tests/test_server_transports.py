"""The server as a real process: stdio, streamable HTTP (with a bearer token), two servers on one file."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_helpers import (
    TASK,
    call,
    free_port,
    learning_loop,
    serve_args,
    server_env,
    start_http_server,
    stdio_params,
)

from memrl import SqliteStorage, load_embedder


async def test_learning_loop_over_stdio(tmp_path: Path):
    async with Client(
        stdio_params(tmp_path / "m.db", "--namespace", "github.com/acme/app")
    ) as client:
        await learning_loop(client, "github.com/acme/app")


async def test_cold_start_over_stdio(tmp_path: Path):
    """Prints (does not assert) spawn -> tools/list and spawn -> first recall answer."""
    started = time.perf_counter()
    async with Client(stdio_params(tmp_path / "m.db", "--namespace", "ns")) as client:
        await client.list_tools()
        to_list = time.perf_counter() - started
        out = await call(client, "recall_experience", task=TASK)
        to_recall = time.perf_counter() - started
    assert out["memories"] == []
    print(
        f"\n[cold start] spawn -> tools/list {to_list:.2f} s (target < 1 s); "
        f"spawn -> first recall answer {to_recall:.2f} s (target < 2.5 s)"
    )


@pytest.fixture
def http_server(tmp_path: Path):
    port = free_port()
    proc = start_http_server(
        tmp_path / "m.db",
        port,
        "--namespace",
        "github.com/acme/app",
        "--token",
        "s3cret-token",
    )
    yield port
    proc.terminate()
    proc.wait(10)
    if proc.stderr:
        proc.stderr.close()


@pytest.fixture(scope="module")
def shared_http_server(tmp_path_factory):
    """One token-guarded server for the tests that only read (headers, status codes)."""
    port = free_port()
    proc = start_http_server(
        tmp_path_factory.mktemp("shared") / "m.db", port, "--token", "s3cret-token"
    )
    yield port
    proc.terminate()
    proc.wait(10)
    if proc.stderr:
        proc.stderr.close()


@asynccontextmanager
async def _http_client(port: int, token: str | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0)) as http:
        transport = streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)
        async with Client(transport) as client:
            yield client


async def test_learning_loop_over_http_with_token(http_server: int):
    async with _http_client(http_server, "s3cret-token") as client:
        await learning_loop(client, "github.com/acme/app")


@pytest.mark.parametrize("token", [None, "wrong-token"])
async def test_http_refuses_requests_without_the_token(http_server: int, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "0"},
        },
    }
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"http://127.0.0.1:{http_server}/mcp",
            json=body,
            headers={**headers, "Accept": "application/json, text/event-stream"},
        )
    assert response.status_code == 401
    assert "bearer token" in response.text
    # a challenge without the OAuth hint MCP clients act on
    challenge = response.headers["www-authenticate"]
    assert not challenge.lower().startswith("bearer") and "resource_metadata" not in challenge
    with pytest.raises(Exception):
        async with _http_client(http_server, token) as client:
            await client.list_tools()


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer "])
async def test_the_scheme_is_case_insensitive(shared_http_server: int, scheme: str):
    headers = {"Authorization": f"{scheme} s3cret-token"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0)) as http:
        url = f"http://127.0.0.1:{shared_http_server}/mcp"
        async with Client(streamable_http_client(url, http_client=http)) as client:
            assert len((await client.list_tools()).tools) == 3


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server",
        "/register",
    ],
)
async def test_no_oauth_is_advertised(shared_http_server: int, path: str):
    async with httpx2.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{shared_http_server}{path}")
    assert response.status_code == 404
    assert "does not offer OAuth" in response.text and "Authorization: Bearer" in response.text


def test_a_port_in_use_is_one_line_and_loads_nothing(shared_http_server: int, tmp_path: Path):
    db = tmp_path / "other.db"
    port = shared_http_server
    done = subprocess.run(
        [sys.executable, *serve_args(db, "--http", "--port", str(port))],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"memrl: error: port {port} on 127.0.0.1 is in use (another memrl serve?): stop "
        "that server, or pass another --port"
    ]
    assert not db.exists()


def test_public_bind_without_token_is_refused(tmp_path: Path):
    done = subprocess.run(
        [
            sys.executable,
            *serve_args(
                tmp_path / "m.db",
                "--http",
                "--host",
                "0.0.0.0",
                "--port",
                str(free_port()),
            ),
        ],
        env=server_env({"MEMRL_HTTP_TOKEN": ""}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "set a bearer token" in done.stderr


async def test_two_servers_on_one_file_lose_no_update(tmp_path: Path):
    """Two `memrl serve` processes, each with its own client, credit one shared memory."""
    db = tmp_path / "shared.db"
    rounds = 15
    async with (
        Client(stdio_params(db, "--namespace", "ns", "--k2", "1")) as a,
        Client(stdio_params(db, "--namespace", "ns", "--k2", "1")) as b,
    ):
        stored = await call(a, "store_experience", intent=TASK, experience="await queue.join()")
        same = await call(b, "store_experience", intent=TASK, experience="await queue.join()")
        assert same["id"] == stored["id"] and same["created"] is False

        async def worker(client: Client) -> None:
            for _ in range(rounds):
                recall = await call(client, "recall_experience", task=TASK)
                assert [m["id"] for m in recall["memories"]] == [stored["id"]]
                await call(client, "report_outcome", task_id=recall["task_id"], success=True)

        async with anyio.create_task_group() as tg:
            tg.start_soon(worker, a)
            tg.start_soon(worker, b)
    embedder = load_embedder()
    store = SqliteStorage(db, embedder.dim, embedder.model_id)
    try:
        with store.read() as r:
            row = r.get([stored["id"]])[stored["id"]]
        assert row.n_updates == 2 * rounds
        assert row.q == pytest.approx(1 - 0.7 ** (2 * rounds))
    finally:
        store.close()
