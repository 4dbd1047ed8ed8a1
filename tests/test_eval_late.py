"""The late-discovery scenario: the declared competence model (zero except one discovery
epoch per task), the task selection, the reachability figures, and a run through real
servers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from memrl_clients.eval import humaneval, late, memtext
from memrl_clients.eval.common import Recalled, Task, train_key
from memrl_clients.eval.harness import POLICIES, Attempt, PolicyRun
from memrl_clients.eval.runner import run_suite
from memrl_clients.eval.suites import Size, late_suite, shared_checker

pytestmark = pytest.mark.timeout(300)
EPOCHS = 8


@pytest.fixture(scope="module")
def chosen() -> list[humaneval.Problem]:
    checker = shared_checker()
    agent = late.LateCoder(0, checker.check, EPOCHS)
    return late.select_tasks(humaneval.load_problems(), agent, checker.check, 0, 3)


def task_of(problem: humaneval.Problem) -> Task:
    return humaneval.tasks([problem])[0]


def test_selected_tasks_have_only_failing_mutants(chosen) -> None:
    checker = shared_checker()
    agent = late.LateCoder(0, checker.check, EPOCHS)
    assert len(chosen) == 3
    for problem in chosen:
        wrong = agent.wrong_attempts(problem)
        assert len(wrong) >= late.MIN_MUTANTS
        assert not any(checker.check(problem, code).passed for _, code in wrong)


def test_only_the_discovery_epoch_solves_alone(chosen) -> None:
    agent = late.LateCoder(0, shared_checker().check, EPOCHS)
    task = task_of(chosen[0])
    found = agent.discovery_epoch(task)
    assert late.FIRST_DISCOVERY <= found <= EPOCHS - late.LATER_EPOCHS
    outcomes = {e: agent.attempt(task, [], train_key(0, task, e)) for e in range(1, EPOCHS + 1)}
    assert [e for e, o in outcomes.items() if o.success] == [found]
    assert outcomes[found].artifact == chosen[0].canonical
    # every failure writes a new memory: the reflections name their epoch
    texts = {agent.write_memory(task, o).experience for e, o in outcomes.items() if e != found}
    assert len(texts) == EPOCHS - 1
    # bank attempts (not an epoch key) never discover
    assert not agent.attempt(task, [], (0, "bank", "late", task.task_id, 0)).success


def test_after_discovery_it_succeeds_only_by_reusing_the_stored_solution(chosen) -> None:
    checker = shared_checker()
    agent = late.LateCoder(0, checker.check, EPOCHS)
    task = task_of(chosen[1])
    found = agent.discovery_epoch(task)
    key = train_key(0, task, found)
    note = agent.write_memory(task, agent.attempt(task, [], key)).experience
    assert memtext.parse(note).solved
    later = train_key(0, task, found + 1)
    reused = agent.attempt(task, [Recalled(42, "success", task.query, note)], later)
    assert (reused.success, reused.reused) == (True, 42)
    assert not agent.attempt(task, [], later).success


def run_of(rows: dict[str, list[tuple[bool, tuple[int, ...], int | None, int]]],
           bank: dict[str, list[int]]) -> PolicyRun:
    run = PolicyRun("memrl", bank_ids=bank)
    for task, attempts in rows.items():
        for epoch, (ok, injected, reused, stored) in enumerate(attempts, 1):
            run.attempts.append(Attempt("train", epoch, task, ok, injected, reused, stored))
    return run


def test_reachability_by_hand() -> None:
    # a: solved in epoch 2 (memory 11) with 1 bank + 1 own memory before it; of the two later
    #    attempts one injected and reused 11.
    # b: solved in epoch 6 (memory 25) after 5 own failures (pool full); never injected later.
    # c: never solved.
    run = run_of({
        "a": [(False, (), None, 10), (True, (10,), None, 11), (True, (11, 10), 11, 11),
              (False, (10, 1), None, 12)],
        "b": [(False, (), None, 20 + e) for e in range(5)]
             + [(True, (20, 21, 22), None, 25), (False, (20, 21, 22), None, 26)],
        "c": [(False, (), None, 30 + e) for e in range(3)],
    }, bank={"a": [1]})
    rows = {r["task"]: r for r in late.task_rows(run)}
    assert rows["a"] == {"task": "a", "first_success_epoch": 2, "memory": 11,
                         "earlier_memories": 2, "later": 2, "injected": 1, "reused": 1,
                         "solved": 1}
    assert (rows["b"]["earlier_memories"], rows["b"]["later"], rows["b"]["injected"]) == (5, 1, 0)
    assert rows["c"] == {"task": "c", "first_success_epoch": None}
    s = late.summary(run)
    assert s["reachability"] == {"tasks": 2, "later_attempts": 3, "injected": 1 / 3,
                                 "reused": 1 / 3, "solved": 1 / 3}
    assert s["pool_full"]["tasks"] == 1 and s["pool_full"]["injected"] == 0.0
    assert s["pool_open"]["tasks"] == 1 and s["pool_open"]["injected"] == 0.5
    assert s["tasks"] == 3 and s["k1"] == late.K1


def test_late_run_through_real_servers(tmp_path: Path) -> None:
    """Behaviour the scenario guarantees on any server: the no-memory curve is the discovery
    schedule, every memory policy records each discovery, and after it the agent succeeds
    exactly when it reuses the stored solution."""
    size = Size(humaneval_tasks=None, games_per_type=1, epochs=1, late_tasks=3,
                late_epochs=6, late_background=12)
    suite = late_suite(seed=0, size=size, bank_coverage=0.5)
    assert len(suite.background) == 12 and not suite.held_out
    assert not any(n.solved and n.artifact == t.data.canonical
                   for t in suite.train for d in suite.bank
                   if (n := memtext.parse(d.experience)) is not None)
    policies = [p for p in POLICIES if p.name in ("no_memory", "memrl")]
    runs = asyncio.run(run_suite(suite, policies, 0, tmp_path, progress=False))
    schedule = [suite.agent.discovery_epoch(t) for t in suite.train]
    expected = [sum(d == e for d in schedule) / 3 for e in range(1, 7)]
    assert late.summary(runs["no_memory"])["sr_per_epoch"] == pytest.approx(expected)
    # the policy's database started as a copy of the background one: its ids come after
    assert min(runs["memrl"].stored) == len(suite.background) + 1
    s = late.summary(runs["memrl"])
    assert s["reachability"]["tasks"] == 3
    assert s["reachability"]["solved"] == s["reachability"]["reused"]
    assert [r["first_success_epoch"] for r in s["per_task"]] == [
        schedule[i] for i in _order(suite.train)]


def _order(tasks: list[Task]) -> list[int]:
    """Indexes of `tasks` sorted by task id (the order of the per-task rows)."""
    return sorted(range(len(tasks)), key=lambda i: tasks[i].task_id)
