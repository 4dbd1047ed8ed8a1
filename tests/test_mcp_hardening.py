"""The MCP tools as an attacker or a careless host meets them: bounded, readable tool errors
(never pydantic's text, never "internal error" for a full or read-only disk), strict types,
and secrets filtered from metadata."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from mcp import Client
from mcp_helpers import call
from memrl_server.app import build_server
from memrl_server.settings import ServerSettings
from needs import fill, remount_read_only, small_filesystem

from memrl import SqliteStorage, load_embedder

PYDANTIC_MARKS = ("errors.pydantic.dev", "validation error", "[type=", "input_value")


@pytest.fixture(scope="module")
def embedder():
    return load_embedder()


def settings_for(db: Path) -> ServerSettings:
    return ServerSettings(db_path=db, namespace="ns")


async def tool_error(client: Client, tool: str, **args: object) -> str:
    result = await client.call_tool(tool, args)
    assert result.is_error, result
    text = result.content[0].text
    for mark in PYDANTIC_MARKS:
        assert mark not in text, text
    assert "internal error" not in text and "Traceback" not in text
    return text


async def test_a_huge_argument_is_not_echoed_back_nor_logged(tmp_path, embedder, caplog):
    caplog.set_level(logging.DEBUG)
    huge = "x" * (1 << 20)
    async with Client(build_server(settings_for(tmp_path / "m.db"), lambda: embedder)) as client:
        text = await tool_error(client, "report_outcome", task_id=huge, success=True)
        assert "task_id has 1048576 characters, more than the limit of 128" in text
        assert len(text) < 300
        text = await tool_error(client, "recall_experience", task="y" * (1 << 20))
        assert "task has 1048576 characters, more than the limit of 4000" in text
        assert len(text) < 300
    assert max(len(r.getMessage()) for r in caplog.records) < 2000


async def test_strict_types_and_exact_task_ids(tmp_path, embedder):
    async with Client(build_server(settings_for(tmp_path / "m.db"), lambda: embedder)) as client:
        task = await call(client, "recall_experience", task="fix the flaky test")
        tid = task["task_id"]
        text = await tool_error(client, "report_outcome", task_id=tid, success="yes")
        assert text.endswith("success must be true or false, got a string 'yes'")
        text = await tool_error(client, "report_outcome", task_id=tid, success=1)
        assert "success must be true or false, got a number 1" in text
        text = await tool_error(client, "report_outcome", task_id=tid + "\n", success=True)
        assert "is invalid: pass the task_id exactly as recall_experience returned it" in text
        assert (await call(client, "report_outcome", task_id=tid, success=True))["status"] == "updated"
        # the JSON literal as a string, as the MCP Inspector CLI sends every argument
        other = (await call(client, "recall_experience", task="fix the flaky test"))["task_id"]
        assert (await call(client, "report_outcome", task_id=other, success="false"))["reward"] == -1


@pytest.mark.parametrize(
    ("tool", "args", "expected"),
    [
        ("recall_experience", {}, "invalid arguments for recall_experience: task is required"),
        ("recall_experience", {"task": 7}, "task must be a string, got a number 7"),
        ("recall_experience", {"task": "x", "k": 0}, "k must be at least 1, got a number 0"),
        ("recall_experience", {"task": "x", "k": "many"}, "k must be an integer, got a string 'many'"),
        ("report_outcome", {"task_id": "t-1", "used_ids": "1,2"}, "used_ids must be a list"),
        ("report_outcome", {"task_id": "t-1", "used_ids": ["a"]}, "used_ids.0 must be an integer"),
        ("store_experience", {"intent": "x", "experience": "y", "metadata": [1]}, "metadata must be a JSON object"),
        ("store_experience", {"intent": "", "experience": "y"}, "intent is empty: give a non-empty text"),
    ],
)
async def test_schema_errors_speak_like_the_core(tmp_path, embedder, tool, args, expected):
    async with Client(build_server(settings_for(tmp_path / "m.db"), lambda: embedder)) as client:
        assert expected in await tool_error(client, tool, **args)


async def test_metadata_secrets_never_reach_the_database(tmp_path, embedder):
    token = "hf_" + "aBcDeFgHiJ" * 3 + "kLmN"
    async with Client(build_server(settings_for(tmp_path / "m.db"), lambda: embedder)) as client:
        out = await call(
            client,
            "store_experience",
            intent="download the model",
            experience="huggingface-cli download org/model",
            metadata={"HF_TOKEN": token, "note": f"logged in with {token}", token: "as a key"},
        )
    assert out["redacted"] == 3 and "[REDACTED]" in out["message"]
    store = SqliteStorage(tmp_path / "m.db", 384, "x")
    try:
        rows = store._conn.execute("SELECT * FROM memories").fetchall()
    finally:
        store.close()
    assert token not in json.dumps([list(r) for r in rows])


async def test_stats_resource_shows_the_gate_in_force(tmp_path, embedder):
    async with Client(build_server(settings_for(tmp_path / "m.db"), lambda: embedder)) as client:
        await call(client, "store_experience", intent="a", experience="b")
        contents = (await client.read_resource("memrl://stats")).contents
    [row] = json.loads(contents[0].text)
    assert row["delta"] == 0.35 and row["delta_source"].startswith("default until")


async def test_a_read_only_database_is_a_tool_error_that_says_so(tmp_path, embedder):
    with small_filesystem(tmp_path / "disk") as disk:
        db = disk / "m.db"
        seed = SqliteStorage(db, embedder.dim, embedder.model_id)
        seed.close()
        remount_read_only(disk)
        async with Client(build_server(settings_for(db), lambda: embedder)) as client:
            text = await tool_error(client, "store_experience", intent="a", experience="b")
            assert "is read-only" in text and "make it writable" in text
            text = await tool_error(client, "recall_experience", task="a")
            assert "is read-only" in text


async def test_a_full_disk_is_a_tool_error_and_loses_nothing(tmp_path, embedder):
    with small_filesystem(tmp_path / "disk") as disk:
        db = disk / "m.db"
        async with Client(build_server(settings_for(db), lambda: embedder)) as client:
            first = await call(client, "store_experience", intent="first", experience="kept")
            filler = fill(disk)
            for n in range(3):  # the first write may still find a page free in the WAL
                result = await client.call_tool(
                    "store_experience",
                    {"intent": f"task {n} " * 50, "experience": "a long experience " * 500},
                )
                if result.is_error:
                    break
            text = await tool_error(
                client, "store_experience", intent="more " * 50, experience="text " * 2000
            )
            assert "is full: free some space on it" in text
            filler.unlink()
            again = await call(client, "store_experience", intent="after", experience="works")
            assert again["created"] is True and again["id"] > first["id"]
            recall = await call(client, "recall_experience", task="first")
            assert recall["task_id"]
        check = SqliteStorage(db, embedder.dim, embedder.model_id)
        try:
            assert check._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            intents = [r[0] for r in check._conn.execute("SELECT intent FROM memories")]
        finally:
            check.close()
        assert intents[0] == "first" and intents[-1] == "after"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is an empty file (0 bytes), not a memrl database"),
        (b"not a database at all\n" * 300, "is damaged or is not a memrl database"),
    ],
)
async def test_an_empty_or_damaged_file_is_a_tool_error(tmp_path, embedder, content, expected):
    db = tmp_path / "m.db"
    db.write_bytes(content)
    async with Client(build_server(settings_for(db), lambda: embedder)) as client:
        assert expected in await tool_error(client, "recall_experience", task="a task")
    assert db.read_bytes() == content
