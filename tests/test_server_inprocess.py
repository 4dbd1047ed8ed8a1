"""The MCP server through a real in-process client session."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_helpers import MEMORIES, TASK, call, learning_loop
from memrl_server.app import INSTRUCTIONS, build_server
from memrl_server.settings import ServerSettings

from memrl import Experience, load_embedder


@pytest.fixture(scope="module")
def embedder():
    return load_embedder()


@pytest.fixture
def settings(tmp_path: Path) -> ServerSettings:
    return ServerSettings(db_path=tmp_path / "m.db", namespace="github.com/acme/app")


async def test_tools_are_described_and_annotated(settings, embedder):
    async with Client(build_server(settings, lambda: embedder)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == {"recall_experience", "report_outcome", "store_experience"}
        for tool in tools.values():
            assert tool.description and len(tool.description) > 80
            assert tool.output_schema is not None
            assert tool.annotations is not None and tool.annotations.destructive_hint is False
        recall = tools["recall_experience"].input_schema["properties"]
        assert recall["k"]["anyOf"][0]["maximum"] == 20
        assert "description" in recall["task"]
        reward = tools["report_outcome"].input_schema["properties"]["reward"]
        assert reward["anyOf"][0]["minimum"] == -1.0 and reward["anyOf"][0]["maximum"] == 1.0
        assert "report_outcome" in INSTRUCTIONS and "recall_experience" in INSTRUCTIONS


async def test_instructions_reach_the_host(settings, embedder):
    async with Client(build_server(settings, lambda: embedder)) as client:
        assert client.instructions == INSTRUCTIONS


async def test_learning_changes_the_ranking(settings, embedder):
    async with Client(build_server(settings, lambda: embedder)) as client:
        await learning_loop(client, "github.com/acme/app")


async def test_default_namespace_and_scope_survive_every_tool(settings, embedder):
    async with Client(build_server(settings, lambda: embedder)) as client:
        intent, experience = MEMORIES[1]
        here = await call(client, "store_experience", intent=intent, experience=experience)
        assert here["namespace"] == "github.com/acme/app"
        other = await call(
            client,
            "store_experience",
            intent=intent,
            experience=experience,
            namespace="github.com/acme/other",
        )
        assert other["namespace"] == "github.com/acme/other" and other["id"] != here["id"]
        recalled = await call(client, "recall_experience", task=TASK)
        assert recalled["namespace"] == "github.com/acme/app"
        assert [m["id"] for m in recalled["memories"]] == [here["id"]]
        elsewhere = await call(
            client, "recall_experience", task=TASK, namespace="github.com/acme/other"
        )
        assert [m["id"] for m in elsewhere["memories"]] == [other["id"]]
        empty = await call(
            client, "recall_experience", task=TASK, namespace="github.com/acme/empty"
        )
        assert empty["memories"] == [] and "nothing injected" in empty["message"].lower()
        # a task belongs to the namespace it was recalled in: reporting it from this
        # project's namespace is refused and changes nothing
        refused = await client.call_tool(
            "report_outcome", {"task_id": elsewhere["task_id"], "success": True}
        )
        assert refused.is_error and "belongs to namespace 'github.com/acme/other'" in (
            refused.content[0].text
        )
        # a reflection filed through report_outcome lands in the recalled task's namespace
        out = await call(
            client,
            "report_outcome",
            task_id=elsewhere["task_id"],
            success=False,
            reflection="B failed here: the queue had no join(); use an Event instead",
            namespace="github.com/acme/other",
        )
        assert out["status"] == "updated" and out["reward"] == -1.0
        # the memory resource reads this project's namespace only
        with pytest.raises(MCPError, match="no memory with id"):
            await client.read_resource(f"memrl://memory/{out['reflection_id']}")
        mine = json.loads((await client.read_resource(f"memrl://memory/{here['id']}")).contents[0].text)
        assert mine["namespace"] == "github.com/acme/app"
        stats = json.loads((await client.read_resource("memrl://stats")).contents[0].text)
        by_ns = {s["namespace"]: s for s in stats}
        assert by_ns["github.com/acme/app"]["memories"] == 1
        assert by_ns["github.com/acme/other"]["memories"] == 2
        assert by_ns["github.com/acme/other"]["tasks_reported"] == 1


@pytest.mark.parametrize(
    ("tool", "args", "expected"),
    [
        (
            "report_outcome",
            {"task_id": "t-unknown", "success": True},
            "unknown task id",
        ),
        ("report_outcome", {"task_id": "t-unknown"}, "give success"),
        (
            "report_outcome",
            {"task_id": "t-x", "reward": 1.5},
            "invalid arguments for report_outcome: reward must be at most 1.0, got a number 1.5",
        ),
        ("recall_experience", {"task": "   "}, "task is empty"),
        (
            "recall_experience",
            {"task": "x", "namespace": "bad namespace!"},
            "namespace 'bad namespace!' is invalid",
        ),
        (
            "store_experience",
            {"intent": "x", "experience": "y", "kind": "maybe"},
            "kind must be one of 'success', 'failure' or 'note', got a string 'maybe'",
        ),
        (
            "store_experience",
            {"intent": "x", "experience": "y" * 20_001},
            "experience has 20001 characters, more than the limit of 20000: shorten it",
        ),
        (
            "store_experience",
            {"intent": "x", "experience": "y", "task_id": "t-nope"},
            "is unknown",
        ),
    ],
)
async def test_bad_input_is_a_tool_error_that_says_what_to_fix(
    settings, embedder, tool, args, expected
):
    async with Client(build_server(settings, lambda: embedder)) as client:
        result = await client.call_tool(tool, args)
        assert result.is_error
        text = result.content[0].text
        assert expected in text
        assert "Traceback" not in text
        stats = json.loads((await client.read_resource("memrl://stats")).contents[0].text)
        assert all(s["memories"] == 0 for s in stats)


async def test_internal_errors_are_hidden(settings, embedder):
    class Broken:
        model_id, dim = embedder.model_id, embedder.dim

        def embed(self, texts):
            raise RuntimeError("secret internal detail /etc/passwd")

        def embed_query(self, text):
            raise RuntimeError("secret internal detail /etc/passwd")

    async with Client(build_server(settings, Broken)) as client:
        result = await client.call_tool("recall_experience", {"task": "anything"})
        assert result.is_error
        assert "secret" not in result.content[0].text
        assert "internal error" in result.content[0].text


async def test_handshake_does_not_wait_for_the_model(settings, embedder):
    """tools/list answers while the model is still loading; a recall waits for it."""
    release = threading.Event()

    def slow_model():
        release.wait(30)
        return embedder

    async with Client(build_server(settings, slow_model)) as client:
        tools = await client.list_tools()  # answered although the model is not loaded
        assert len(tools.tools) == 3
        assert not release.is_set()
        results: list[dict] = []

        async def recall():
            results.append(await call(client, "recall_experience", task=TASK))

        async with anyio.create_task_group() as tg:
            tg.start_soon(recall)
            await anyio.sleep(0.3)
            assert results == []  # still waiting for the model, not failed
            release.set()
        assert results[0]["memories"] == []


async def test_a_model_that_fails_to_load_gives_a_clear_error(settings):
    from memrl import ModelUnavailableError

    def missing():
        raise ModelUnavailableError(
            "model.onnx is missing: reinstall memrl, or set MEMRL_MODEL_DIR"
        )

    async with Client(build_server(settings, missing)) as client:
        result = await client.call_tool("recall_experience", {"task": "x"})
        assert result.is_error and "MEMRL_MODEL_DIR" in result.content[0].text


async def test_the_default_namespace_is_preloaded_before_the_first_recall(settings, embedder):
    """The loader thread reads the default namespace's search rows along with the model, so
    the first recall does not pay for them."""
    from memrl_server.runtime import MemoryRuntime

    from memrl import Memory, SqliteStorage

    store = SqliteStorage(settings.db_path, embedder.dim, embedder.model_id)
    Memory(store, embedder).store_many(
        Experience(intent=f"task number {i}", experience=f"steps {i}", namespace=ns)
        for i in range(300)
        for ns in (settings.namespace, "another/project")
    )
    store.close()
    runtime = MemoryRuntime(settings, lambda: embedder)
    runtime.acquire()
    try:
        await runtime.memory()
        assert runtime.storage is not None
        index = runtime.storage.index
        # only the default namespace: its float vectors, which a small namespace is scanned by
        assert index.floats.sizes() == {settings.namespace: 300} and index.cache.sizes() == {}
    finally:
        runtime.release()


async def test_the_scan_projection_is_fitted_after_the_memory_is_ready(settings, embedder):
    """The loader leaves the exact scan's projection (tens of ms at 10k rows) until the
    memory answers, then fits it beside the first recalls; the recalls are exact either way."""
    from memrl_server.runtime import MemoryRuntime

    from memrl import Memory, SqliteStorage
    from memrl.storage.sqlite.floats import PROJECT_MIN_ROWS

    store = SqliteStorage(settings.db_path, embedder.dim, embedder.model_id)
    Memory(store, embedder).store_many(
        Experience(intent=f"fix failing test number {i} in the parser", experience=f"steps {i}",
                   namespace=settings.namespace)
        for i in range(PROJECT_MIN_ROWS + 50)
    )
    store.close()
    runtime = MemoryRuntime(settings, lambda: embedder)
    runtime.acquire()
    try:
        memory = await runtime.memory()
        first = memory.recall("fix failing test number 7 in the parser", settings.namespace,
                              dry_run=True)
        assert runtime.storage is not None
        index = runtime.storage.index
        key = next(iter(index.floats._entries))
        for _ in range(200):  # the loader thread fits it right after the memory is ready
            if index.floats._entries[key].view().projection is not None:
                break
            await anyio.sleep(0.05)
        assert index.floats._entries[key].view().projection is not None
        again = memory.recall("fix failing test number 7 in the parser", settings.namespace,
                              dry_run=True)
        assert again.intents == first.intents and len(first.intents) == 5
    finally:
        runtime.release()


@pytest.fixture
def opened_in(monkeypatch):
    """Which thread opened each storage, and whether it was closed again."""
    from memrl_server import runtime as runtime_module

    import memrl

    opened: list[dict[str, object]] = []
    real_open = memrl.open_storage

    def recording(*args, **kwargs):
        storage = real_open(*args, **kwargs)
        entry = {"thread": threading.current_thread().name, "model": args[2], "closed": False}
        real_close = storage.close

        def close() -> None:
            entry["closed"] = True
            real_close()

        storage.close = close
        opened.append(entry)
        return storage

    monkeypatch.setattr(memrl, "open_storage", recording)
    return opened, runtime_module


async def test_the_packaged_model_and_the_database_load_side_by_side(settings, opened_in):
    """With the packaged model (its id and dimension known before it loads) the database
    is opened and preloaded in a thread of its own while the model loads; with a model
    given by its factory, after it; either way one storage stays open, for the right model."""
    from memrl_server.runtime import MemoryRuntime

    from memrl.embeddings import PACKAGED_MODEL_ID

    opened, _ = opened_in
    runtime = MemoryRuntime(settings)
    runtime.acquire()
    try:
        memory = await runtime.memory()
        assert memory.embedder.model_id == PACKAGED_MODEL_ID
        assert memory.recall("fix the csv parser", dry_run=True).candidates == []
    finally:
        runtime.release()
    assert opened == [{"thread": "memrl-storage-opener", "model": PACKAGED_MODEL_ID, "closed": True}]

    opened.clear()
    from fake_embedder import FakeEmbedder

    runtime = MemoryRuntime(settings, lambda: FakeEmbedder(dim=384, model_id="other-model"))
    runtime.acquire()
    try:
        await runtime.memory()
    finally:
        runtime.release()
    assert opened == [{"thread": "memrl-model-loader", "model": "other-model", "closed": True}]


async def test_an_early_database_is_closed_when_the_model_turns_out_otherwise(
    settings, opened_in, monkeypatch
):
    """The default loader gives another model than the packaged one (e.g. a download): the
    early storage is closed and the database opened again for that model; a model that
    fails to load is the error reported, and the early storage is closed too."""
    from fake_embedder import FakeEmbedder
    from memrl_server.runtime import MemoryRuntime

    from memrl import ModelUnavailableError
    from memrl.embeddings import PACKAGED_MODEL_ID

    opened, runtime_module = opened_in
    monkeypatch.setattr(runtime_module, "_load_embedder",
                        lambda s: FakeEmbedder(dim=384, model_id="downloaded-model"))
    runtime = MemoryRuntime(settings)
    runtime.acquire()
    try:
        memory = await runtime.memory()
        assert memory.storage.model_id == "downloaded-model"  # type: ignore[attr-defined]
    finally:
        runtime.release()
    assert [(e["thread"], e["model"], e["closed"]) for e in opened] == [
        ("memrl-storage-opener", PACKAGED_MODEL_ID, True),
        ("memrl-model-loader", "downloaded-model", True),
    ]

    opened.clear()

    def fails(s):
        raise ModelUnavailableError("model.onnx is missing: reinstall memrl")

    monkeypatch.setattr(runtime_module, "_load_embedder", fails)
    runtime = MemoryRuntime(settings)
    runtime.acquire()
    try:
        with pytest.raises(ModelUnavailableError, match="model.onnx is missing"):
            await runtime.memory()
    finally:
        runtime.release()
    assert [(e["thread"], e["closed"]) for e in opened] == [("memrl-storage-opener", True)]


def test_the_server_imports_no_core_before_tools_list() -> None:
    """What `memrl serve` imports before it answers tools/list leaves out the core (numpy,
    the SQLite extension, the model code): the model-loader thread imports it (cold start,
    docs/PERFORMANCE.md)."""
    code = (
        "import sys, memrl_server.cli, memrl_server.commands, memrl_server.app, "
        "memrl_server.runtime;"
        "print(sorted(m for m in ('numpy', 'sqlite_vec', 'sqlite3', 'memrl.memory', "
        "'memrl.embeddings', 'memrl.storage.sqlite', 'memrl.storage.base') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


async def test_a_correction_and_feedback_through_the_tools(settings, embedder):
    """store_experience(supersedes=...) puts the correction in the superseded memory's
    place; report_outcome(feedback=...) credits and archives per memory; bad ids are
    tool errors that name them, with nothing written."""
    async with Client(build_server(settings, lambda: embedder)) as client:
        old = await call(
            client, "store_experience", intent="run the test suite",
            experience="python -m unittest discover",
        )
        other = await call(
            client, "store_experience", intent="run the test suite",
            experience="clear the pytest cache first",
        )
        refused = await client.call_tool(
            "store_experience",
            {"intent": "run the test suite", "experience": "pytest -x", "supersedes": [old["id"], 777]},
        )
        assert refused.is_error and "supersedes: no memory has id [777]" in refused.content[0].text
        fix = await call(
            client, "store_experience", intent="run the test suite",
            experience="pytest -x -q", supersedes=[old["id"]],
        )
        assert fix["superseded"] == [old["id"]] and "supersedes memories" in fix["message"]
        recalled = await call(client, "recall_experience", task="run the tests")
        ids = [m["id"] for m in recalled["memories"]]
        assert fix["id"] in ids and old["id"] not in ids

        stray = await client.call_tool(
            "report_outcome",
            {"task_id": recalled["task_id"], "success": True, "feedback": {str(old["id"]): "useful"}},
        )
        assert stray.is_error and f"feedback names memories [{old['id']}]" in stray.content[0].text
        out = await call(
            client, "report_outcome", task_id=recalled["task_id"], success=True,
            feedback={str(fix["id"]): "useful", str(other["id"]): "outdated"},
        )
        assert out["archived"] == [other["id"]]
        assert [c["id"] for c in out["credited"]] == [fix["id"]]
        stats = json.loads((await client.read_resource("memrl://stats")).contents[0].text)
        assert (stats[0]["memories"], stats[0]["archived"]) == (1, 2)
