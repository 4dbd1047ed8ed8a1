"""One environment ready to run: its task split, its agent and the shared bank."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from . import drift, humaneval, late, textworld
from .bank import build_bank
from .common import Agent, MemoryDraft, Task, stable_rng
from .scripted import ScriptedCoder, ScriptedPlayer

HELD_OUT = 0.3
ENVS = ("humaneval", "textworld")
SCENARIOS = ("late", "drift")  # scripted agent only


@dataclass(frozen=True)
class Size:
    humaneval_tasks: int | None  # None: all 164
    games_per_type: int
    epochs: int
    late_tasks: int = 20
    late_epochs: int = 10
    late_background: int = late.BACKGROUND
    drift_tasks: int = 40
    drift_epochs: int = 10


FULL = Size(humaneval_tasks=None, games_per_type=10, epochs=10)
QUICK = Size(humaneval_tasks=60, games_per_type=6, epochs=3, late_tasks=8, late_epochs=8,
             drift_tasks=16, drift_epochs=6)


@dataclass
class Suite:
    env: str
    train: list[Task]
    held_out: list[Task]
    agent: Agent
    bank: list[MemoryDraft]
    epochs: int
    close: Callable[[], None] = field(default=lambda: None)
    server_flags: tuple[str, ...] = ()  # added to every policy's `memrl serve` flags
    background: list[MemoryDraft] = field(default_factory=list)  # stored before the bank


_CHECKER: humaneval.HumanEvalChecker | None = None


def shared_checker() -> humaneval.HumanEvalChecker:
    """One HumanEval checker (and result cache) per process: the late-discovery scenario and
    the matrix's runs check many of the same (problem, code) pairs (one check is a ~60 ms
    subprocess here, and the late scenario's background alone needs 240)."""
    global _CHECKER
    if _CHECKER is None:
        _CHECKER = humaneval.HumanEvalChecker()
    return _CHECKER


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


def split_and_bank(tasks: Sequence[Task], seed: int, group: Callable[[Task], str],
                   weak_agent: Agent, bank_coverage: float
                   ) -> tuple[list[Task], list[Task], list[MemoryDraft]]:
    """The 70/30 split, then the shared bank drawn from the training split alone."""
    train, held = split(tasks, seed, group)
    bank = build_bank(weak_agent, train, seed, bank_coverage) if bank_coverage > 0 else []
    return train, held, bank


def humaneval_suite(seed: int, size: Size,
                    agent_factory: Callable[[humaneval.HumanEvalChecker], Agent] | None = None,
                    bank_coverage: float = 0.5) -> Suite:
    problems = humaneval.load_problems()
    if size.humaneval_tasks is not None:
        stable_rng(seed, "subset").shuffle(problems)
        problems = problems[: size.humaneval_tasks]
    tasks = humaneval.tasks(problems)
    checker = shared_checker()
    weak = ScriptedCoder(seed, checker.weak_check)
    train, held, bank = split_and_bank(tasks, seed, lambda t: "all", weak, bank_coverage)
    agent = agent_factory(checker) if agent_factory else ScriptedCoder(seed, checker.check)
    return Suite("humaneval", train, held, agent, bank, size.epochs)


def textworld_suite(seed: int, size: Size,
                    agent_factory: Callable[[textworld.TextWorld], Agent] | None = None,
                    bank_coverage: float = 0.5) -> Suite:
    world = textworld.TextWorld()
    tasks = textworld.tasks(world, textworld.GAMES, size.games_per_type)
    weak = ScriptedPlayer(seed, world, weak=True)
    train, held, bank = split_and_bank(tasks, seed, lambda t: t.data.game, weak, bank_coverage)
    agent = agent_factory(world) if agent_factory else ScriptedPlayer(seed, world)
    return Suite("textworld", train, held, agent, bank, size.epochs, world.close)


def late_suite(seed: int, size: Size, bank_coverage: float = 0.5) -> Suite:
    """The late-discovery scenario (late.py): every task is trained on, none held out."""
    checker = shared_checker()
    agent = late.LateCoder(seed, checker.check, size.late_epochs)
    every = humaneval.load_problems()
    problems = late.select_tasks(every, agent, checker.check, seed, size.late_tasks)
    tasks = [replace(t, env=late.ENV) for t in humaneval.tasks(problems)]
    others = [p for p in every if p not in problems]
    weak = late.LateCoder(seed, checker.weak_check, size.late_epochs)
    bank = build_bank(weak, tasks, seed, bank_coverage) if bank_coverage > 0 else []
    flags = ("--k1", str(late.K1), "--k2", str(late.K2))
    return Suite(late.ENV, tasks, [], agent, bank, size.late_epochs, server_flags=flags,
                 background=late.background(others, agent, seed, size.late_background))


def drift_suite(seed: int, size: Size, bank_coverage: float = 0.5) -> Suite:
    """The drift scenario (drift.py): HumanEval tasks, every one trained on, none held out;
    the bank (if any) is written by a weak-verifier host before the change."""
    problems = humaneval.load_problems()
    stable_rng(seed, "drift-subset").shuffle(problems)
    tasks = [replace(t, env=drift.ENV) for t in humaneval.tasks(problems[: size.drift_tasks])]
    checker = shared_checker()
    agent = drift.DriftCoder(seed, checker.check, drift.drift_epoch(size.drift_epochs))
    weak = ScriptedCoder(seed, checker.weak_check)
    bank = build_bank(weak, tasks, seed, bank_coverage) if bank_coverage > 0 else []
    return Suite(drift.ENV, tasks, [], agent, bank, size.drift_epochs)
