"""Streamable HTTP transport with an optional bearer token.

Binding 127.0.0.1 needs no token. Binding any other address requires one (the server
refuses to start without it), and with a token configured every request must carry
`Authorization: Bearer <token>`; others get 401.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from memrl import MemrlError

from .settings import ServerSettings

log = logging.getLogger(__name__)


class BearerTokenMiddleware:
    """ASGI middleware: refuse HTTP requests without the configured bearer token."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b'Bearer realm="memrl"'),
                        ],
                    }
                )
                await send(
                    {
                        "type": "http.response.body",
                        "body": b'{"error": "missing or wrong bearer token: send Authorization: Bearer <token>"}',
                    }
                )
                return
        await self.app(scope, receive, send)


class InsecureBindError(MemrlError):
    """A non-loopback bind without a token."""


def check_bind(settings: ServerSettings) -> None:
    if not settings.loopback and not settings.token:
        raise InsecureBindError(
            f"binding {settings.host} exposes the memory beyond this machine: set a bearer token "
            "with --token or MEMRL_HTTP_TOKEN, or bind 127.0.0.1"
        )


def http_app(server: MCPServer[Any], settings: ServerSettings, ui: Any = None) -> Any:
    """The MCP endpoint at /mcp and, given `ui` (server/ui), the inspection page at /ui:
    the page checks the same token itself (a browser logs in once and keeps a cookie)."""
    check_bind(settings)
    security = None
    if not settings.loopback:  # the token, not the Host header, guards a public bind
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    app: Any = server.streamable_http_app(transport_security=security, host=settings.host)
    app = BearerTokenMiddleware(app, settings.token) if settings.token else app
    if ui is None:
        return app
    from .ui import with_ui

    return with_ui(app, ui)


async def serve_http(server: MCPServer[Any], settings: ServerSettings, ui: Any = None) -> None:
    app = http_app(server, settings, ui)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="warning", lifespan="on"
    )
    log.info("serving streamable HTTP on http://%s:%d/mcp", settings.host, settings.port)
    await uvicorn.Server(config).serve()
