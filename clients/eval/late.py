"""The late-discovery scenario: can a memory stored late, under a busy intent, be reached?

A host works the same tasks again and again. For each task the first attempts fail (and a
weak-verifier host may have left wrong "successes" under the same intent, the bank), so
several memories pile up under the task's intent before the working solution is found,
late. From then on the agent succeeds only if recall hands that solution back: its own
competence stays at zero, so the success rate after discovery is a direct readout of
whether the newest memory is reachable.

What it exposes: when phase A takes the top-k1 *memories* by cosine, every memory filed
under a repeated intent ties at similarity 1.0, ties go to the older id, and once k1 of
them exist the pool is frozen: a working memory stored after that is never a candidate.

Competence model of `LateCoder` (declared; design in docs/EVALUATION.md):
- tasks are HumanEval problems with at least MIN_MUTANTS seeded mutants, every one of which
  fails the real tests (so nothing but the canonical solution works, and the bank, built
  by a host of the same competence, never holds a working solution);
- each task has a discovery epoch drawn from the seed; in that epoch the agent works the
  task out itself and submits the canonical solution, whatever is injected;
- in every other attempt its own solve probability is 0: it reuses the first stored success
  for the same task that no injected reflection warns against (as ScriptedCoder does), or
  submits a mutant;
- each failed attempt's reflection names its epoch, so every failure is a new memory (a
  host LLM never writes the same reflection twice; without this the store would merge
  repeated failures and the pool would not fill).

The namespace starts with BACKGROUND memories of earlier work on the other HumanEval
problems (a success and a failed attempt each), as a memory in use is not empty. This
matters on the server measured at commit 51d0e0f: with at most 200 memories in a namespace
its exact sqlite-vec search returns the *newest* of several tied memories, above 200 its
derived index breaks ties by the *older* id, so only a namespace past 200 memories shows
the frozen pool (measured: 190 background memories, the pool slid to the newest five; 250,
it stayed on the oldest five).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from . import humaneval
from .common import MemoryDraft, Outcome, Recalled, Task, epoch_of, stable_rng
from .harness import PolicyRun
from .scripted import ScriptedCoder

ENV = "late"
K1, K2 = 5, 3  # passed to every server explicitly: the scenario is built around k1
MIN_MUTANTS = 4
BACKGROUND = 240  # memories of other problems stored first (see the module docstring)
FIRST_DISCOVERY = 3  # earliest discovery epoch
LATER_EPOCHS = 2  # discovery is at least this many epochs before the end


class LateCoder(ScriptedCoder):
    """ScriptedCoder with zero own competence except one discovery epoch per task."""

    def __init__(self, seed: int, verify: Callable[[humaneval.Problem, str], humaneval.CheckResult],
                 epochs: int):
        super().__init__(seed, verify)
        self.epochs = epochs

    def base_p(self, task: Task) -> float:
        return 0.0

    def discovery_epoch(self, task: Task) -> int:
        last = max(FIRST_DISCOVERY, self.epochs - LATER_EPOCHS)
        return stable_rng(self.seed, "discovery", task.task_id).randint(FIRST_DISCOVERY, last)

    def attempt(self, task: Task, memories: list[Recalled], key: tuple[Any, ...]) -> Outcome:
        epoch = epoch_of(key)
        if epoch is not None and epoch == self.discovery_epoch(task):
            problem: humaneval.Problem = task.data
            return replace(self._submit(problem, problem.canonical), used=())
        outcome = super().attempt(task, memories, key)
        if epoch is None or outcome.success:
            return outcome
        return replace(outcome, note=f"{outcome.note} (attempt of epoch {epoch})")


def background(problems: Sequence[humaneval.Problem], agent: ScriptedCoder, seed: int,
               n: int = BACKGROUND) -> list[MemoryDraft]:
    """`n` memories of earlier work on `problems` (the ones outside the scenario): for each
    problem in seeded order, the canonical solution and its first mutant, checked by the
    real tests and written up as the scripted agent writes any attempt."""
    order = sorted(problems, key=lambda p: p.task_id)
    stable_rng(seed, "late-background").shuffle(order)
    drafts: list[MemoryDraft] = []
    for task in humaneval.tasks(order):
        for code in (task.data.canonical, agent.wrong_attempts(task.data)[0][1]):
            if len(drafts) == n:
                return drafts
            outcome = agent._submit(task.data, code)
            drafts.append(replace(agent.write_memory(task, outcome), source=task.task_id))
    return drafts


def select_tasks(problems: Sequence[humaneval.Problem], agent: ScriptedCoder,
                 check: Callable[[humaneval.Problem, str], humaneval.CheckResult],
                 seed: int, n: int) -> list[humaneval.Problem]:
    """The first `n` problems (seeded order) whose every mutant fails the real tests."""
    order = sorted(problems, key=lambda p: p.task_id)
    stable_rng(seed, "late-subset").shuffle(order)
    chosen: list[humaneval.Problem] = []
    for problem in order:
        wrong = agent.wrong_attempts(problem)
        if len(wrong) < MIN_MUTANTS or any(kind == "stub" for kind, _ in wrong):
            continue
        if all(not check(problem, code).passed for _, code in wrong):
            chosen.append(problem)
            if len(chosen) == n:
                break
    return chosen


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def task_rows(run: PolicyRun) -> list[dict[str, Any]]:
    """Per task: the first success, the memory stored from it, how many memories were under
    the intent before it, and what later recalls did with it."""
    by_task: dict[str, list[Any]] = {}
    for a in run.attempts:
        if a.phase == "train":
            by_task.setdefault(a.task_id, []).append(a)
    rows = []
    for task_id in sorted(by_task):
        attempts = sorted(by_task[task_id], key=lambda a: a.epoch)
        first = next((a for a in attempts if a.success), None)
        row: dict[str, Any] = {"task": task_id, "first_success_epoch": None}
        if first is not None and first.stored is not None:
            earlier = set(run.bank_ids.get(task_id, ()))
            earlier |= {a.stored for a in attempts if a.epoch < first.epoch and a.stored}
            later = [a for a in attempts if a.epoch > first.epoch]
            row.update(first_success_epoch=first.epoch, memory=first.stored,
                       earlier_memories=len(earlier), later=len(later),
                       injected=sum(first.stored in a.injected for a in later),
                       reused=sum(a.reused == first.stored for a in later),
                       solved=sum(a.success for a in later))
        rows.append(row)
    return rows


def reach(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pooled over tasks: the share of later attempts that injected / reused / solved."""
    found = [r for r in rows if r["first_success_epoch"] is not None]
    later = sum(r["later"] for r in found)
    return {"tasks": len(found), "later_attempts": later,
            "injected": _share(sum(r["injected"] for r in found), later),
            "reused": _share(sum(r["reused"] for r in found), later),
            "solved": _share(sum(r["solved"] for r in found), later)}


def summary(run: PolicyRun) -> dict[str, Any]:
    """The learning curve plus reachability, overall and split by whether k1 memories were
    already under the intent when the working one was stored (pool full) or not."""
    base = run.summary()
    rows = task_rows(run)
    found = [r for r in rows if r["first_success_epoch"] is not None]
    return {
        "sr_per_epoch": base["sr_per_epoch"], "last": base["last"], "csr": base["csr"],
        "k1": K1, "tasks": len(rows),
        "reachability": reach(found),
        "pool_full": reach([r for r in found if r["earlier_memories"] >= K1]),
        "pool_open": reach([r for r in found if r["earlier_memories"] < K1]),
        "per_task": rows,
    }
