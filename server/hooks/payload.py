"""One hook payload: read from stdin, checked, and reduced to the fields the hooks use.

Field names are the host's (Claude Code's hooks reference; Codex sends the same names):
every event has `session_id`, `cwd`, `hook_event_name`; UserPromptSubmit adds `prompt`;
PostToolUse `tool_name`, `tool_input`, `tool_response` (for Bash: stdout, stderr,
interrupted, isImage; no exit code); PostToolUseFailure `tool_name`, `tool_input`, `error`
("Exit code N\\n<output>") and `is_interrupt`; Stop `stop_hook_active`; SessionStart
`source`; SessionEnd `reason`. Nothing else is relied on.
"""

from __future__ import annotations

import json
import os
import select
import time
from typing import Any, BinaryIO

MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
READ_TIMEOUT = 10.0  # seconds without a complete payload before giving up


class PayloadError(ValueError):
    """The payload is not a hook payload this command can use."""


def read_payload(stream: BinaryIO, timeout: float = READ_TIMEOUT) -> dict[str, Any]:
    """The JSON object on `stream`. Stops as soon as the object is complete, without
    waiting for end of file: a host that keeps stdin open (reported for Claude Code's
    SessionEnd) must not make the hook hang until its timeout."""
    if os.name != "posix":  # select() takes sockets only there: read to end of file
        return _decode(stream.read(MAX_PAYLOAD_BYTES + 1))
    fd = stream.fileno()
    chunks: list[bytes] = []
    size = 0
    deadline = time.monotonic() + timeout
    while True:
        wait = deadline - time.monotonic()
        if wait <= 0:
            raise PayloadError(f"no complete JSON payload on stdin within {timeout:.0f} s")
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return _decode(b"".join(chunks))
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_PAYLOAD_BYTES:
            raise PayloadError(f"payload larger than {MAX_PAYLOAD_BYTES} bytes")
        if chunk.rstrip().endswith(b"}"):
            try:
                return _decode(b"".join(chunks))
            except PayloadError:
                continue  # a '}' inside a string, or more to come


def _decode(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise PayloadError("empty payload on stdin: a hook payload is one JSON object")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PayloadError(f"payload is not JSON: {e}") from e
    if not isinstance(data, dict):
        raise PayloadError(f"payload is a JSON {type(data).__name__}, not an object")
    return data


class HookEvent:
    """The fields of one payload that the hooks use, type-checked."""

    __slots__ = (
        "name",
        "session_id",
        "cwd",
        "prompt",
        "tool_name",
        "tool_input",
        "tool_response",
        "error",
        "interrupted",
        "stop_hook_active",
        "source",
        "reason",
    )

    def __init__(self, data: dict[str, Any]) -> None:
        self.name = _text(data, "hook_event_name", required=True)
        self.session_id = _text(data, "session_id", required=True)
        self.cwd = _text(data, "cwd") or os.getcwd()
        self.prompt = _text(data, "prompt")
        self.tool_name = _text(data, "tool_name")
        tool_input = data.get("tool_input")
        self.tool_input: dict[str, Any] = tool_input if isinstance(tool_input, dict) else {}
        self.tool_response: Any = data.get("tool_response")
        self.error = _text(data, "error")
        self.interrupted = data.get("is_interrupt") is True or (
            isinstance(self.tool_response, dict) and self.tool_response.get("interrupted") is True
        )
        self.stop_hook_active = data.get("stop_hook_active") is True
        self.source = _text(data, "source")
        self.reason = _text(data, "reason")

    @property
    def command(self) -> str:
        """The shell command of a Bash tool call ('' for any other tool)."""
        value = self.tool_input.get("command")
        return value if isinstance(value, str) else ""


def _text(data: dict[str, Any], key: str, required: bool = False) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise PayloadError(f"payload field {key!r} must be a non-empty string, got {value!r}")
    return value
