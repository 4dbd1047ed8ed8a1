"""Streamable HTTP transport with an optional bearer token (or a token file of tokens
scoped to namespaces, team.py).

Binding 127.0.0.1 needs no token. Binding any other address requires one (the server
refuses to start without it), and with a token configured every request must carry
`Authorization: Bearer <token>` (the scheme in any case, as RFC 9110 says); others get 401.

The 401 does not advertise OAuth: MCP clients that see `WWW-Authenticate: Bearer` or find
OAuth metadata under /.well-known start an OAuth flow (fastmcp: "Registration failed:
401"; mcporter: "Launching browser flow"), which this server does not offer. So the 401
names a non-OAuth scheme, and the OAuth discovery paths and the endpoints clients fall
back to (/register, /authorize, /token) answer 404 with a message that names the header.
Some clients still try OAuth on any 401 (mcporter promotes every 401/403 to OAuth, and
the fastmcp CLI uses OAuth for URLs unless given --auth): the README shows how each one
sends the header instead.

The socket is bound before anything else starts: a port in use is one error line, not a
"serving on" log followed by a model that loads for nothing.
"""

from __future__ import annotations

import errno
import hmac
import json
import logging
import socket
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from memrl import MemrlError

from .settings import ServerSettings
from .team import ACCESS_KEY, EVERYTHING, Access, load_tokens

log = logging.getLogger(__name__)

# Discovery paths of the MCP authorization spec (RFC 9728, RFC 8414, OpenID Connect), and
# the endpoints its clients fall back to when discovery finds nothing.
OAUTH_PATHS = (
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
    "/register",
    "/authorize",
    "/token",
)
NO_OAUTH = {
    "error": "this server does not offer OAuth: send the header Authorization: Bearer <token> "
    "(the token given to memrl serve with --token or MEMRL_HTTP_TOKEN)"
}
UNAUTHORIZED = {
    "error": "missing or wrong bearer token: send the header Authorization: Bearer <token> "
    "(the token given to memrl serve with --token or MEMRL_HTTP_TOKEN, or one of its "
    "--token-file)"
}


def _bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The credentials of an `Authorization: Bearer …` header (scheme in any case)."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, credentials = value.decode("latin-1").strip().partition(" ")
            return credentials.strip() if scheme.lower() == "bearer" else None
    return None


async def _respond(send: Any, status: int, body: dict[str, str], extra: list[Any]) -> None:
    headers = [(b"content-type", b"application/json"), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


class BearerTokenMiddleware:
    """ASGI middleware: refuse HTTP requests without a known bearer token, and hand the
    token's namespace access (team.py) to the tools. `--token` is one token for every
    namespace; a token file adds tokens scoped to namespaces."""

    def __init__(self, app: Any, tokens: dict[str, Access]) -> None:
        self.app = app
        self._tokens = [(t.encode(), a) for t, a in tokens.items()]

    def _access(self, given: bytes) -> Access | None:
        found = None
        for token, access in self._tokens:  # compare with every token: constant time
            if hmac.compare_digest(given, token):
                found = access
        return found

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if any(path == p or path.startswith(p + "/") for p in OAUTH_PATHS):
            await _respond(send, 404, NO_OAUTH, [])
            return
        access = self._access((_bearer(scope.get("headers") or []) or "").encode())
        if access is None:
            # A scheme name that is not Bearer: the challenge RFC 9110 asks of a 401,
            # without the OAuth hint MCP clients act on.
            challenge = (b"www-authenticate", b'Token realm="memrl"')
            await _respond(send, 401, UNAUTHORIZED, [challenge])
            return
        scope.setdefault("state", {})[ACCESS_KEY] = access
        await self.app(scope, receive, send)


class InsecureBindError(MemrlError):
    """A non-loopback bind without a token."""


class BindError(MemrlError):
    """The HTTP address cannot be bound (in use, not this machine's, no permission)."""


def check_bind(settings: ServerSettings) -> None:
    if not settings.loopback and not (settings.token or settings.token_file):
        raise InsecureBindError(
            f"binding {settings.host} exposes the memory beyond this machine: set a bearer token "
            "with --token or MEMRL_HTTP_TOKEN, or bind 127.0.0.1"
        )


def bind(settings: ServerSettings) -> socket.socket:
    """A listening-ready socket on host:port, or a BindError that says what to do."""
    where = f"{settings.host}:{settings.port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            settings.host, settings.port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as e:
        raise BindError(f"cannot listen on {where}: {e}; pass --host an address of this machine") from e
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise BindError(
                f"port {settings.port} on {settings.host} is in use (another memrl serve?): stop "
                "that server, or pass another --port"
            ) from e
        raise BindError(f"cannot listen on {where}: {e.strerror}; pass another --host/--port") from e
    sock.set_inheritable(True)
    return sock


def http_app(server: MCPServer[Any], settings: ServerSettings, ui: Any = None) -> Any:
    """The MCP endpoint at /mcp and, given `ui` (server/ui), the inspection page at /ui:
    the page checks the full-access token itself (a browser logs in once, keeps a cookie)."""
    check_bind(settings)
    security = None
    if not settings.loopback:  # the token, not the Host header, guards a public bind
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    app: Any = server.streamable_http_app(transport_security=security, host=settings.host)
    tokens = load_tokens(settings.token_file) if settings.token_file else {}
    if settings.token:
        tokens[settings.token] = EVERYTHING
    app = BearerTokenMiddleware(app, tokens) if tokens else app
    if ui is None:
        return app
    from .ui import with_ui

    return with_ui(app, ui)


async def serve_http(server: MCPServer[Any], settings: ServerSettings, ui: Any = None) -> None:
    sock = bind(settings)  # first: a failed bind must not start the model loading
    app = http_app(server, settings, ui)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    log.info("serving streamable HTTP on http://%s:%d/mcp", settings.host, settings.port)
    await uvicorn.Server(config).serve(sockets=[sock])
