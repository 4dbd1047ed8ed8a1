"""JSON Lines export and import of memories, with their Q and statistics.

One JSON object per line. Vectors are not exported: import re-embeds the intents with the
importing side's model, so a file moves between machines and models. Import is all or
nothing: every line is validated before anything is written, and duplicates (same
namespace, intent and experience) are skipped, so importing a file twice changes nothing.

Archived memories are exported only when asked (`archived=True`, `memrl export
--archived`), after the live ones, each with an `archived` object (reason, superseded_by,
archived_at); import stores such a line and archives it at once with its reason (new ids:
superseded_by names an id of the exporting side, kept only in the line).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from . import validation
from .errors import InvalidInputError
from .memory import Experience, Memory

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
    "successes",
    "failures",
    "q_recent",
)


@dataclass(frozen=True)
class ImportReport:
    read: int
    created: int
    skipped_duplicates: int
    redacted: int = 0  # secrets replaced by [REDACTED] before storing
    archived: int = 0  # created, then archived (lines with an `archived` object)


def export_lines(
    memory: Memory, namespace: str | None = None, archived: bool = False
) -> Iterator[str]:
    for row in memory.iter_memories(namespace):
        yield json.dumps({f: getattr(row, f) for f in EXPORT_FIELDS}, ensure_ascii=False)
    if not archived:
        return
    for shelved in memory.iter_archived(namespace):
        record: dict[str, Any] = {f: getattr(shelved.memory, f) for f in EXPORT_FIELDS}
        record["archived"] = {
            "reason": shelved.reason,
            "superseded_by": shelved.superseded_by,
            "archived_at": shelved.archived_at,
        }
        yield json.dumps(record, ensure_ascii=False)


def export_jsonl(
    memory: Memory, out: IO[str], namespace: str | None = None, archived: bool = False
) -> int:
    """Write the memories (and, with `archived`, the archived ones); how many lines."""
    count = 0
    for line in export_lines(memory, namespace, archived):
        out.write(line + "\n")
        count += 1
    return count


def archived_count(memory: Memory, namespace: str | None = None) -> int:
    """How many archived memories the namespace (or the database) holds."""
    return sum(int(r.get("archived") or 0) for r in memory.stats(namespace))


def _number(record: dict[str, Any], key: str, lo: float, hi: float, default: float | None) -> Any:
    value = record.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInputError(f"{key} must be a finite number, got {validation.shown(value)}")
    if not lo <= value <= hi:
        raise InvalidInputError(f"{key} must be in [{lo}, {hi}], got {validation.shown(value)}")
    return value


LEARNED_FIELDS = (
    "q", "n_updates", "last_reward", "created_at", "updated_at", "successes", "failures",
    "q_recent",
)


def _parse(line: str, memory: Memory, namespace: str | None) -> tuple[Experience, dict[str, Any]]:
    """One exported line as the experience to store and the learned values it keeps. Texts
    and metadata are checked (and redacted) by the same write path as every store."""
    cfg = memory.config
    record = json.loads(line)
    if not isinstance(record, dict):
        raise InvalidInputError("each line must be a JSON object")
    metadata = record.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidInputError("metadata must be a JSON object")
    shelved = record.get("archived")
    if shelved is not None and not (isinstance(shelved, dict) and "reason" in shelved):
        raise InvalidInputError("archived must be an object with a reason, as export writes it")
    experience = Experience(
        intent=record.get("intent"),  # type: ignore[arg-type]
        experience=record.get("experience"),  # type: ignore[arg-type]
        kind=record.get("kind", "note"),
        namespace=validation.namespace(namespace or record.get("namespace")),
        metadata=metadata,
        archive_reason=None if shelved is None else shelved["reason"],
    )
    learned = {
        "q": _number(record, "q", -1.0, 1.0, cfg.q_init),
        "n_updates": int(_number(record, "n_updates", 0, 2**62, 0)),
        "last_reward": _number(record, "last_reward", -1.0, 1.0, None),
        "created_at": _number(record, "created_at", 0, 1e11, None),
        "updated_at": _number(record, "updated_at", 0, 1e11, None),
        # evidence (learning.py); an export from before it has none: Q is kept, no count
        "successes": float(_number(record, "successes", 0, 1e15, 0)),
        "failures": float(_number(record, "failures", 0, 1e15, 0)),
        "q_recent": _number(record, "q_recent", -1.0, 1.0, None),
    }
    return experience, learned


def import_jsonl(
    memory: Memory, lines: Iterable[str], namespace: str | None = None
) -> ImportReport:
    """Import an export; `namespace` re-files every memory under one namespace. All lines
    are checked before anything is written; new ids are assigned (exported ids are never
    reused), duplicates are skipped."""
    parsed = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            experience, learned = _parse(line, memory, namespace)
            memory.check_experience(experience)
            parsed.append((experience, learned))
        except (json.JSONDecodeError, InvalidInputError, TypeError, ValueError) as e:
            raise InvalidInputError(f"line {number}: {e}; nothing was imported") from e
    results = memory.store_many([e for e, _ in parsed], learned=[v for _, v in parsed])
    created = sum(1 for r in results if r.created)
    return ImportReport(
        read=len(parsed),
        created=created,
        skipped_duplicates=len(parsed) - created,
        redacted=sum(r.redacted for r in results),
        archived=sum(1 for r in results if r.archived),
    )
