"""Checks on caller input. Each raises InvalidInputError with a message that says what to fix."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .errors import InvalidInputError

NAMESPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$")
TASK_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
KINDS = ("success", "failure", "note")


def text(name: str, value: object, max_chars: int) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string, got {type(value).__name__}")
    stripped = value.strip()
    if not stripped:
        raise InvalidInputError(f"{name} is empty: give a non-empty text")
    if len(stripped) > max_chars:
        raise InvalidInputError(
            f"{name} has {len(stripped)} characters, more than the limit of {max_chars}: "
            "shorten it (keep the reusable steps, drop logs and full file contents)"
        )
    if "\x00" in stripped:
        raise InvalidInputError(f"{name} contains a NUL character: remove it")
    return stripped


def namespace(value: object) -> str:
    """A namespace exactly as given: whitespace anywhere (a trailing newline too) is refused,
    so `nsA` and `nsA\\n` can never become two scopes."""
    if not isinstance(value, str) or not NAMESPACE_RE.fullmatch(value):
        raise InvalidInputError(
            f"namespace {value!r} is invalid: use 1-200 characters from letters, digits and "
            "._:/@+- starting with a letter or digit (e.g. 'github.com/org/repo')"
        )
    return value


def task_id(value: object) -> str:
    if not isinstance(value, str) or not TASK_ID_RE.fullmatch(value):
        raise InvalidInputError(
            f"task id {value!r} is invalid: pass the task_id exactly as recall_experience returned it"
        )
    return value


def kind(value: object) -> str:
    if value not in KINDS:
        raise InvalidInputError(f"kind {value!r} is invalid: use one of {', '.join(KINDS)}")
    return str(value)


def reward(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(f"reward must be a number in [-1, 1], got {value!r}")
    r = float(value)
    if math.isnan(r) or not -1.0 <= r <= 1.0:
        raise InvalidInputError(f"reward must be a number in [-1, 1], got {value!r}")
    return r


def metadata(value: object, max_chars: int) -> str:
    if value is None:
        return "{}"
    if not isinstance(value, dict):
        raise InvalidInputError("metadata must be a JSON object (a dict)")
    try:
        encoded = json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"metadata is not JSON-serialisable: {e}") from e
    if len(encoded) > max_chars:
        raise InvalidInputError(
            f"metadata is {len(encoded)} characters of JSON, more than the limit of {max_chars}"
        )
    return encoded


def memory_ids(name: str, value: Any) -> list[int]:
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise InvalidInputError(f"{name} must be a list of integer memory ids")
    return sorted(set(value))
