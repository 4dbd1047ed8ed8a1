"""The host's side of the memory: a real MCP client session with `memrl serve` over stdio.

`McpMemory` launches one server process (its own database file and flags) and calls the
three tools; `NoMemory` is the no-memory baseline with the same interface.
"""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Protocol, TextIO

from .common import MemoryDraft, Recalled


class MemoryToolError(RuntimeError):
    """A memory tool answered with an error result."""


class MemoryBackend(Protocol):
    async def recall(self, task: str) -> tuple[str | None, list[Recalled]]: ...

    async def report(self, task_id: str, success: bool, used_ids: list[int] | None = None,
                     feedback: dict[int, str] | None = None) -> dict[int, float]: ...

    async def store(self, draft: MemoryDraft, task_id: str | None = None) -> int: ...


class NoMemory:
    """Recalls nothing, stores nothing."""

    async def recall(self, task: str) -> tuple[str | None, list[Recalled]]:
        return None, []

    async def report(self, task_id: str, success: bool, used_ids: list[int] | None = None,
                     feedback: dict[int, str] | None = None) -> dict[int, float]:
        return {}

    async def store(self, draft: MemoryDraft, task_id: str | None = None) -> int:
        return 0


def server_command(db: Path | str, flags: list[str], namespace: str,
                   python: str | None = None) -> tuple[str, list[str]]:
    """`memrl serve` run by `python` (default: this interpreter, so this checkout's server)
    over `db`, a SQLite file or a postgresql:// URL."""
    return python or sys.executable, ["-m", "memrl_server", "serve", "--db", str(db),
                                      "--namespace", namespace, *flags]


class McpMemory:
    """One `memrl serve` process over stdio, used through an MCP client session."""

    def __init__(self, db: Path | str, flags: list[str], namespace: str = "eval",
                 errlog: TextIO | None = None, python: str | None = None) -> None:
        self.db = db
        self.flags = flags
        self.python = python
        self.namespace = namespace
        self.errlog = errlog
        self.calls = 0
        self._stack: AsyncExitStack | None = None
        self._client: Any = None

    async def __aenter__(self) -> McpMemory:
        from mcp import Client, StdioServerParameters
        from mcp.client.stdio import stdio_client

        # An absolute path: the server starts in another folder (below), where a relative
        # one would name another file (a nested copy of the path, missing the background).
        db = self.db.resolve() if isinstance(self.db, Path) else self.db
        command, args = server_command(db, self.flags, self.namespace, self.python)
        # The SDK passes only a safe subset of the environment; keep the model directory.
        env = {k: v for k, v in os.environ.items() if k == "MEMRL_MODEL_DIR"}
        # Started in the database's folder, never the caller's: `python -m` puts the working
        # directory first on sys.path, so a server started by another checkout's Python from
        # inside this checkout would import this checkout's `memrl` core.
        # (a PostgreSQL URL has no folder: the temporary directory then)
        folder = db.parent if isinstance(db, Path) else tempfile.gettempdir()
        params = StdioServerParameters(command=command, args=args, env=env, cwd=str(folder))
        errlog = self.errlog or sys.stderr
        self._stack = AsyncExitStack()
        self._client = await self._stack.enter_async_context(
            Client(stdio_client(params, errlog=errlog), read_timeout_seconds=120)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._stack is not None:
            await self._stack.aclose()

    async def _call(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        result = await self._client.call_tool(tool, args)
        if result.is_error:
            text = " ".join(getattr(c, "text", "") for c in result.content)
            raise MemoryToolError(f"{tool} failed: {text}")
        return dict(result.structured_content or {})

    async def recall(self, task: str) -> tuple[str | None, list[Recalled]]:
        out = await self._call("recall_experience", {"task": task})
        memories = [
            Recalled(m["id"], m["kind"], m["intent"], m["experience"], m["q"],
                     m["similarity"], m["score"])
            for m in out["memories"]
        ]
        return out["task_id"], memories

    async def report(self, task_id: str, success: bool, used_ids: list[int] | None = None,
                     feedback: dict[int, str] | None = None) -> dict[int, float]:
        args: dict[str, Any] = {"task_id": task_id, "success": success}
        if used_ids is not None:
            args["used_ids"] = used_ids
        if feedback:
            args["feedback"] = {str(k): v for k, v in feedback.items()}
        out = await self._call("report_outcome", args)
        return {c["id"]: c["q"] for c in out["credited"]}

    async def store(self, draft: MemoryDraft, task_id: str | None = None) -> int:
        args: dict[str, Any] = {"intent": draft.intent, "experience": draft.experience,
                                "kind": draft.kind}
        if task_id is not None:
            args["task_id"] = task_id
        return int((await self._call("store_experience", args))["id"])
