"""The write gate's secret filter: credentials never reach the database.

Memories are replayed into future prompts and shared by every host on the file, so a
token pasted into an experience would leak far from where it was written. Every text that
is stored goes through here first: intents, experiences, reflections, the task text kept in
the ledger, metadata keys and values, and every line of an import. What counts as a secret
comes from two sources: detect-secrets' detectors (memrl/secret_detectors.py) and the
project's rules on top (memrl/secret_rules.py). Both favour precision: they match
credential formats and values assigned to names that say "secret", not arbitrary long
strings, so hashes, UUIDs, base64 images and ordinary code are kept (tests/secret_corpus.py
holds the cases both ways).
"""

from __future__ import annotations

import json
from typing import Any

from . import validation
from .errors import InvalidInputError
from .secret_detectors import detector_spans, keyword_spans
from .secret_rules import (
    keyed_rule_spans,
    keyword_windows,
    names_a_secret,
    plausible_secret_value,
    rule_spans,
)

MARK = "[REDACTED]"


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def redact(text: str) -> tuple[str, int]:
    """`text` with secrets replaced by [REDACTED], and how many were replaced."""
    if not text:
        return text, 0
    found = [*detector_spans(text), *rule_spans(text)]
    for start, end in keyword_windows(text):
        window = text[start:end]
        found.extend(
            (start + s, start + e) for s, e in (*keyword_spans(window), *keyed_rule_spans(window))
        )
    spans = _merged(found)
    spans = [(s, e) for s, e in spans if text[s:e] != MARK]
    out, last = [], 0
    for start, end in spans:
        out.append(text[last:start])
        out.append(MARK)
        last = end
    out.append(text[last:])
    return "".join(out), len(spans)


def redact_json(value: Any, key: str | None = None) -> tuple[Any, int]:
    """A JSON value (metadata) with secrets in its keys and strings redacted.

    A string under a key that names a secret (`{"password": "hunter2"}`) is a secret
    as a whole, although nothing in the value alone says so.
    """
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        total = 0
        for k, v in value.items():
            clean_key, n_key = redact(str(k))
            clean_value, n_value = redact_json(v, str(k))
            while clean_key in out:  # two keys redacted to the same text: keep both
                clean_key += "'"
            out[clean_key] = clean_value
            total += n_key + n_value
        return out, total
    if isinstance(value, list):
        items = [redact_json(v, key) for v in value]
        return [v for v, _ in items], sum(n for _, n in items)
    if isinstance(value, str):
        if key is not None and names_a_secret(key) and plausible_secret_value(value, literal=True):
            return MARK, 1
        return redact(value)
    return value, 0


def clean_text(name: str, value: object, max_chars: int, enabled: bool = True) -> tuple[str, int]:
    """A validated text (see validation.text) with its secrets redacted, and their count."""
    text = validation.text(name, value, max_chars)
    return redact(text) if enabled else (text, 0)


def clean_metadata(value: object, max_chars: int, enabled: bool = True) -> tuple[str, int]:
    """Validated metadata as JSON text with its secrets redacted, and their count."""
    encoded = validation.metadata(value, max_chars)
    if not enabled:
        return encoded, 0
    try:
        cleaned, count = redact_json(json.loads(encoded))
    except RecursionError as e:
        raise InvalidInputError("metadata is nested too deeply: flatten it") from e
    return (json.dumps(cleaned, sort_keys=True) if count else encoded), count
