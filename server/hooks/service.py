"""The memory operations the hooks need, over one open `Memory`: run by the daemon (warm)
or in the hook process itself (`memrl hook --no-daemon`).

Requests and answers are JSON objects (see `HookService.handle`). The session state is
not here: the hooks keep it (state.py), so this side holds nothing a restart would lose.

Credit across one turn (`report_turn`): the hook's recall and any recall the model made
itself in the same turn share one outcome, the turn's verifier verdict. A task the model
already reported keeps the model's outcome and credit (exactly-once: the hook's report of
it is a no-op, `applied` False). Every memory is credited at most once per turn, and of
the hook's own task only the memories shown to the model (under the token budget) count.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memrl import Memory, MemrlError
from memrl.paths import redact_url
from memrl.redaction import redact

from ..compact import compact_recall
from ..namespaces import namespace_for

log = logging.getLogger("memrl.hooks")
MAX_QUERY_CHARS = 2000  # the model reads ~256 tokens of it; the rest only bloats the ledger
NAMESPACE_TTL = 60.0  # seconds a directory's namespace is remembered


def open_hook_memory(db: Path | str | None) -> tuple[Memory, Path | str]:
    """The memory the hooks serve: the same default file and model as `memrl serve`
    (MEMRL_MODEL_DIR and MEMRL_ALLOW_DOWNLOAD read as the CLI reads them)."""
    from memrl import default_db_path, load_embedder, open_memory

    from ..settings import model_source

    model_dir, allow_download = model_source(None, os.environ)
    embedder = load_embedder(model_dir, allow_download=allow_download)
    path = db or default_db_path()
    return open_memory(path, embedder=embedder), path


class HookService:
    def __init__(self, memory: Memory, db_path: Path | str) -> None:
        self.memory = memory
        self.db_path = db_path
        self._namespaces: dict[str, tuple[str, float]] = {}
        self._ops: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "recall": self.recall,
            "report": self.report,
            "stats": self.stats,
            "ping": self.ping,
        }

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """The answer to one request: {"ok": true, ...} or {"ok": false, "error": ...}."""
        op = self._ops.get(str(request.get("op")))
        if op is None:
            return {"ok": False, "error": f"unknown op {request.get('op')!r}"}
        try:
            return {"ok": True, **op(request)}
        except MemrlError as e:
            return {"ok": False, "error": str(e)}

    def namespace(self, request: dict[str, Any]) -> str:
        """The explicit namespace, else the one `memrl serve` derives from the directory."""
        explicit = request.get("namespace")
        if explicit:
            return str(explicit)
        cwd = str(request.get("cwd") or os.getcwd())
        cached = self._namespaces.get(cwd)
        if cached and time.monotonic() - cached[1] < NAMESPACE_TTL:
            return cached[0]
        name = namespace_for(Path(cwd))
        self._namespaces[cwd] = (name, time.monotonic())
        return name

    def recall(self, request: dict[str, Any]) -> dict[str, Any]:
        namespace = self.namespace(request)
        query = str(request["prompt"]).strip()[:MAX_QUERY_CHARS]
        result = self.memory.recall(query, namespace)
        compact = compact_recall(result.task_id, result.injected, int(request["budget"]))
        return {
            "task_id": result.task_id,
            "namespace": namespace,
            "query": redact(query)[0],
            "context": compact.text,
            "shown": compact.shown,
            "injected": [m.id for m in result.injected],
            "tokens": compact.tokens,
        }

    def report(self, request: dict[str, Any]) -> dict[str, Any]:
        reports = report_turn(
            self.memory,
            str(request["task_id"]),
            [int(i) for i in request.get("shown", [])],
            [str(t) for t in request.get("model_tasks", [])],
            success=request.get("success"),
            reward=request.get("reward"),
        )
        return {"reports": reports}

    def stats(self, request: dict[str, Any]) -> dict[str, Any]:
        namespace = self.namespace(request)
        rows = self.memory.stats(namespace)
        return {"namespace": namespace, "memories": rows[0]["memories"] if rows else 0}

    def ping(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"pid": os.getpid(), "db": redact_url(str(self.db_path))}


def report_turn(
    memory: Memory,
    hook_task: str,
    shown: list[int],
    model_tasks: list[str],
    *,
    success: bool | None = None,
    reward: float | None = None,
) -> list[dict[str, Any]]:
    """Report the turn's outcome on the hook's task and the model's own unreported ones,
    crediting each memory at most once (see the module docstring)."""
    rows = {}
    credited: set[int] = set()
    for task_id in [hook_task, *model_tasks]:
        row = memory.task(task_id)
        if row is not None:
            rows[task_id] = row
            if row.outcome is not None:
                credited.update(row.credited)
    reports: list[dict[str, Any]] = []
    for task_id, row in rows.items():
        if row.outcome is not None:
            reports.append({"task_id": task_id, "status": "already_reported", "credited": []})
            continue
        allowed = shown if task_id == hook_task else row.injected
        ids = [i for i in allowed if i in row.injected and i not in credited]
        out = memory.report(task_id, success=success, reward=reward, used_ids=ids)
        credited.update(out.credited)
        reports.append(
            {
                "task_id": task_id,
                "status": "updated" if out.applied else "already_reported",
                "reward": out.reward,
                "credited": sorted(out.credited) if out.applied else [],
            }
        )
    return reports
