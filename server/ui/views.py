"""The views of the inspection page: each reads through `Memory` and renders a template.

No SQL here: every figure comes from the core's API (`Memory.stats`, `memories_page`,
`memory_history`, `ledger_page`, `learning_curve`, `recall(dry_run=True)`, `forget`,
and the JSON Lines export), so the page shows any storage backend the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from memrl import Memory
from memrl.transfer import export_lines

from . import params
from .charts import Series, line_chart
from .render import Renderer


class Views:
    def __init__(
        self, run: Callable[[Callable[[Memory], Any]], Any], loaded: Any, r: Renderer
    ) -> None:
        self.run = run  # awaitable: core work in a worker thread
        self.loaded = loaded  # awaitable: the loaded Memory
        self.r = r

    async def home(self, request: Request) -> Response:
        return RedirectResponse(self.r.link(request, "/memories", ns=self.r.default_ns), 303)

    async def namespaces(self, request: Request) -> Response:
        rows = await self.run(lambda m: m.stats())
        return self.r.page(request, "namespaces.html", None, rows=rows)

    async def memories(self, request: Request) -> Response:
        ns = self.r.namespace(request)
        query = params.memory_query(request.query_params)
        page = await self.run(lambda m: m.memories_page(ns, **query))
        return self.r.page(
            request,
            "memories.html",
            ns,
            page=page,
            query=query,
            next_after=params.memory_cursor(page.next_after),
            forgotten=request.query_params.get("forgotten"),
            sorts=params.SORT_LABELS,
        )

    async def memory(self, request: Request) -> Response:
        memory_id = int(request.path_params["memory_id"])
        history = await self.run(lambda m: m.memory_history(memory_id))
        if history.memory is None and history.archived is None and not history.appearances:
            return self.r.error(request, 404, f"no memory with id {memory_id}")
        shown = history.memory or (history.archived.memory if history.archived else None)
        ns = shown.namespace if shown else self.r.namespace(request)
        return self.r.page(request, "memory.html", ns, h=history, memory_id=memory_id)

    async def forget_form(self, request: Request) -> Response:
        memory_id = int(request.path_params["memory_id"])
        row = await self.run(lambda m: m.get(memory_id))
        if row is None:
            return self.r.error(request, 404, f"no memory with id {memory_id} (already forgotten?)")
        return self.r.page(request, "forget.html", row.namespace, m=row)

    async def forget(self, request: Request) -> Response:
        memory_id = int(request.path_params["memory_id"])
        form = await request.form()
        if not self.r.csrf.ok(form.get("csrf")):
            return self.r.error(request, 403, "the form is stale: open the memory again and confirm")
        ns = str(form.get("ns", ""))
        done = await self.run(lambda m: m.forget([memory_id], ns))
        if done.refused:
            return self.r.error(request, 400, f"memory {memory_id} is not in namespace {ns!r}")
        return RedirectResponse(
            self.r.link(request, "/memories", ns=ns, forgotten=str(memory_id)), 303
        )

    async def ledger(self, request: Request) -> Response:
        ns = self.r.namespace(request)
        query = params.ledger_query(request.query_params)
        page = await self.run(lambda m: m.ledger_page(ns, **query))
        return self.r.page(
            request,
            "ledger.html",
            ns,
            page=page,
            next_before=params.ledger_cursor(page.next_before),
            outcomes=params.OUTCOMES,
            gates=params.GATES,
        )

    async def learning(self, request: Request) -> Response:
        ns = self.r.namespace(request)
        window = params.window(request.query_params)
        curve = await self.run(lambda m: m.learning_curve(ns, window=window))
        return self.r.page(
            request, "learning.html", ns, curve=curve, chart=_learning_chart(curve),
            windows=params.WINDOWS, window=window,
        )

    async def recall(self, request: Request) -> Response:
        ns = self.r.namespace(request)
        task = request.query_params.get("task", "")
        k = params.recall_k(request.query_params)
        result = None
        if task.strip():
            result = await self.run(lambda m: m.recall(task, ns, k=k, dry_run=True))
        intents = _intents(result) if result else []
        return self.r.page(request, "recall.html", ns, task=task, k=k, result=result, intents=intents)

    async def export(self, request: Request) -> Response:
        ns = self.r.namespace(request)
        memory = await self.loaded()
        lines = (line + "\n" for line in export_lines(memory, ns))
        name = "".join(c if c.isalnum() or c in "._-" else "_" for c in ns)
        return StreamingResponse(
            lines,
            media_type="application/x-ndjson",
            headers={"content-disposition": f'attachment; filename="memrl-{name}.jsonl"'},
        )


def _intents(result: Any) -> list[tuple[int, str, float, int]]:
    """Phase A: each intent that passed the gate, its text, similarity and memories in the pool."""
    text = {c.intent_id: c.intent for c in result.candidates}
    count: dict[int, int] = {}
    for c in result.candidates:
        count[c.intent_id] = count.get(c.intent_id, 0) + 1
    return [(iid, text.get(iid, "?"), sim, count.get(iid, 0)) for iid, sim in result.intents]


def _learning_chart(curve: Any) -> Any:
    """The plot (SVG) and its series, or None before the first task."""
    if not curve.points:
        return None

    def pts(attr: str) -> list[tuple[float, float | None]]:
        return [(p.task, getattr(p, attr)) for p in curve.points]

    series = [
        Series("success rate, all reported tasks", "all", pts("success")),
        Series("with injected memories", "with", pts("with_memories")),
        Series("without injected memories", "without", pts("without_memories")),
        Series("nothing passed the gate (share of tasks)", "gate", pts("gate_empty"), dashed=True),
    ]
    svg = line_chart(
        series,
        (1, max(2, curve.points[-1].task)),
        x_label="task (in recall order)",
        y_label=f"rate over the last {curve.window} tasks",
    )
    return svg, series

