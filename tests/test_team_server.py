"""A server for a team, as a real process over streamable HTTP with real MCP client
sessions, on each backend: the namespace comes with each request (X-Memrl-Namespace), not
from the server's directory, and a token reaches only the namespaces of the token file."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from backends import Backend
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_helpers import call, free_port, start_http_server

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)

ACME = "acme-token-0123456789abcdef"
OTHER = "other-token-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef"
TASK = "fix the flaky race-condition test in the async job queue"


@pytest.fixture
def team_server(backend: Backend, tmp_path: Path) -> Iterator[int]:
    tokens = tmp_path / "tokens"
    tokens.write_text(
        "# token   namespaces\n"
        f"{ACME}  github.com/acme/*\n"
        f"{OTHER} github.com/other/app   # one project only\n"
    )
    port = free_port()
    proc = start_http_server(
        backend.target, port, "--namespace", "server-default",
        "--token-file", str(tokens), "--token", ADMIN,
    )
    yield port
    proc.terminate()
    proc.wait(90)  # a server stopped while its model still loads waits for the load to end
    if proc.stderr:
        proc.stderr.close()


@asynccontextmanager
async def session(port: int, token: str, namespace: str | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"}
    if namespace:
        headers["X-Memrl-Namespace"] = namespace
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60.0)) as http:
        transport = streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)
        async with Client(transport) as client:
            yield client


async def refused(client: Client, tool: str, **args) -> str:
    result = await client.call_tool(tool, args)
    assert result.is_error, result.content
    return result.content[0].text


async def stats(client: Client) -> list[str]:
    text = (await client.read_resource("memrl://stats")).contents[0].text
    return sorted(s["namespace"] for s in json.loads(text))


async def test_namespace_per_request_and_tokens_scoped_to_namespaces(team_server: int) -> None:
    port = team_server
    async with session(port, ACME, "github.com/acme/app") as acme:
        mine = await call(acme, "store_experience", intent=TASK, experience="await join()")
        assert mine["namespace"] == "github.com/acme/app"  # the header's, not server-default
        recall = await call(acme, "recall_experience", task=TASK)
        assert (recall["namespace"], [m["id"] for m in recall["memories"]]) == (
            "github.com/acme/app", [mine["id"]]
        )
        # another project of the token's organisation, named by argument: allowed
        lib = await call(acme, "store_experience", intent=TASK, experience="x",
                         namespace="github.com/acme/lib")
        assert lib["namespace"] == "github.com/acme/lib"
        # a namespace outside the token: refused whatever names it
        text = await refused(acme, "recall_experience", task=TASK, namespace="github.com/other/app")
        assert "may not use namespace 'github.com/other/app'" in text
        assert "github.com/acme/*" in text
        detail = json.loads(
            (await acme.read_resource(f"memrl://memory/{mine['id']}")).contents[0].text
        )
        assert detail["q"] == 0.0
        assert await stats(acme) == ["github.com/acme/app", "github.com/acme/lib"]

    async with session(port, ACME, "github.com/other/app") as wrong_header:
        text = await refused(wrong_header, "store_experience", intent="x", experience="y")
        assert "may not use namespace 'github.com/other/app'" in text

    async with session(port, OTHER, "github.com/other/app") as other:
        theirs = await call(other, "store_experience", intent=TASK, experience="sleep(1)")
        seen = await call(other, "recall_experience", task=TASK)
        assert [m["id"] for m in seen["memories"]] == [theirs["id"]]  # never acme's memory
        # acme's task: this token may not name acme's namespace, and from its own
        # namespace the task is not reportable (it belongs to acme/app)
        text = await refused(other, "report_outcome", task_id=recall["task_id"], success=False,
                             namespace="github.com/acme/app")
        assert "may not use namespace 'github.com/acme/app'" in text
        text = await refused(other, "report_outcome", task_id=recall["task_id"], success=False)
        assert "belongs to namespace 'github.com/acme/app'" in text
        assert await stats(other) == ["github.com/other/app"]
        with pytest.raises(Exception, match="no memory with id"):
            await other.read_resource(f"memrl://memory/{mine['id']}")

    async with session(port, ACME, "github.com/acme/app") as acme:
        done = await call(acme, "report_outcome", task_id=recall["task_id"], success=True)
        assert done["credited"] == [{"id": mine["id"], "q": pytest.approx(0.3)}]

    async with session(port, ADMIN, None) as admin:
        assert await stats(admin) == [
            "github.com/acme/app", "github.com/acme/lib", "github.com/other/app"
        ]
        plain = await call(admin, "store_experience", intent="x", experience="y")
        assert plain["namespace"] == "server-default"


async def test_an_unknown_token_gets_401(team_server: int) -> None:
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(30.0)) as http:
        for auth in ({}, {"Authorization": "Bearer not-a-known-token-at-all"}):
            response = await http.post(
                f"http://127.0.0.1:{team_server}/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                headers={**auth, "Accept": "application/json, text/event-stream"},
            )
            assert response.status_code == 401
            assert "bearer token" in response.text
