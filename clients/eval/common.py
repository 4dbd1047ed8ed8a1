"""Types shared by the environments, agents and the harness."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Task:
    """One benchmark task: `query` is what the host recalls with and what the agent reads."""

    env: str
    task_id: str
    query: str
    data: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Recalled:
    """One memory injected into the agent's context by recall_experience."""

    id: int
    kind: str
    intent: str
    experience: str
    q: float = 0.0
    similarity: float = 0.0
    score: float = 0.0


@dataclass(frozen=True)
class Outcome:
    """What the environment's checker said about one attempt, plus what the agent did."""

    success: bool
    artifact: str  # the submitted code, or the played actions one per line
    approach: str  # short id of the artifact (a content hash), quoted in memories
    detail: str = ""  # the checker's message (first failing assertion, final score, ...)
    reused: int | None = None  # id of the memory whose artifact was replayed, if any
    note: str = ""  # the agent's own account of what went wrong, for its reflection
    used: tuple[int, ...] | None = None  # injected memories it acted on (None: cannot tell)


@dataclass(frozen=True)
class MemoryDraft:
    """What the host stores after a task (intent, experience text, kind)."""

    intent: str
    experience: str
    kind: str
    source: str | None = field(default=None, compare=False)  # the task it was written for


class Agent(Protocol):
    """The frozen-LLM stand-in: attempts a task with injected memories, then writes a memory."""

    name: str

    def attempt(self, task: Task, memories: list[Recalled], key: tuple[Any, ...]) -> Outcome: ...

    def write_memory(self, task: Task, outcome: Outcome) -> MemoryDraft: ...


def train_key(seed: int, task: Task, epoch: int) -> tuple[Any, ...]:
    """The random key of a training attempt; the same for every policy."""
    return (seed, task.env, task.task_id, epoch)


def epoch_of(key: tuple[Any, ...]) -> int | None:
    """The epoch of a training attempt's key (None for bank and transfer attempts)."""
    if len(key) == 4 and isinstance(key[3], int) and not isinstance(key[3], bool):
        return key[3]
    return None


def stable_rng(*parts: Any) -> random.Random:
    """A Random seeded from `parts` (not Python's salted hash), equal across processes."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def short_hash(text: str) -> str:
    return hashlib.sha256(text.strip().encode()).hexdigest()[:10]
