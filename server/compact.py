"""The compact text of a recall, under a token budget.

One formatter for one job: the Claude Code hook injects exactly this text as
`additionalContext`, and `recall_experience(budget=...)` returns it as the tool's text, so a
host that only speaks MCP gets the same economy. Every memory carries its id (to cite in
`used_ids`) and the text names the task_id. Memories come in rank order; the budget is
shared out fairly (no memory takes more than its share while another is cut), a memory
that does not fit whole is cut with an ellipsis, and the lowest-ranked ones are dropped
when even a short entry would not fit. `shown` lists the ids that made it into the text:
only those can have helped the model, so only those should be credited.

Tokens are counted by `approx_tokens` (stdlib only; no tokenizer is loaded for this).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple, Protocol

MIN_BUDGET = 50  # below this not even the header and one short memory fit
MIN_ENTRY_TOKENS = 24  # an entry shorter than this is an id and half an intent: useless
INTENT_CHARS = 160  # the intent is a one-line label; its experience carries the content
ELLIPSIS = " …"


class MemoryLike(Protocol):
    """A recalled memory: the core's `Recalled` and the tool's `RecalledMemory` both fit."""

    @property
    def id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def intent(self) -> str: ...
    @property
    def experience(self) -> str: ...
    @property
    def q(self) -> float: ...


class CompactRecall(NamedTuple):
    text: str  # empty when no memory was shown
    shown: list[int]  # ids in the text, in rank order
    tokens: int  # approx_tokens(text)


def approx_tokens(text: str) -> int:
    """Tokens of `text`, approximated without a tokenizer: one per 4 ASCII characters (the
    usual ratio of BPE tokenizers on English and code) plus one per non-ASCII character
    (about right for CJK, high for accented Latin). On injected contexts it gives 0.94-0.96 of
    the packaged WordPiece tokenizer's count (memrl-bench --hooks; docs/HOOKS.md)."""
    if text.isascii():
        return -(-len(text) // 4)
    non_ascii = sum(1 for ch in text if ord(ch) > 127)
    return -(-(len(text) - non_ascii) // 4) + non_ascii


def compact_recall(
    task_id: str | None, memories: Sequence[MemoryLike], budget: int
) -> CompactRecall:
    """The memories (best first) as text of at most `budget` approximate tokens."""
    if budget < MIN_BUDGET:
        raise ValueError(f"budget must be at least {MIN_BUDGET} tokens, got {budget}")
    if not memories:
        return CompactRecall("", [], 0)
    head = _header(task_id)
    entries = [_entry(m) for m in memories]
    room = budget - approx_tokens(head) - 1
    caps = _fitting_caps([approx_tokens(e) + 1 for e in entries], room)
    parts = [head]
    shown: list[int] = []
    for memory, entry, cap in zip(memories, entries, caps):
        parts.append(_cut(entry, cap - 1))
        shown.append(memory.id)
    text = "\n".join(parts)
    while approx_tokens(text) > budget and len(parts) > 1:  # rounding across joins; rare
        parts.pop()
        shown.pop()
        text = "\n".join(parts)
    if not shown:
        return CompactRecall("", [], 0)
    return CompactRecall(text, shown, approx_tokens(text))


def _header(task_id: str | None) -> str:
    task = f"task_id {task_id}" if task_id else "dry run, no task_id"
    return (
        f"memrl memories for this task ({task}), most useful first; "
        "success = steps that worked, failure = what to avoid. "
        "Cite the ids you rely on as used_ids when reporting the outcome."
    )


def _entry(memory: MemoryLike) -> str:
    intent = " ".join(memory.intent.split())
    if len(intent) > INTENT_CHARS:
        intent = intent[: INTENT_CHARS - len(ELLIPSIS)] + ELLIPSIS
    experience = re.sub(r"\n\s*\n+", "\n", memory.experience.strip())
    body = "\n".join("  " + line.rstrip() for line in experience.splitlines())
    return f"#{memory.id} {memory.kind} (q {memory.q:+.2f}): {intent}\n{body}"


def _fitting_caps(costs: list[int], room: int) -> list[int]:
    """Token caps for the first n entries, n as large as lets every entry keep at least
    MIN_ENTRY_TOKENS (or all of itself, if shorter)."""
    for n in range(len(costs), 0, -1):
        caps = _fair_shares(costs[:n], room)
        if all(cap >= min(cost, MIN_ENTRY_TOKENS) for cap, cost in zip(caps, costs)):
            return caps
    return []


def _fair_shares(costs: list[int], room: int) -> list[int]:
    """Water-filling: entries smaller than an equal share keep their size, the rest split
    what is left equally (three memories under 600 tokens: each up to ~190 unless another
    is shorter)."""
    caps = [0] * len(costs)
    pending = sorted(range(len(costs)), key=costs.__getitem__)
    left = room
    while pending:
        share = left // len(pending)
        smallest = pending[0]
        if costs[smallest] > share:
            for i in pending:
                caps[i] = share
            break
        caps[smallest] = costs[smallest]
        left -= costs[smallest]
        pending.pop(0)
    return caps


def _cut(entry: str, cap: int) -> str:
    """`entry` shortened (with an ellipsis) to at most `cap` approximate tokens."""
    if approx_tokens(entry) <= cap:
        return entry
    keep = len(entry)
    while keep > 0:
        over = approx_tokens(entry[:keep]) + approx_tokens(ELLIPSIS) - cap
        if over <= 0:
            break
        keep -= max(1, over * 4 if entry[:keep].isascii() else over)
    return entry[: max(keep, 0)].rstrip() + ELLIPSIS
