"""JSON Lines export and import of memories, with their Q and statistics.

One JSON object per line. Vectors are not exported: import re-embeds the intents with the
importing side's model, so a file moves between machines and models. Import is all or
nothing: every line is validated before anything is written, and duplicates (same
namespace, intent and experience) are skipped, so importing a file twice changes nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from . import validation
from .errors import InvalidInputError
from .memory import Memory, content_hash
from .redaction import clean_metadata, clean_text
from .store import NewMemory

EXPORT_FIELDS = (
    "id",
    "namespace",
    "intent",
    "experience",
    "kind",
    "q",
    "n_updates",
    "last_reward",
    "created_at",
    "updated_at",
    "metadata",
    "model_id",
    "source_task_id",
)
BATCH = 256


@dataclass(frozen=True)
class ImportReport:
    read: int
    created: int
    skipped_duplicates: int
    redacted: int = 0  # secrets replaced by [REDACTED] before storing


def export_lines(memory: Memory, namespace: str | None = None) -> Iterator[str]:
    for row in memory.iter_memories(namespace):
        yield json.dumps({f: getattr(row, f) for f in EXPORT_FIELDS}, ensure_ascii=False)


def export_jsonl(memory: Memory, out: IO[str], namespace: str | None = None) -> int:
    count = 0
    for line in export_lines(memory, namespace):
        out.write(line + "\n")
        count += 1
    return count


def _number(record: dict[str, Any], key: str, lo: float, hi: float, default: float | None) -> Any:
    value = record.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInputError(f"{key} must be a finite number, got {validation.shown(value)}")
    if not lo <= value <= hi:
        raise InvalidInputError(f"{key} must be in [{lo}, {hi}], got {validation.shown(value)}")
    return value


def _parse(line: str, memory: Memory, namespace: str | None) -> tuple[dict[str, Any], str, int]:
    """The memory on one line, its metadata as JSON text, and how many secrets were redacted
    (an import goes through the same secret filter as every other write)."""
    cfg = memory.config
    record = json.loads(line)
    if not isinstance(record, dict):
        raise InvalidInputError("each line must be a JSON object")
    on = cfg.redact_secrets
    intent, n_intent = clean_text("intent", record.get("intent"), cfg.max_intent_chars, on)
    experience, n_exp = clean_text(
        "experience", record.get("experience"), cfg.max_experience_chars, on
    )
    meta, n_meta = clean_metadata(record.get("metadata"), cfg.max_metadata_chars, on)
    fields = {
        "namespace": validation.namespace(namespace or record.get("namespace")),
        "intent": intent,
        "experience": experience,
        "kind": validation.kind(record.get("kind", "note")),
        "q": _number(record, "q", -1.0, 1.0, cfg.q_init),
        "n_updates": int(_number(record, "n_updates", 0, 2**62, 0)),
        "last_reward": _number(record, "last_reward", -1.0, 1.0, None),
        "created_at": _number(record, "created_at", 0, 1e11, None),
        "updated_at": _number(record, "updated_at", 0, 1e11, None),
    }
    return fields, meta, n_intent + n_exp + n_meta


def import_jsonl(
    memory: Memory, lines: Iterable[str], namespace: str | None = None
) -> ImportReport:
    """Import an export; `namespace` re-files every memory under one namespace."""
    parsed = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            parsed.append(_parse(line, memory, namespace))
        except (json.JSONDecodeError, InvalidInputError, TypeError, ValueError) as e:
            raise InvalidInputError(f"line {number}: {e}; nothing was imported") from e
    rows: list[NewMemory] = []
    for start in range(0, len(parsed), BATCH):
        chunk = [(f, meta) for f, meta, _ in parsed[start : start + BATCH]]
        vectors = memory.embedder.embed([f["intent"] for f, _ in chunk])
        rows.extend(
            NewMemory(
                content_hash=content_hash(f["intent"], f["experience"]),
                metadata=meta,
                vector=v,
                **f,
            )
            for (f, meta), v in zip(chunk, vectors)
        )
    results = memory.store.insert(rows, memory.config) if rows else []
    created = sum(1 for _, c in results if c)
    return ImportReport(
        read=len(parsed),
        created=created,
        skipped_duplicates=len(parsed) - created,
        redacted=sum(n for _, _, n in parsed),
    )
