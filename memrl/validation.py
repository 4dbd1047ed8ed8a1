"""Checks on caller input. Each raises InvalidInputError with a message that says what to fix."""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any

from .errors import InvalidInputError

NAMESPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$")
TASK_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
KINDS = ("success", "failure", "note")
SHOWN_CHARS = 60  # how much of a bad value an error message repeats


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """`repr(value)`, cut to `limit` characters: an error names what was wrong without
    sending a 1 MB argument back to the caller and into the log."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f"{len(value)} characters" if isinstance(value, str) else type(value).__name__
    return f"{text[: limit - 1]}… ({size})"


def _has_lone_surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


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
    if _has_lone_surrogate(stripped):
        raise InvalidInputError(
            f"{name} contains an invalid character (a lone UTF-16 surrogate): send valid Unicode"
        )
    return stripped


def namespace(value: object) -> str:
    """A namespace exactly as given: whitespace anywhere (a trailing newline too) is refused,
    so `nsA` and `nsA\\n` can never become two scopes. A namespace is stored in every row and
    shown to every host: one that looks like a credential is refused, not stored."""
    if not isinstance(value, str) or not NAMESPACE_RE.fullmatch(value):
        raise InvalidInputError(
            f"namespace {shown(value)} is invalid: use 1-200 characters from letters, digits and "
            "._:/@+- starting with a letter or digit (e.g. 'github.com/org/repo')"
        )
    if _names_a_credential(value):
        raise InvalidInputError(
            "namespace looks like it contains a credential: name the project, not a secret"
        )
    return value


@functools.lru_cache(maxsize=1024)
def _names_a_credential(value: str) -> bool:
    """The secret filter over a namespace; remembered, as a process sees few namespaces and
    checks one on every call (the filter takes ~0.1 ms of a recall's ~1 ms otherwise)."""
    from .redaction import redact  # redaction builds on this module

    return bool(redact(value)[1])


def task_id(value: object) -> str:
    if not isinstance(value, str) or not TASK_ID_RE.fullmatch(value):  # `$` allows a "\n"
        raise InvalidInputError(
            f"task id {shown(value)} is invalid: pass the task_id exactly as recall_experience "
            "returned it"
        )
    return value


def kind(value: object) -> str:
    if value not in KINDS:
        raise InvalidInputError(f"kind {shown(value)} is invalid: use one of {', '.join(KINDS)}")
    return str(value)


def reward(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(f"reward must be a number in [-1, 1], got {shown(value)}")
    r = float(value)
    if math.isnan(r) or not -1.0 <= r <= 1.0:
        raise InvalidInputError(f"reward must be a number in [-1, 1], got {shown(value)}")
    return r


def metadata(value: object, max_chars: int) -> str:
    if value is None:
        return "{}"
    if not isinstance(value, dict):
        raise InvalidInputError("metadata must be a JSON object (a dict)")
    try:
        encoded = json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(
            f"metadata is not JSON-serialisable ({shown(str(e), 120)}): use strings, numbers, "
            "true/false, null, lists and objects"
        ) from e
    except RecursionError as e:
        raise InvalidInputError("metadata is nested too deeply: flatten it") from e
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


VERDICTS = ("useful", "incorrect", "outdated")


def feedback(value: Any) -> list[tuple[int, str]]:
    """report_outcome's per-memory feedback, {memory_id: verdict}, as sorted pairs."""
    if not isinstance(value, dict):
        raise InvalidInputError(
            "feedback must be an object of memory id -> verdict, e.g. {12: 'useful'}"
        )
    out: list[tuple[int, str]] = []
    for key, verdict in value.items():
        if isinstance(key, bool) or not isinstance(key, int):
            raise InvalidInputError(f"feedback keys must be memory ids (integers), got {shown(key)}")
        if verdict not in VERDICTS:
            raise InvalidInputError(
                f"feedback for memory {key} is {shown(verdict)}: use one of {', '.join(VERDICTS)}"
            )
        out.append((key, str(verdict)))
    return sorted(out)
