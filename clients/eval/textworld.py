"""Multi-step text games from textworld-express 1.1.0 (one JVM per process, via py4j).

A task is one seeded game: its query is the game's task description plus the opening
observation. Every attempt is really played action by action; success is the game's own
`tasksuccess` flag. The gold action sequence the generator provides is used only through
the scripted agent's declared competence model (scripted.py) and to replay a stored plan
on its own game when judging whether that plan is sound.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from .common import Task

ENV = "textworld"
# coin and twc are left out: their gold-path generator is not seeded (the same seed gives a
# different gold path from call to call), which would make runs irreproducible.
GAMES = ("mapreader", "cookingworld", "arithmetic", "sorting", "simonsays", "peckingorder")
EXTRA_STEPS = 10  # step budget = gold length + EXTRA_STEPS
QUERY_CHARS = 400


@dataclass(frozen=True)
class Game:
    game: str
    seed: int
    gold: tuple[str, ...]
    description: str
    observation: str

    @property
    def budget(self) -> int:
        return len(self.gold) + EXTRA_STEPS

    @property
    def label(self) -> str:
        return f"{self.game} (seed {self.seed})"


@dataclass(frozen=True)
class Episode:
    actions: tuple[str, ...]
    success: bool
    failed: bool  # the game itself declared failure (e.g. a wrong item in the box)
    score: float


# The chooser sees (step, observation, valid actions) and returns the next action, or
# None to stop playing.
Chooser = Callable[[int, str, list[str]], "str | None"]


class TextWorld:
    """One textworld-express process; games are (re)generated from their seed on demand."""

    def __init__(self) -> None:
        from textworld_express import TextWorldExpressEnv

        with contextlib.redirect_stdout(io.StringIO()):
            self._env = TextWorldExpressEnv(envStepLimit=1000)
        self._replays: dict[tuple[str, int, tuple[str, ...]], Episode] = {}

    def close(self) -> None:
        self._env.close()
        self._env.close = lambda: None  # its __del__ would close (and fail) a second time
        self._env._obj_tree_tempfile.close()  # a temporary file it never closes itself
        java = self._env._gateway.java_process
        java.stdin.close()  # the gateway exits when its stdin ends
        try:
            java.wait(timeout=10)
        except subprocess.TimeoutExpired:
            java.kill()
            java.wait()
        for pipe in (java.stdout, java.stderr):
            if pipe is not None:
                pipe.close()

    def game(self, game: str, seed: int) -> Game:
        obs, infos = self._env.reset(
            seed=seed, gameFold="train", gameName=game, gameParams="", generateGoldPath=True
        )
        gold = tuple(self._env.getGoldActionSequence())
        return Game(game, seed, gold, infos["taskDescription"].strip(), obs.strip())

    def seeds(self, game: str, n: int) -> list[int]:
        self._env.load(game, "")
        return sorted(self._env.getValidSeedsTrain())[:n]

    def play(self, g: Game, choose: Chooser) -> Episode:
        obs, infos = self._env.reset(seed=g.seed, gameFold="train", gameName=g.game, gameParams="")
        actions: list[str] = []
        for step in range(g.budget):
            action = choose(step, obs, sorted(set(infos["validActions"])))
            if action is None:
                break
            obs, _, _, infos = self._env.step(action)
            actions.append(action)
            if infos["tasksuccess"] or infos["taskfailure"]:
                break
        return Episode(tuple(actions), bool(infos["tasksuccess"]), bool(infos["taskfailure"]),
                       float(infos["score"]))

    def replay(self, g: Game, actions: tuple[str, ...]) -> Episode:
        """Play a fixed action list (cached: games are deterministic given their seed)."""
        key = (g.game, g.seed, actions)
        if key not in self._replays:
            self._replays[key] = self.play(
                g, lambda step, _obs, _valid: actions[step] if step < len(actions) else None
            )
        return self._replays[key]


def describe(g: Game, limit: int = QUERY_CHARS) -> str:
    """The task description and the opening observation, cut at a sentence within `limit`."""
    text = f"{g.description}\n{g.observation}"
    if len(text) <= limit:
        return text
    cut = text.rfind(". ", 0, limit)
    return text[: cut + 1] if cut > len(g.description) else text[:limit]


def tasks(world: TextWorld, games: tuple[str, ...], per_game: int) -> list[Task]:
    out = []
    for name in games:
        for seed in world.seeds(name, per_game):
            g = world.game(name, seed)
            out.append(Task(ENV, f"{name}/seed-{seed}", describe(g), g))
    return out
