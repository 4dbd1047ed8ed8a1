"""The MCP server: three tools and two resources over the core `Memory`.

Built by `build_server(settings)`; nothing runs at import. The lifespan yields a
`MemoryRuntime` that opens the database and loads the model in the background, so
initialize and tools/list answer at once.
"""

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError, UnexpectedToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BeforeValidator, Field, StrictBool, ValidationError

from memrl import MemoryConfig, MemrlError
from memrl.storage import explain

from . import argument_errors
from .compact import MIN_BUDGET, compact_recall
from .models import (
    CreditedMemory,
    MemoryDetail,
    NamespaceStats,
    OutcomeOutput,
    RecallOutput,
    StoreOutput,
)
from .runtime import MemoryRuntime
from .settings import ServerSettings
from .stdio import serve_stdio
from .team import TeamServer, resolve, visible
from .version import version

if TYPE_CHECKING:  # loaded with the model, after the handshake (runtime.py)
    from memrl import Embedder, Memory

log = logging.getLogger(__name__)
T = TypeVar("T")
# Annotations are evaluated at import (no `from __future__ import annotations`): the SDK
# builds each tool's schema from them, so bounds are module constants.
MAX_INTENT = MemoryConfig().max_intent_chars
MAX_EXPERIENCE = MemoryConfig().max_experience_chars
# Schema bounds, so a 1 MB argument is refused before the core sees it (the core's
# validation.TASK_ID_RE and NAMESPACE_RE allow these lengths).
MAX_TASK_ID = 128
MAX_NAMESPACE = 200
MAX_USED_IDS = 1000

INSTRUCTIONS = """\
This server is a memory of past task experiences that learns which ones actually help.
Use it on every non-trivial task:
1. At the START of a task call recall_experience with a one-sentence description of the task.
   Read the returned memories: 'success' memories are reusable scripts, 'failure' memories say
   what to avoid. Keep the returned task_id.
2. At the END of the task call report_outcome with that task_id and success=true/false
   (success means the tests/checks passed or the user accepted the result). Name in used_ids
   the memories you actually relied on. This is how the memory learns; never skip it.
3. Then store what is worth reusing with store_experience: on success a short reusable script
   (3-5 high-level steps, commands, pitfalls); on failure a reflection (what went wrong, what
   to avoid next time) with kind='failure'. You may instead pass `reflection` to report_outcome.
Never store secrets, credentials or whole files. Memories are scoped to the current project
by default; pass namespace only to reach another project's memory."""

RECALL_DESCRIPTION = """\
Call at the start of every task. Returns the past experiences most likely to help with this
task (selected by similarity and by learned usefulness) and a task_id to pass to
report_outcome when the task ends. An empty list means nothing similar enough is stored."""

REPORT_DESCRIPTION = """\
Call when a task ends, with the task_id from recall_experience and success=true/false (or a
reward in [-1, 1]). The memories injected for that task (or only used_ids, if given) have
their usefulness Q updated. Reporting twice changes nothing. Optionally pass a reflection
(on failure: what went wrong and what to avoid; on success: the reusable steps) to store it.
Optional feedback per recalled memory: {id: "useful"} (credited as a success), "incorrect"
(credited as a failure, whatever the outcome) or "outdated" (moved out of recall)."""

STORE_DESCRIPTION = """\
Store a reusable experience: after a success, a short script (3-5 high-level steps) with
kind='success'; after a failure, a reflection on what went wrong and what to avoid with
kind='failure'; a durable fact with kind='note'. intent is a one-sentence description of the
task it helps with. Storing the same intent + experience again returns the existing id. To
correct a recalled memory that was wrong, store the corrected version with supersedes=[its
id]: the old one leaves recall (archived, restorable) and the correction takes its place."""


async def _call(
    runtime: MemoryRuntime,
    fn: Callable[["Memory"], T],
    error: type[ToolError] | type[ResourceError] = ToolError,
) -> T:
    """Run core work; errors the caller can fix become tool (or resource) errors with the
    core's message, others are logged and reported without their details."""
    try:
        return await runtime.run(fn)
    except Exception as e:  # noqa: BLE001 -- the tool boundary: a tool error, never a crash
        failure = explain(e, runtime.settings.db_path)
        if failure is not None:
            raise error(str(failure)) from e
        log.exception("internal error")
        raise error("internal error in the memory server; details are in its log") from e


def _namespace(
    explicit: str | None,
    default: str,
    error: type[ToolError] | type[ResourceError] = ToolError,
) -> str:
    """The call's namespace: its argument, else the request's X-Memrl-Namespace header,
    else the server's default; refused if the request's token does not cover it (team.py)."""
    try:
        return resolve(explicit, default)
    except MemrlError as e:  # NamespaceNotAllowed, or an invalid namespace
        raise error(str(e)) from e


class MemrlServer(TeamServer):
    """The MCP server: each call's namespace scope from its request (TeamServer, team.py),
    argument errors that read like the core's (argument_errors), a forgiving stdio loop."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as e:
            cause = e.__cause__
            if isinstance(e, UnexpectedToolError) or not isinstance(cause, ValidationError):
                raise
            raise ToolError(argument_errors.explain(name, cause)) from cause

    async def run_stdio_async(self) -> None:
        """The SDK's stdio loop, with lines that are no JSON-RPC message answered (stdio.py)."""
        await serve_stdio(self._lowlevel_server)


def build_server(
    settings: ServerSettings,
    embedder_factory: Callable[[], "Embedder"] | None = None,
    runtime: MemoryRuntime | None = None,
) -> MCPServer[MemoryRuntime]:
    """An MCPServer over the database in `settings`; `embedder_factory` replaces the model in
    tests; `runtime` shares one memory with the inspection page (`memrl serve --http`)."""

    runtime = runtime or MemoryRuntime(settings, embedder_factory)

    @asynccontextmanager
    async def lifespan(_: MCPServer[MemoryRuntime]) -> AsyncIterator[MemoryRuntime]:
        runtime.acquire()  # opens the database and loads the model in the background
        try:
            yield runtime
        finally:
            await anyio.to_thread.run_sync(runtime.release)

    server = MemrlServer(
        name="memrl",
        title="MemRL memory",
        instructions=INSTRUCTIONS,
        version=version(),
        lifespan=lifespan,
    )
    _add_tools(server, settings, runtime)
    _add_resources(server, runtime, settings.namespace)
    return server


def _json_literal_bool(value: object) -> object:
    """`success` is strict: lax parsing took "yes", "on", "1" and 1 for true. The two JSON
    literals written as strings are still taken, because CLI clients that do not read the
    schema send every argument as a string (the MCP Inspector CLI sends `success=true` as
    "true")."""
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"
    return value


NamespaceArg = Annotated[
    str | None,
    Field(
        description="Memory scope; default: the current project (its git repository)",
        max_length=MAX_NAMESPACE,
    ),
]


def _add_tools(
    server: MCPServer[MemoryRuntime], settings: ServerSettings, runtime: MemoryRuntime
) -> None:
    default_ns = settings.namespace

    @server.tool(
        description=RECALL_DESCRIPTION,
        annotations=ToolAnnotations(
            title="Recall experience",
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=False,
        ),
    )
    async def recall_experience(
        task: Annotated[
            str,
            Field(
                description="One-sentence description of the task at hand",
                min_length=1,
                max_length=MAX_INTENT,
            ),
        ],
        namespace: NamespaceArg = None,
        k: Annotated[
            int | None,
            Field(
                description="How many memories to inject (default: server's k2)",
                ge=1,
                le=20,
            ),
        ] = None,
        budget: Annotated[
            int | None,
            Field(
                description="Token budget for the text of the answer: the memories as compact "
                "text within it (the structured output stays whole). Default: no budget",
                ge=MIN_BUDGET,
                le=100_000,
            ),
        ] = None,
    ) -> Annotated[CallToolResult, RecallOutput]:
        ns = _namespace(namespace, default_ns)
        result = await _call(runtime, lambda m: m.recall(task, ns, k=k))
        output = RecallOutput.from_result(result)
        if budget is None:
            text = output.model_dump_json(indent=2)
        else:  # the same text the Claude Code hook injects (server/compact.py)
            text = compact_recall(result.task_id, result.injected, budget).text or result.message
        return CallToolResult(
            content=[TextContent(type="text", text=text)],
            structured_content=output.model_dump(mode="json"),
        )

    @server.tool(
        description=REPORT_DESCRIPTION,
        annotations=ToolAnnotations(
            title="Report task outcome",
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )
    async def report_outcome(
        task_id: Annotated[
            str,
            Field(description="The task_id recall_experience returned", max_length=MAX_TASK_ID),
        ],
        success: Annotated[
            StrictBool | None,
            BeforeValidator(_json_literal_bool),
            Field(description="Did the task succeed? (true or false)"),
        ] = None,
        reward: Annotated[
            float | None,
            Field(description="Instead of success: a reward in [-1, 1]", ge=-1.0, le=1.0),
        ] = None,
        used_ids: Annotated[
            list[int] | None,
            Field(
                description="Ids of the recalled memories you actually used; only they are credited. "
                "Omit to credit all injected memories",
                max_length=MAX_USED_IDS,
            ),
        ] = None,
        reflection: Annotated[
            str | None,
            Field(
                description="Optional lesson to store: on failure what to avoid, on success the steps",
                max_length=MAX_EXPERIENCE,
            ),
        ] = None,
        namespace: NamespaceArg = None,
        feedback: Annotated[
            dict[int, Literal["useful", "incorrect", "outdated"]] | None,
            Field(
                description="Per recalled memory id: useful (credited as a success), "
                "incorrect (credited as a failure whatever the outcome) or outdated "
                "(moved out of recall)",
                max_length=MAX_USED_IDS,
            ),
        ] = None,
    ) -> OutcomeOutput:
        ns = _namespace(namespace, default_ns)
        out = await _call(
            runtime,
            lambda m: m.report(
                task_id,
                success=success,
                reward=reward,
                used_ids=used_ids,
                reflection=reflection,
                namespace=ns,
                feedback=feedback,
            ),
        )
        return OutcomeOutput(
            task_id=out.task_id,
            status="updated" if out.applied else "already_reported",
            reward=out.reward,
            credited=[CreditedMemory(id=i, q=q) for i, q in sorted(out.credited.items())],
            reflection_id=out.reflection_id,
            forgotten=out.forgotten,
            archived=out.archived,
            message=out.message,
        )

    @server.tool(
        description=STORE_DESCRIPTION,
        annotations=ToolAnnotations(
            title="Store experience",
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )
    async def store_experience(
        intent: Annotated[
            str,
            Field(
                description="One-sentence description of the task it helps with",
                min_length=1,
                max_length=MAX_INTENT,
            ),
        ],
        experience: Annotated[
            str,
            Field(
                description="The reusable script, or the reflection",
                min_length=1,
                max_length=MAX_EXPERIENCE,
            ),
        ],
        kind: Annotated[
            Literal["success", "failure", "note"],
            Field(description="success: a script that worked; failure: what to avoid; note: a fact"),
        ] = "success",
        namespace: NamespaceArg = None,
        task_id: Annotated[
            str | None,
            Field(description="The task this came from, if any", max_length=MAX_TASK_ID),
        ] = None,
        metadata: Annotated[
            dict[str, Any] | None, Field(description="Free-form JSON object")
        ] = None,
        supersedes: Annotated[
            list[int] | None,
            Field(
                description="Ids of memories this one corrects (of this namespace): they "
                "leave recall, archived and restorable; this one is recalled instead",
                max_length=MAX_USED_IDS,
            ),
        ] = None,
    ) -> StoreOutput:
        ns = _namespace(namespace, default_ns)
        out = await _call(
            runtime,
            lambda m: m.store_experience(
                intent, experience, kind, ns, task_id=task_id, metadata=metadata,
                supersedes=supersedes,
            ),
        )
        message = (
            f"Stored as memory {out.id}."
            if out.created
            else (f"Already stored as memory {out.id}; nothing added.")
        )
        if out.superseded:
            message += f" It supersedes memories {out.superseded}: archived, out of recall."
        if out.redacted:
            message += (
                f" {out.redacted} secret(s) were replaced by [REDACTED]; never store credentials."
            )
        return StoreOutput(
            id=out.id,
            created=out.created,
            namespace=out.namespace,
            redacted=out.redacted,
            superseded=out.superseded,
            message=message,
        )


def _add_resources(
    server: MCPServer[MemoryRuntime], runtime: MemoryRuntime, namespace: str
) -> None:
    async def read(fn: Callable[["Memory"], T]) -> T:
        return await _call(runtime, fn, ResourceError)

    @server.resource(
        "memrl://stats",
        name="stats",
        mime_type="application/json",
        description="Per-namespace statistics: memories, mean Q, tasks, success rate, and the "
        "similarity gate delta that recall applies",
    )
    async def stats() -> str:
        rows = visible(await read(lambda m: m.stats()))
        return json.dumps([NamespaceStats(**r).model_dump() for r in rows], indent=2)

    @server.resource(
        "memrl://memory/{memory_id}",
        name="memory",
        mime_type="application/json",
        description="One memory of this project's namespace (the X-Memrl-Namespace header "
        "over HTTP) by id, with its Q and statistics",
    )
    async def memory(memory_id: int) -> str:
        ns = _namespace(None, namespace, ResourceError)
        row = await read(lambda m: m.get(int(memory_id), ns))
        if row is None:
            raise ResourceError(f"no memory with id {memory_id} in namespace {ns!r}")
        return MemoryDetail(
            **{k: getattr(row, k) for k in MemoryDetail.model_fields}
        ).model_dump_json(indent=2)
