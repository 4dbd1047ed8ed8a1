"""The shared bank: memories left by an earlier host that trusted a weak verifier.

Several hosts can share one memory. This one attempted a seeded fraction of the training
tasks (never a held-out one: transfer must measure what the memory learned from other
tasks, not a held-out task's own stored answer) with the same competence as the scripted
agent, alone, and
stored what its own check accepted as a success script and the rest as reflections. Its
check was weak: on HumanEval it ran only the docstring examples (or merely compiled the
code when the docstring has none); in the text games it counted any episode the game did
not declare lost as won. So some of its "successes" are wrong code or plans that stop
short: similar-looking noise, labelled success, that a similarity-only memory cannot tell
from the real thing. Every memory policy starts from the same bank.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .common import Agent, MemoryDraft, Task, stable_rng

COVERAGE = 0.5
ATTEMPTS = 2


def bank_tasks(train: Sequence[Task], seed: int, coverage: float = COVERAGE) -> list[Task]:
    """The training tasks the earlier host attempted (seeded, by task id, in id order)."""
    return [t for t in sorted(train, key=lambda t: t.task_id)
            if stable_rng(seed, "bank", t.task_id).random() < coverage]


def build_bank(weak_agent: Agent, train: Sequence[Task], seed: int,
               coverage: float = COVERAGE, attempts: int = ATTEMPTS) -> list[MemoryDraft]:
    """The earlier host's memories on `train` (pass the training split only), each
    tagged with the task it was written for."""
    drafts: list[MemoryDraft] = []
    seen: set[str] = set()
    for task in bank_tasks(train, seed, coverage):
        for n in range(attempts):
            outcome = weak_agent.attempt(task, [], (seed, "bank", task.env, task.task_id, n))
            draft = weak_agent.write_memory(task, outcome)
            if draft.experience not in seen:
                seen.add(draft.experience)
                drafts.append(replace(draft, source=task.task_id))
    return drafts
