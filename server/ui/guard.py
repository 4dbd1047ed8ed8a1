"""Who may open the page, and what a page may do in the browser.

- **Token.** With a bearer token configured (required off loopback, as for `memrl serve
  --http`), a request needs `Authorization: Bearer <token>` or the session cookie that
  `/login` sets after the token was typed in (a browser cannot add the header itself).
  The cookie holds an HMAC of the token, never the token, and is `HttpOnly` and
  `SameSite=Strict`, so another site's form cannot ride on it.
- **Host.** On a loopback bind the Host header must name this machine: a page of another
  site that rebinds its DNS name to 127.0.0.1 gets 421 instead of the memory.
- **Forms.** POST needs a same-origin `Origin` when the browser sends one, and the page's
  CSRF value (a per-process secret in every form; `check_csrf`).
- **Headers.** A Content-Security-Policy without scripts: memories are text written by
  agents and are escaped on the way in to the HTML, and even an escape missed somewhere
  could not run. `Server-Timing` carries the server's time for the response.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.requests import Request

COOKIE = "memrl_ui"
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]
PUBLIC_PATHS = ("/login", "/static/style.css")


def session_value(token: str) -> str:
    return hmac.new(token.encode(), b"memrl-ui-session", hashlib.sha256).hexdigest()


def loopback_hosts(port: int) -> frozenset[str]:
    names = ("127.0.0.1", "localhost", "[::1]")
    return frozenset([*names, *(f"{n}:{port}" for n in names)])


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _route_path(scope: dict[str, Any]) -> str:
    """The path below the mount point (/ui)."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _authorised(scope: dict[str, Any], token: str) -> bool:
    auth = _header(scope, b"authorization") or ""
    scheme, _, given = auth.strip().partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return True
    cookie = SimpleCookie()
    cookie.load(_header(scope, b"cookie") or "")
    morsel = cookie.get(COOKIE)
    return morsel is not None and hmac.compare_digest(morsel.value, session_value(token))


async def _respond(send: Any, status: int, text: str, extra: Iterable[tuple[bytes, bytes]] = ()) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), *SECURITY_HEADERS, *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text.encode()})


class Guard:
    """ASGI middleware in front of the UI app (see the module docstring)."""

    def __init__(self, app: Any, *, token: str | None, hosts: frozenset[str] | None) -> None:
        self.app = app
        self.token = token
        self.hosts = hosts

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(send)
            return

        started = time.perf_counter()

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                # the server's share of a page load, readable by the browser's Navigation Timing
                took = f"app;dur={(time.perf_counter() - started) * 1000:.1f}".encode()
                message["headers"] = [
                    *message.get("headers", []), *SECURITY_HEADERS, (b"server-timing", took)
                ]
            await send(message)

        await self.app(scope, receive, with_headers)

    def _refusal(self, scope: dict[str, Any]) -> Any:
        host = (_header(scope, b"host") or "").lower()
        if self.hosts is not None and host not in self.hosts:
            return lambda send: _respond(send, 421, f"unexpected Host header {host!r}: open the page at 127.0.0.1")
        origin = _header(scope, b"origin")
        if scope["method"] == "POST" and origin not in (None, "null") and urlsplit(origin).netloc.lower() != host:
            return lambda send: _respond(send, 403, "cross-site form refused")
        if self.token is None or _route_path(scope) in PUBLIC_PATHS:
            return None
        if _authorised(scope, self.token):
            return None
        root = scope.get("root_path", "")
        if scope["method"] == "GET":
            login = f"{root}/login?next={quote(scope['path'])}"
            return lambda send: _respond(send, 303, "log in first", [(b"location", login.encode())])
        return lambda send: _respond(send, 401, f"missing or wrong token: log in at {root}/login")


class Csrf:
    """A per-process secret in every form; a POST without it is refused."""

    def __init__(self) -> None:
        self.value = secrets.token_urlsafe(32)

    def ok(self, given: object) -> bool:
        return isinstance(given, str) and hmac.compare_digest(given.encode(), self.value.encode())


def next_path(request: Request, default: str) -> str:
    """Where to go after logging in: a path of this page only (no open redirect)."""
    wanted = request.query_params.get("next", "")
    base = request.scope.get("root_path", "")
    return wanted if wanted.startswith(base + "/") and "//" not in wanted else default
