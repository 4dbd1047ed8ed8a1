"""`memrl ui`: the inspection page alone, on 127.0.0.1 by default (port 8766).

Off loopback it follows the server's rule: a bearer token is required (check_bind), and
the page asks for it once at /ui/login.
"""

from __future__ import annotations

import logging

import anyio
import uvicorn

from memrl.paths import redact_url

from ..http import bind, check_bind
from ..runtime import MemoryRuntime
from ..settings import ServerSettings
from .app import standalone_app

log = logging.getLogger(__name__)


async def serve_ui(settings: ServerSettings) -> None:
    sock = bind(settings)  # first: a failed bind must not start the model loading
    app = standalone_app(MemoryRuntime(settings), settings)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    log.info(
        "memrl ui on http://%s:%d/ui/ (db %s, namespace %s)",
        settings.host,
        settings.port,
        redact_url(str(settings.db_path)),
        settings.namespace,
    )
    await uvicorn.Server(config).serve(sockets=[sock])


def run_ui(settings: ServerSettings) -> None:
    check_bind(settings)
    anyio.run(serve_ui, settings)
