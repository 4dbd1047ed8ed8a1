"""One environment ready to run: its task split, its agent and the shared bank."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from . import humaneval, textworld
from .bank import build_bank
from .common import Agent, MemoryDraft, Task, stable_rng
from .scripted import ScriptedCoder, ScriptedPlayer

HELD_OUT = 0.3
ENVS = ("humaneval", "textworld")


@dataclass(frozen=True)
class Size:
    humaneval_tasks: int | None  # None: all 164
    games_per_type: int
    epochs: int


FULL = Size(humaneval_tasks=None, games_per_type=10, epochs=10)
QUICK = Size(humaneval_tasks=40, games_per_type=4, epochs=5)


@dataclass
class Suite:
    env: str
    train: list[Task]
    held_out: list[Task]
    agent: Agent
    bank: list[MemoryDraft]
    close: Callable[[], None] = field(default=lambda: None)


def split(tasks: Sequence[Task], seed: int, group: Callable[[Task], str]) -> tuple[list[Task], list[Task]]:
    """Hold out 30% of each group (seeded), so every group appears on both sides."""
    train: list[Task] = []
    held: list[Task] = []
    groups: dict[str, list[Task]] = {}
    for t in tasks:
        groups.setdefault(group(t), []).append(t)
    for name in sorted(groups):
        members = sorted(groups[name], key=lambda t: t.task_id)
        stable_rng(seed, "split", name).shuffle(members)
        n_held = round(len(members) * HELD_OUT)
        held += members[:n_held]
        train += members[n_held:]
    return train, held


def humaneval_suite(seed: int, size: Size,
                    agent_factory: Callable[[humaneval.HumanEvalChecker], Agent] | None = None,
                    bank_coverage: float = 0.5) -> Suite:
    problems = humaneval.load_problems()
    if size.humaneval_tasks is not None:
        stable_rng(seed, "subset").shuffle(problems)
        problems = problems[: size.humaneval_tasks]
    tasks = humaneval.tasks(problems)
    checker = humaneval.HumanEvalChecker()
    train, held = split(tasks, seed, lambda t: "all")
    weak = ScriptedCoder(seed, checker.weak_check)
    bank = build_bank(weak, tasks, seed, bank_coverage) if bank_coverage > 0 else []
    agent = agent_factory(checker) if agent_factory else ScriptedCoder(seed, checker.check)
    return Suite("humaneval", train, held, agent, bank)


def textworld_suite(seed: int, size: Size,
                    agent_factory: Callable[[textworld.TextWorld], Agent] | None = None,
                    bank_coverage: float = 0.5) -> Suite:
    world = textworld.TextWorld()
    tasks = textworld.tasks(world, textworld.GAMES, size.games_per_type)
    train, held = split(tasks, seed, lambda t: t.data.game)
    weak = ScriptedPlayer(seed, world, weak=True)
    bank = build_bank(weak, tasks, seed, bank_coverage) if bank_coverage > 0 else []
    agent = agent_factory(world) if agent_factory else ScriptedPlayer(seed, world)
    return Suite("textworld", train, held, agent, bank, world.close)
