"""The page's query strings, read into the arguments of `Memory`'s inspection methods.

Anything malformed raises InvalidInputError with what to fix; the page shows it with a
400, never a stack trace. Cursors travel as `value:id` (memories) and `time:task_id`
(ledger): floats print exactly with repr, and an id never holds the first colon.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from memrl import InvalidInputError

SORT_LABELS = {"q": "Q", "updates": "updates", "created": "created", "id": "id"}
OUTCOMES = {"": "any outcome", "success": "succeeded", "failure": "failed", "pending": "not reported"}
GATES = {"": "any pool", "empty": "nothing passed the gate", "passed": "something passed"}
WINDOWS = (10, 20, 50, 100, 200)


def _float(params: Mapping[str, str], name: str) -> float | None:
    text = params.get(name, "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError as e:
        raise InvalidInputError(f"{name} must be a number, got {text!r}") from e


def _int(params: Mapping[str, str], name: str, default: int) -> int:
    text = params.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError as e:
        raise InvalidInputError(f"{name} must be an integer, got {text!r}") from e


def _cursor(text: str, name: str) -> tuple[str, str]:
    value, sep, key = text.partition(":")
    if not sep or not key:
        raise InvalidInputError(f"{name} must look like VALUE:ID (use the page's links), got {text!r}")
    return value, key


def memory_query(params: Mapping[str, str]) -> dict[str, Any]:
    """Arguments of `Memory.memories_page` (its namespace apart)."""
    query: dict[str, Any] = {
        "sort": params.get("sort") or "q",
        "descending": params.get("order", "desc") != "asc",
        "kind": params.get("kind") or None,
        "q_min": _float(params, "q_min"),
        "q_max": _float(params, "q_max"),
        "text": params.get("text") or None,
    }
    if params.get("after"):
        value, key = _cursor(params["after"], "after")
        try:
            query["after"] = (float(value), int(key))
        except ValueError as e:
            raise InvalidInputError(f"after must look like VALUE:ID, got {params['after']!r}") from e
    return query


def ledger_query(params: Mapping[str, str]) -> dict[str, Any]:
    """Arguments of `Memory.ledger_page` (its namespace apart)."""
    outcome = params.get("outcome") or None
    gate = params.get("gate") or ""
    if gate not in GATES:
        raise InvalidInputError(f"gate must be one of empty, passed, got {gate!r}")
    query: dict[str, Any] = {
        "outcome": outcome,
        "empty_pool": {"": None, "empty": True, "passed": False}[gate],
    }
    if params.get("before"):
        value, key = _cursor(params["before"], "before")
        try:
            query["before"] = (float(value), key)
        except ValueError as e:
            raise InvalidInputError(f"before must look like TIME:TASK_ID, got {params['before']!r}") from e
    return query


def window(params: Mapping[str, str]) -> int:
    return _int(params, "window", 20)


def recall_k(params: Mapping[str, str]) -> int | None:
    k = _int(params, "k", 0)
    if k < 0 or k > 20:
        raise InvalidInputError(f"k must be in 1..20 (or empty for the default), got {k}")
    return k or None


def memory_cursor(after: tuple[float, int] | None) -> str | None:
    return None if after is None else f"{after[0]!r}:{after[1]}"


def ledger_cursor(before: tuple[float, str] | None) -> str | None:
    return None if before is None else f"{before[0]!r}:{before[1]}"
