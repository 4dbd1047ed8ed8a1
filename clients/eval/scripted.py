"""The offline scripted agent that stands in for the frozen LLM (design: docs/EVALUATION.md).

It learns nothing: the same task, epoch key and injected memories always give the same
attempt. Its randomness comes from `stable_rng(key)`, and the harness uses the same key
for every policy, so policies differ only through the memories they inject.

Competence model (declared, the only way it touches an environment's answers):
- HumanEval: each task has a base solve probability p ~ Beta(1.0, 1.1), seeded per task.
  A roll below p submits the canonical solution; otherwise one of up to four seeded
  mutants of it (a flipped comparison, an off-by-one constant, a swapped operator, a
  dropped edge-case guard). The tests decide either way.
- Text games: each step of the game's gold action sequence is taken correctly, or with
  probability SLIP the agent takes another valid action in its place and carries on with
  the next step as if it had done it. The game decides.
How memories change an attempt (the memory text is all the agent sees):
- a success for the very same task (same signature / same game and seed) whose approach
  no injected reflection warns against is reused verbatim: its code is submitted, its
  actions replayed. The first such memory in injected order wins.
- a reflection on the same task warns against its approach (never reused, never
  resubmitted) and, in games, makes slips rarer.
- in games, the first success on another seed of the same game is followed as a plan:
  a sound plan (one that really wins its own game) halves the slip rate, an unsound one
  (stored as a success by a weak verifier) raises it by half.
- anything else injected has no effect: it only takes a slot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from . import humaneval, memtext, textworld
from .common import MemoryDraft, Outcome, Recalled, Task, short_hash, stable_rng
from .mutants import HINTS, mutants

N_MUTANTS = 4
BETA = (1.0, 1.1)  # base solve probability on HumanEval, per task
SLIP = 0.07  # per-step slip probability in text games
PLAN_SOUND, PLAN_UNSOUND, REFLECTION = 0.5, 1.5, 0.8  # slip-rate factors
MAX_REFLECTIONS = 2

CODE_SCRIPT = [
    "Restate the contract from the signature and the docstring examples.",
    "Handle the edge cases the docstring names before the main case.",
    "Compute the result directly (one loop or comprehension), no extra state.",
    "Check the result against the docstring examples before submitting.",
]


def notes(memories: list[Recalled]) -> list[tuple[Recalled, memtext.Note]]:
    return [(m, n) for m in memories if (n := memtext.parse(m.experience)) is not None]


def warned(found: list[tuple[Recalled, memtext.Note]], subject: str) -> set[str]:
    return {n.approach for _, n in found if not n.solved and n.subject == subject}


def warning_ids(found: list[tuple[Recalled, memtext.Note]], subject: str) -> tuple[int, ...]:
    return tuple(m.id for m, n in found if not n.solved and n.subject == subject)


def reusable(found: list[tuple[Recalled, memtext.Note]], subject: str) -> tuple[Recalled, memtext.Note] | None:
    avoid = warned(found, subject)
    for m, n in found:
        if n.solved and n.subject == subject and n.approach not in avoid:
            return m, n
    return None


class ScriptedCoder:
    """HumanEval; `verify` is the environment's check (or the weak one, for the bank)."""

    name = "scripted"

    def __init__(self, seed: int, verify: Callable[[humaneval.Problem, str], humaneval.CheckResult]):
        self.seed = seed
        self.verify = verify
        self._kinds: dict[str, str] = {}  # approach -> mutant kind, for reflections

    def base_p(self, task: Task) -> float:
        return stable_rng(self.seed, "competence", task.task_id).betavariate(*BETA)

    def wrong_attempts(self, problem: humaneval.Problem) -> list[tuple[str, str]]:
        rng = stable_rng(self.seed, "mutants", problem.task_id)
        found = mutants(problem.canonical, N_MUTANTS, lambda n: rng.sample(range(n), n))
        for kind, code in found:
            self._kinds[short_hash(code)] = kind
        return found

    def attempt(self, task: Task, memories: list[Recalled], key: tuple[Any, ...]) -> Outcome:
        problem: humaneval.Problem = task.data
        found = notes(memories)
        reuse = reusable(found, problem.signature)
        if reuse is not None:
            memory, note = reuse
            return self._submit(problem, note.artifact, reused=memory.id, approach=note.approach)
        outcome = self._submit(problem, self._write(task, warned(found, problem.signature), key))
        return replace(outcome, used=warning_ids(found, problem.signature))

    def _write(self, task: Task, avoid: set[str], key: tuple[Any, ...]) -> str:
        problem: humaneval.Problem = task.data
        rng = stable_rng(*key)
        p = self.base_p(task)
        wrong = self.wrong_attempts(problem)
        if rng.random() < p:
            return problem.canonical
        choice = wrong[rng.randrange(len(wrong))][1]
        if short_hash(choice) not in avoid:
            return choice
        # A reflection names this mistake: think again, and avoid every warned approach.
        if rng.random() < p:
            return problem.canonical
        fresh = [code for _, code in wrong if short_hash(code) not in avoid]
        return fresh[rng.randrange(len(fresh))] if fresh else choice

    def _submit(self, problem: humaneval.Problem, code: str, reused: int | None = None,
                approach: str | None = None) -> Outcome:
        """Check `code`; `used` names the reused memory (callers add reflections they heeded)."""
        result = self.verify(problem, code)
        approach = approach or short_hash(code)
        if reused is not None:
            note = f"reused a stored solution (approach {approach}) without checking it"
        else:
            note = HINTS.get(self._kinds.get(approach, ""), "the approach itself was wrong")
        used = () if reused is None else (reused,)
        return Outcome(result.passed, code, approach, result.detail, reused, note, used)

    def write_memory(self, task: Task, outcome: Outcome) -> MemoryDraft:
        subject = task.data.signature
        if outcome.success:
            text = memtext.success(subject, outcome.approach, CODE_SCRIPT, outcome.artifact, "python")
            return MemoryDraft(task.query, text, "success")
        reflection = f"The tests failed because {outcome.note}. Do not submit this attempt again."
        text = memtext.failure(subject, outcome.approach, outcome.detail, reflection,
                               outcome.artifact, "python")
        return MemoryDraft(task.query, text, "failure")


class ScriptedPlayer:
    """Text games; `weak` counts any episode the game did not declare lost as won (bank)."""

    name = "scripted"

    def __init__(self, seed: int, world: textworld.TextWorld, weak: bool = False):
        self.seed = seed
        self.world = world
        self.weak = weak
        self._games: dict[tuple[str, int], textworld.Game] = {}

    def attempt(self, task: Task, memories: list[Recalled], key: tuple[Any, ...]) -> Outcome:
        game: textworld.Game = task.data
        found = notes(memories)
        reuse = reusable(found, game.label)
        if reuse is not None:
            memory, note = reuse
            episode = self.world.replay(game, tuple(note.artifact.splitlines()))
            return self._outcome(episode, memory.id, f"replayed stored plan {note.approach}",
                                 approach=note.approach, used=(memory.id,))
        plan_id, factor = self._plan(game, found)
        slip = SLIP * factor
        slip *= REFLECTION ** min(len(warned(found, game.label)), MAX_REFLECTIONS)
        used = warning_ids(found, game.label)[:MAX_REFLECTIONS] + (() if plan_id is None else (plan_id,))
        slips: list[str] = []
        position = [0]  # index of the next gold action

        def choose(step: int, _obs: str, valid: list[str]) -> str:
            rng = stable_rng(*key, step)
            i = position[0]
            intended = game.gold[i] if i < len(game.gold) else "look around"
            position[0] += 1  # a slip replaces the step: the agent moves on as if done
            if rng.random() >= slip:
                return intended
            action = rng.choice([a for a in valid if a != intended] or [intended])
            slips.append(f"step {step + 1} ('{action}' instead of '{intended}')")
            return action

        episode = self.world.play(game, choose)
        return self._outcome(episode, None, slips[0] if slips else "no slip noticed", used=used)

    def _plan_factor(self, game: textworld.Game, found: list[tuple[Recalled, memtext.Note]]) -> float:
        return self._plan(game, found)[1]

    def _plan(self, game: textworld.Game, found: list[tuple[Recalled, memtext.Note]]) -> tuple[int | None, float]:
        """The first success on another seed of this game (the plan followed) and its effect."""
        for memory, note in found:
            name, _, seed = note.subject.partition(" (seed ")
            if note.solved and name == game.game and note.subject != game.label:
                other = self._game(name, int(seed.rstrip(")")))
                sound = self.world.replay(other, tuple(note.artifact.splitlines())).success
                return memory.id, PLAN_SOUND if sound else PLAN_UNSOUND
        return None, 1.0

    def _game(self, name: str, seed: int) -> textworld.Game:
        if (name, seed) not in self._games:
            self._games[(name, seed)] = self.world.game(name, seed)
        return self._games[(name, seed)]

    def _outcome(self, episode: textworld.Episode, reused: int | None, note: str,
                 approach: str | None = None, used: tuple[int, ...] = ()) -> Outcome:
        won = (not episode.failed) if self.weak else episode.success
        if episode.success:
            detail = f"won in {len(episode.actions)} steps"
        elif episode.failed:
            detail = f"the game declared the task failed after {len(episode.actions)} steps"
        else:
            detail = f"not won within {len(episode.actions)} steps (score {episode.score:g})"
        artifact = "\n".join(episode.actions)
        return Outcome(won, artifact, approach or short_hash(artifact), detail, reused, note, used)

    def write_memory(self, task: Task, outcome: Outcome) -> MemoryDraft:
        game: textworld.Game = task.data
        actions = outcome.artifact.splitlines()
        if outcome.success:
            chunk = max(1, -(-len(actions) // 5))
            steps = ["; ".join(actions[i:i + chunk]) for i in range(0, len(actions), chunk)]
            text = memtext.success(game.label, outcome.approach, steps, outcome.artifact, "text")
            return MemoryDraft(task.query, text, "success")
        reflection = f"I went off the plan at {outcome.note}. Follow the plan step by step."
        text = memtext.failure(game.label, outcome.approach, outcome.detail, reflection,
                               outcome.artifact, "text")
        return MemoryDraft(task.query, text, "failure")
