"""The inspection page as an ASGI app, mounted at /ui by `memrl ui` and `memrl serve --http`.

`build_ui(runtime, settings)` wires the views to a `MemoryRuntime` (the same one the MCP
server uses when both run in one process) behind the `Guard` (token, Host, forms,
headers). Core work runs in worker threads (`MemoryRuntime.run`), never on the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from memrl import InvalidInputError, Memory, MemrlError

from ..http import InsecureBindError
from ..runtime import MemoryRuntime, ModelNotReady
from ..settings import ServerSettings
from .guard import COOKIE, Csrf, Guard, loopback_hosts, next_path, session_value
from .render import Renderer
from .views import Views

log = logging.getLogger(__name__)
T = TypeVar("T")
STATIC = Path(__file__).parent / "static"


def build_ui(runtime: MemoryRuntime, settings: ServerSettings) -> Any:
    """The UI app (mount it at /ui); it does not start or stop `runtime`."""
    if not settings.loopback and settings.token is None:
        # A token file alone scopes tokens to namespaces; the page shows all of them.
        raise InsecureBindError(
            f"the inspection page on {settings.host} needs a token for every namespace: "
            "pass --token (or MEMRL_HTTP_TOKEN), or bind 127.0.0.1"
        )
    renderer = Renderer(settings.namespace, Csrf(), login=settings.token is not None)

    async def run(fn: Callable[[Memory], T]) -> T:
        return await runtime.run(fn)

    views = Views(run, runtime.memory, renderer)
    routes = [
        Route("/", views.home),
        Route("/namespaces", views.namespaces),
        Route("/memories", views.memories),
        Route("/memory/{memory_id:int}", views.memory),
        Route("/memory/{memory_id:int}/forget", views.forget_form, methods=["GET"]),
        Route("/memory/{memory_id:int}/forget", views.forget, methods=["POST"]),
        Route("/ledger", views.ledger),
        Route("/learning", views.learning),
        Route("/recall", views.recall),
        Route("/export", views.export),
        Route("/login", _login_form(renderer), methods=["GET"]),
        Route("/login", _login(renderer, settings.token), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC)),
    ]
    app = Starlette(routes=routes, exception_handlers=_error_handlers(renderer))
    hosts = loopback_hosts(settings.port) if settings.loopback else None
    return Guard(app, token=settings.token, hosts=hosts)


def _error_handlers(r: Renderer) -> dict[Any, Callable[..., Any]]:
    async def invalid(request: Request, e: Exception) -> Response:
        return r.error(request, 400, str(e))

    async def not_ready(request: Request, e: Exception) -> Response:
        return r.error(request, 503, f"{e}; reload the page in a moment")

    async def core(request: Request, e: Exception) -> Response:  # e.g. a damaged database
        return r.error(request, 500, str(e))

    async def failure(request: Request, e: Exception) -> Response:
        log.error("internal error in the inspection page: %r", e)
        return r.error(request, 500, "internal error; details are in the server's log")

    return {
        InvalidInputError: invalid,
        ModelNotReady: not_ready,
        MemrlError: core,
        Exception: failure,
    }


def _login_form(r: Renderer) -> Callable[[Request], Any]:
    async def login_form(request: Request) -> Response:
        return r.page(request, "login.html", None, next=next_path(request, r.base(request) + "/"))

    return login_form


def _login(r: Renderer, token: str | None) -> Callable[[Request], Any]:
    async def login(request: Request) -> Response:
        form = await request.form()
        given = str(form.get("token", ""))
        target = next_path(request, r.base(request) + "/")
        if token is None:
            return RedirectResponse(target, 303)
        if not r.csrf.ok(form.get("csrf")) or given != token:
            page = r.page(request, "login.html", None, 401, next=target, wrong=True)
            return page
        response = RedirectResponse(target, 303)
        response.set_cookie(
            COOKIE, session_value(token), httponly=True, samesite="strict", path=r.base(request) or "/"
        )
        return response

    return login


def standalone_app(runtime: MemoryRuntime, settings: ServerSettings) -> Starlette:
    """`memrl ui`: the page at /ui (/ redirects there); the app's lifespan starts and stops
    the runtime (database and model)."""
    from contextlib import asynccontextmanager

    import anyio.to_thread

    @asynccontextmanager
    async def lifespan(_: Starlette) -> Any:
        runtime.acquire()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(runtime.release)

    async def root(request: Request) -> Response:
        return RedirectResponse("/ui/", 307)

    return Starlette(
        routes=[Route("/", root), Mount("/ui", build_ui(runtime, settings))], lifespan=lifespan
    )


def with_ui(app: Any, ui: Any) -> Any:
    """`memrl serve --http`: requests under /ui go to the page (which checks the token
    itself, also from its log-in cookie); everything else, lifespan included, to `app`."""
    mounted = Starlette(routes=[Mount("/ui", ui)])

    async def dispatch(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == "/ui" or path.startswith("/ui/")):
            await mounted(scope, receive, send)
        else:
            await app(scope, receive, send)

    return dispatch
