"""The answers a hook prints on stdout (exit code 0), in the host's JSON format.

Claude Code (and Codex, same wire format): `hookSpecificOutput.additionalContext` adds text
to the model's context on SessionStart and UserPromptSubmit; a Stop hook keeps the model
going with `{"decision": "block", "reason": ...}`. Printing nothing changes nothing.
"""

from __future__ import annotations

import json
from typing import Any, TextIO


def add_context(event_name: str, text: str) -> dict[str, Any]:
    return {"hookSpecificOutput": {"hookEventName": event_name, "additionalContext": text}}


def block_stop(reason: str) -> dict[str, Any]:
    return {"decision": "block", "reason": reason}


def emit(answer: dict[str, Any] | None, stream: TextIO) -> None:
    if answer:
        stream.write(json.dumps(answer, ensure_ascii=False))
        stream.write("\n")
        stream.flush()
