"""Schema validation errors of tool arguments, said the way the core says its errors.

The SDK reports arguments that fail the input schema with pydantic's text: several lines
per field, the type codes, a documentation URL, the input echoed. `explain` turns each into
one clause naming the argument, what was wrong and what to send instead, with bounded
echoes of the value.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from memrl.validation import shown

MAX_CLAUSES = 4


def _described(value: object) -> str:
    """A bad value as the caller sent it, in JSON's words, bounded."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"a number {shown(value)}"
    if isinstance(value, str):
        return f"a string {shown(value)}"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} items"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _size(value: object) -> int:
    return len(value) if hasattr(value, "__len__") else 0  # type: ignore[arg-type]


def _clause(err: Any) -> str:
    name = ".".join(str(part) for part in err["loc"]) or "arguments"
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    got = f"got {_described(value)}"
    messages = {
        "missing": f"{name} is required",
        "string_too_long": f"{name} has {_size(value)} characters, more than the limit of "
        f"{ctx.get('max_length')}: shorten it",
        "string_too_short": f"{name} is empty: give a non-empty text",
        "too_long": f"{name} has {_size(value)} items, more than the limit of "
        f"{ctx.get('max_length')}",
        "bool_type": f"{name} must be true or false, {got}",
        "bool_parsing": f"{name} must be true or false, {got}",
        "int_type": f"{name} must be an integer, {got}",
        "int_parsing": f"{name} must be an integer, {got}",
        "int_from_float": f"{name} must be an integer, {got}",
        "float_type": f"{name} must be a number, {got}",
        "float_parsing": f"{name} must be a number, {got}",
        "finite_number": f"{name} must be a finite number, {got}",
        "string_type": f"{name} must be a string, {got}",
        "list_type": f"{name} must be a list, {got}",
        "dict_type": f"{name} must be a JSON object, {got}",
        "greater_than_equal": f"{name} must be at least {ctx.get('ge')}, {got}",
        "less_than_equal": f"{name} must be at most {ctx.get('le')}, {got}",
        "string_unicode": f"{name} contains an invalid character (a lone UTF-16 surrogate): "
        "send valid Unicode",
        "string_pattern_mismatch": f"{name} {shown(value)} does not have the expected form",
        "literal_error": f"{name} must be one of {ctx.get('expected')}, {got}",
    }
    return messages.get(kind, f"{name}: {err.get('msg', 'invalid value')}")


def explain(tool: str, error: ValidationError) -> str:
    """One line: `tool: clause; clause` for the first few invalid arguments."""
    clauses = list(dict.fromkeys(_clause(e) for e in error.errors(include_url=False)))
    more = len(clauses) - MAX_CLAUSES
    text = "; ".join(clauses[:MAX_CLAUSES]) + (f"; and {more} more" if more > 0 else "")
    return f"invalid arguments for {tool}: {text}"
