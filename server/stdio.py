"""The stdio transport, answering the lines the SDK would drop.

The SDK's stdio transport hands a line that is not a JSON-RPC message (broken JSON, a
lone UTF-16 surrogate escape such as "\\ud800", a JSON value that is no message) to the
session as an exception, and the session only logs it: the client gets no answer and
waits for its timeout. Here every line is checked before the SDK sees it; a bad one is
answered with a JSON-RPC error (-32700 parse error, -32600 invalid request) carrying the
request's id when the line still shows it, so the client's call fails at once with a
reason. Good lines go to the SDK unchanged.
"""

from __future__ import annotations

import io
import json
import os
import sys
from typing import Any

import anyio
import mcp_types as types
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from memrl.validation import shown


def _request_id(line: str) -> int | str | None:
    """The id of a line Python's json can still read (it accepts lone surrogates)."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, dict):
        return None
    found = message.get("id")
    if isinstance(found, bool) or not isinstance(found, (int, str)):
        return None
    return found if isinstance(found, int) else found.encode("utf-8", "replace").decode()


def _has_lone_surrogate(line: str) -> bool:
    try:
        json.dumps(json.loads(line), ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError, UnicodeEncodeError):
        return True
    return False


def error_for(line: str) -> types.JSONRPCError:
    """The JSON-RPC error that answers a line which is not a valid message."""
    try:
        json.loads(line)
        parsed = True
    except json.JSONDecodeError as e:
        parsed, reason = False, f"{e.msg} at column {e.colno}"
    except (ValueError, RecursionError) as e:  # e.g. nested thousands of levels deep
        parsed, reason = False, type(e).__name__
    if not parsed:
        code, text = types.PARSE_ERROR, f"parse error: the line is not JSON ({reason})"
    elif _has_lone_surrogate(line):
        code, text = (
            types.PARSE_ERROR,
            "parse error: the message contains a lone UTF-16 surrogate escape (e.g. \\ud800), "
            "which is not valid Unicode",
        )
    else:
        code, text = (
            types.INVALID_REQUEST,
            f"invalid request: {shown(line.strip(), 80)} is not a JSON-RPC 2.0 message",
        )
    message = f"{text}; send one JSON-RPC 2.0 message per line, as UTF-8 JSON"
    return types.JSONRPCError(
        jsonrpc="2.0",
        id=_request_id(line),
        error=types.ErrorData(code=code, message=message),
    )


class GuardedLines:
    """The lines of stdin that are JSON-RPC messages; the others are answered here."""

    def __init__(self, source: Any) -> None:
        self._source = source
        self._reply: Any = None

    def reply_with(self, write_stream: Any) -> None:
        self._reply = write_stream

    def __aiter__(self) -> GuardedLines:
        return self

    async def __anext__(self) -> str:
        while True:
            line = await self._source.readline()
            if not line:
                raise StopAsyncIteration
            if not line.strip():
                continue  # a blank line is no message and asks for nothing
            try:
                types.jsonrpc_message_adapter.validate_json(line, by_name=False)
            except ValidationError:
                if self._reply is not None:
                    await self._reply.send(SessionMessage(error_for(line)))
                continue
            return str(line)


def _stdin() -> Any:
    """stdin's bytes through a duplicate descriptor (closing it never closes fd 0), decoded
    as UTF-8 with bad bytes replaced, as the SDK does."""
    raw = os.fdopen(os.dup(sys.stdin.fileno()), "rb")
    return anyio.wrap_file(io.TextIOWrapper(raw, encoding="utf-8", errors="replace"))


async def serve_stdio(lowlevel_server: Any) -> None:
    """Serve one MCP session on stdin/stdout (stdout is the SDK's: it keeps stray prints
    of the process off the protocol stream)."""
    lines = GuardedLines(_stdin())
    async with stdio_server(stdin=lines) as (read_stream, write_stream):  # type: ignore[arg-type]
        lines.reply_with(write_stream)
        await lowlevel_server.run(
            read_stream, write_stream, lowlevel_server.create_initialization_options()
        )
