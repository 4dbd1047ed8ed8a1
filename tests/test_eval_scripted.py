"""The scripted agent's contract: declared competence only, memory reuse and avoidance,
determinism per key, real checks (HumanEval tests executed, games really played)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from memrl_clients.eval import humaneval, memtext, scripted, textworld
from memrl_clients.eval.bank import build_bank
from memrl_clients.eval.common import Recalled, Task, short_hash
from needs import require_java

FIB_LOOKUP = "def fib(n: int):\n    return {10: 55, 1: 1, 8: 21}.get(n, 0)"


@pytest.fixture(scope="module")
def problems() -> dict[str, humaneval.Problem]:
    return {p.task_id: p for p in humaneval.load_problems()}


@pytest.fixture
def checker() -> humaneval.HumanEvalChecker:
    return humaneval.HumanEvalChecker()


def task_of(problem: humaneval.Problem) -> Task:
    return humaneval.tasks([problem])[0]


def memory(mid: int, text: str, kind: str = "success") -> Recalled:
    return Recalled(mid, kind, "intent", text)


def test_checker_runs_the_tests(problems, checker) -> None:
    fib = problems["HumanEval/55"]
    assert checker.check(fib, fib.canonical).passed
    wrong = checker.check(fib, FIB_LOOKUP)
    assert not wrong.passed and "AssertionError" in wrong.detail
    assert checker.executed == 2
    assert checker.check(fib, FIB_LOOKUP) == wrong and checker.executed == 2  # cached


def test_checker_limits_cpu_time_not_wall_time(problems) -> None:
    looping = "def fib(n: int):\n    while True:\n        pass"
    result = humaneval.HumanEvalChecker(timeout=1).check(problems["HumanEval/55"], looping)
    assert not result.passed and "CPU" in result.detail


def test_weak_check_runs_only_the_docstring_examples(problems, checker) -> None:
    fib = problems["HumanEval/55"]
    assert checker.weak_check(fib, FIB_LOOKUP).passed  # fib(10), fib(1), fib(8) only
    assert not checker.weak_check(fib, "def fib(n: int):\n    return n").passed


def test_competence_roll_decides_canonical_or_mutant(problems, checker, monkeypatch) -> None:
    problem = problems["HumanEval/12"]
    agent = scripted.ScriptedCoder(0, checker.check)
    monkeypatch.setattr(agent, "base_p", lambda task: 1.0)
    solved = agent.attempt(task_of(problem), [], ("k", 1))
    assert solved.success and solved.artifact == problem.canonical and solved.reused is None
    monkeypatch.setattr(agent, "base_p", lambda task: 0.0)
    wrong = agent.attempt(task_of(problem), [], ("k", 1))
    assert wrong.artifact in [code for _, code in agent.wrong_attempts(problem)]
    assert wrong.artifact != problem.canonical
    assert wrong.success == checker.check(problem, wrong.artifact).passed


def test_same_key_same_attempt_and_foreign_memories_change_nothing(problems, checker) -> None:
    problem = problems["HumanEval/0"]
    agent = scripted.ScriptedCoder(3, checker.check)
    alone = [agent.attempt(task_of(problem), [], ("k", e)) for e in range(6)]
    assert alone == [agent.attempt(task_of(problem), [], ("k", e)) for e in range(6)]
    other = problems["HumanEval/55"]
    noise = memory(9, memtext.success(other.signature, short_hash(other.canonical), ["x"],
                                      other.canonical, "python"))
    assert alone == [agent.attempt(task_of(problem), [noise], ("k", e)) for e in range(6)]


def test_reuses_first_same_task_success_unless_a_reflection_warns(problems, checker) -> None:
    fib = problems["HumanEval/55"]
    agent = scripted.ScriptedCoder(0, checker.check)
    junk = memory(4, memtext.success(fib.signature, short_hash(FIB_LOOKUP), ["x"], FIB_LOOKUP, "python"))
    good = memory(5, memtext.success(fib.signature, short_hash(fib.canonical), ["x"], fib.canonical, "python"))
    first = agent.attempt(task_of(fib), [junk, good], ("k", 1))
    assert (first.reused, first.artifact, first.success) == (4, FIB_LOOKUP, False)
    assert first.used == (4,)
    reflection = agent.write_memory(task_of(fib), first)
    assert reflection.kind == "failure" and reflection.intent == task_of(fib).query
    warn = memory(6, reflection.experience, "failure")
    second = agent.attempt(task_of(fib), [junk, warn, good], ("k", 2))
    assert (second.reused, second.success) == (5, True)


def test_reflection_keeps_a_warned_mistake_from_being_resubmitted(problems, checker, monkeypatch) -> None:
    problem = problems["HumanEval/12"]
    agent = scripted.ScriptedCoder(0, checker.check)
    monkeypatch.setattr(agent, "base_p", lambda task: 0.0)
    wrong = agent.attempt(task_of(problem), [], ("k", 1))
    warn = memory(1, agent.write_memory(task_of(problem), wrong).experience, "failure")
    again = agent.attempt(task_of(problem), [warn], ("k", 1))
    assert again.approach != wrong.approach and again.reused is None
    assert again.used == (1,)  # the reflection it heeded


def test_memory_text_round_trip(problems, checker) -> None:
    problem = problems["HumanEval/55"]
    agent = scripted.ScriptedCoder(0, checker.check)
    outcome = agent._submit(problem, problem.canonical)
    draft = agent.write_memory(task_of(problem), outcome)
    note = memtext.parse(draft.experience)
    assert draft.kind == "success"
    assert note == memtext.Note(True, problem.signature, short_hash(problem.canonical), problem.canonical)
    assert memtext.parse("free text someone else stored") is None


def test_bank_labels_what_the_weak_check_accepts(problems, checker) -> None:
    chosen = [problems[f"HumanEval/{i}"] for i in (0, 12, 55, 60)]
    weak = scripted.ScriptedCoder(1, checker.weak_check)
    bank = build_bank(weak, humaneval.tasks(chosen), seed=1, coverage=1.0, attempts=2)
    assert 4 <= len(bank) <= 8
    for draft in bank:
        note = memtext.parse(draft.experience)
        problem = next(p for p in chosen if p.signature == note.subject)
        assert note.solved == checker.weak_check(problem, note.artifact).passed


@pytest.fixture(scope="module")
def world() -> Iterator[textworld.TextWorld]:
    require_java()
    w = textworld.TextWorld()
    yield w
    w.close()


def game_task(world: textworld.TextWorld, game: str, seed: int) -> Task:
    g = world.game(game, seed)
    return Task(textworld.ENV, f"{game}/seed-{seed}", textworld.describe(g), g)


def test_games_and_their_gold_paths_are_reproducible(world) -> None:
    other = textworld.TextWorld()
    try:
        for name in textworld.GAMES:
            for seed in (0, 1):
                assert world.game(name, seed) == other.game(name, seed) == world.game(name, seed)
    finally:
        other.close()


def test_player_plays_the_game_and_slips_cost(world, monkeypatch) -> None:
    task = game_task(world, "sorting", 1)
    agent = scripted.ScriptedPlayer(0, world)
    monkeypatch.setattr(scripted, "SLIP", 0.0)
    clean = agent.attempt(task, [], ("k", 1))
    assert clean.success and clean.artifact.splitlines() == list(task.data.gold)
    monkeypatch.setattr(scripted, "SLIP", 1.0)
    sloppy = agent.attempt(task, [], ("k", 1))
    assert not sloppy.success and "instead of" in sloppy.note


def test_player_replays_a_stored_plan_and_avoids_a_warned_one(world, monkeypatch) -> None:
    task = game_task(world, "cookingworld", 2)
    agent = scripted.ScriptedPlayer(0, world)
    label = task.data.label
    short = "\n".join(task.data.gold[:-1])  # stops one step short: never wins
    junk = memory(1, memtext.success(label, short_hash(short), ["x"], short, "text"))
    gold = "\n".join(task.data.gold)
    good = memory(2, memtext.success(label, short_hash(gold), ["x"], gold, "text"))
    replayed = agent.attempt(task, [junk, good], ("k", 1))
    assert (replayed.reused, replayed.success) == (1, False)
    warn = memory(3, agent.write_memory(task, replayed).experience, "failure")
    fixed = agent.attempt(task, [warn, junk, good], ("k", 1))
    assert (fixed.reused, fixed.success) == (2, True)


def test_plans_from_other_seeds_help_only_when_sound(world) -> None:
    task = game_task(world, "mapreader", 1)
    other = world.game("mapreader", 3)
    agent = scripted.ScriptedPlayer(0, world)
    gold = "\n".join(other.gold)
    sound = memtext.success(other.label, short_hash(gold), ["x"], gold, "text")
    partial = "\n".join(other.gold[:2])
    unsound = memtext.success(other.label, short_hash(partial), ["x"], partial, "text")
    notes = scripted.notes
    assert agent._plan_factor(task.data, notes([memory(1, sound)])) == scripted.PLAN_SOUND
    assert agent._plan_factor(task.data, notes([memory(1, unsound)])) == scripted.PLAN_UNSOUND
    assert agent._plan_factor(task.data, notes([memory(1, unsound), memory(2, sound)])) == scripted.PLAN_UNSOUND
    assert agent._plan_factor(task.data, []) == 1.0
    assert agent._plan(task.data, notes([memory(7, sound)])) == (7, scripted.PLAN_SOUND)
