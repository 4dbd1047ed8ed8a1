"""The shared bank is drawn from the training split only: no held-out task's own memories
reach the memory before transfer is measured (both environments)."""

from __future__ import annotations

from typing import Any

import pytest
from memrl_clients.eval import humaneval, textworld
from memrl_clients.eval.bank import bank_tasks
from memrl_clients.eval.common import MemoryDraft, Outcome, Recalled, Task
from memrl_clients.eval.suites import (
    FULL,
    Size,
    humaneval_suite,
    split,
    split_and_bank,
    textworld_suite,
)

pytestmark = pytest.mark.timeout(300)


def assert_bank_from_training_only(train: list[Task], held: list[Task],
                                   bank: list[MemoryDraft]) -> None:
    held_ids = {t.task_id for t in held}
    train_ids = {t.task_id for t in train}
    assert bank, "the check needs a non-empty bank"
    assert {d.source for d in bank} <= train_ids
    assert not {d.source for d in bank} & held_ids
    # the memory sees intents, not task ids: no bank memory is filed under a held-out query
    assert not {d.intent for d in bank} & {t.query for t in held}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_humaneval_full_split_bank_tasks_are_training_tasks(seed: int) -> None:
    tasks = humaneval.tasks(humaneval.load_problems())
    train, held = split(tasks, seed, lambda t: "all")
    assert (len(train), len(held)) == (115, 49)
    chosen = bank_tasks(train, seed, 0.5)
    assert chosen and {t.task_id for t in chosen} <= {t.task_id for t in train}
    assert not {t.task_id for t in chosen} & {t.task_id for t in held}


def test_humaneval_suite_bank_holds_no_held_out_task() -> None:
    suite = humaneval_suite(seed=1, size=Size(humaneval_tasks=10, games_per_type=1, epochs=1),
                            bank_coverage=1.0)
    assert_bank_from_training_only(suite.train, suite.held_out, suite.bank)
    assert {d.source for d in suite.bank} == {t.task_id for t in suite.train}  # coverage 1


class RecordingAgent:
    """Attempts anything, remembers what it was asked to attempt."""

    name = "recording"

    def __init__(self) -> None:
        self.attempted: list[str] = []

    def attempt(self, task: Task, memories: list[Recalled], key: tuple[Any, ...]) -> Outcome:
        self.attempted.append(task.task_id)
        return Outcome(True, f"{task.task_id} {key[-1]}", task.task_id)

    def write_memory(self, task: Task, outcome: Outcome) -> MemoryDraft:
        return MemoryDraft(task.query, outcome.artifact, "success")


def test_grouped_split_and_bank_never_touch_held_out_tasks() -> None:
    """The path textworld_suite takes (split per game type, then the bank), with six game
    types x ten seeds as in the full run."""
    tasks = [Task("textworld", f"{g}/seed-{s}", f"{g} game {s}", data=g)
             for g in textworld.GAMES for s in range(10)]
    weak = RecordingAgent()
    train, held, bank = split_and_bank(tasks, 3, lambda t: t.data, weak, 1.0)
    assert (len(train), len(held)) == (42, 18)
    assert all(sum(t.data == g for t in held) == 3 for g in textworld.GAMES)
    assert_bank_from_training_only(train, held, bank)
    assert not set(weak.attempted) & {t.task_id for t in held}
    assert set(weak.attempted) == {t.task_id for t in train}


def test_no_bank_means_no_weak_attempts() -> None:
    weak = RecordingAgent()
    tasks = [Task("x", f"t{i}", f"q{i}") for i in range(10)]
    _, _, bank = split_and_bank(tasks, 0, lambda t: "all", weak, 0.0)
    assert bank == [] and weak.attempted == []


def test_textworld_suite_bank_holds_no_held_out_game() -> None:
    """The real games (a JVM): three seeds per game type, one held out per type."""
    suite = textworld_suite(seed=0, size=Size(humaneval_tasks=None, games_per_type=3, epochs=1),
                            bank_coverage=1.0)
    try:
        assert len(suite.held_out) == len(textworld.GAMES)
        assert_bank_from_training_only(suite.train, suite.held_out, suite.bank)
    finally:
        suite.close()


def test_full_size_is_unchanged() -> None:
    assert (FULL.humaneval_tasks, FULL.games_per_type, FULL.epochs) == (None, 10, 10)
