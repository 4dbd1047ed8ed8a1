"""The drift scenario: from one epoch on, what worked fails.

A host works the same HumanEval tasks epoch after epoch (none held out). At the drift
epoch the environment changes: every task now needs a revised solution, and a solution
written before the change fails (think of an interface that moved). The scripted agent
(competence model of ScriptedCoder, declared in scripted.py) adapts when it writes code
itself: from the drift epoch on its own solutions are the revised ones (the canonical
solution with the revision line, or a mutant of it, which the real tests still reject).
What it cannot know is that a *stored* solution is stale: it reuses the first injected
success for the task that no injected reflection warns against, as before.

So after the drift, success depends on the memory: a policy that keeps injecting the old
successes (a long record of Q near 1) fails on them until their Q falls below the
alternatives, and it recovers when it injects the new successes (stored at Q_init) or
the reflections that warn against the stale ones. The measure is epochs-to-recover:
epochs from the drift until the success rate is back to RECOVERED of its level in the
epoch before the drift; a run that does not recover counts as one more epoch than it had
after the drift (a lower bound, so means over seeds stay defined; `recovered` says which).

The checker: before the drift the real HumanEval tests; from the drift on, code without
the revision line fails before the tests run ("written for the old interface"), code with
it goes to the real tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from . import humaneval
from .common import Outcome, Recalled, Task, epoch_of
from .harness import PolicyRun
from .scripted import ScriptedCoder

ENV = "drift"
REVISION = "# revised for the changed interface (v2)"
RECOVERED = 0.9  # recovered: the epoch's success rate is back to 90% of its pre-drift level


def drift_epoch(epochs: int) -> int:
    """The first epoch after the change: the middle of the run (epoch 6 of 10)."""
    return epochs // 2 + 1


class DriftCoder(ScriptedCoder):
    """ScriptedCoder whose environment changes at `drift` (see the module docstring)."""

    def __init__(self, seed: int, check: Callable[[humaneval.Problem, str], humaneval.CheckResult],
                 drift: int):
        super().__init__(seed, self._check)
        self.real_check = check
        self.drift = drift
        self._changed = False

    def _check(self, problem: humaneval.Problem, code: str) -> humaneval.CheckResult:
        if self._changed and REVISION not in code:
            return humaneval.CheckResult(
                False, "the environment changed: a solution written for the old interface "
                "fails; it needs the revised one")
        return self.real_check(problem, code)

    def attempt(self, task: Task, memories: list[Recalled], key: tuple[Any, ...]) -> Outcome:
        epoch = epoch_of(key)
        self._changed = epoch is not None and epoch >= self.drift
        if self._changed:
            problem: humaneval.Problem = task.data
            task = replace(task, data=replace(problem, canonical=f"{problem.canonical}\n{REVISION}"))
        return super().attempt(task, memories, key)


def epochs_to_recover(sr_per_epoch: Sequence[float], drift: int) -> tuple[int, bool]:
    """Epochs from `drift` (1-based) until the success rate is back to RECOVERED of the
    epoch before it (0: it never fell that far), and whether that happened within the run
    (if not: the epochs after the drift + 1)."""
    if not 2 <= drift <= len(sr_per_epoch):
        raise ValueError(f"drift epoch {drift} is outside 2..{len(sr_per_epoch)}")
    before = sr_per_epoch[drift - 2]
    for e in range(drift, len(sr_per_epoch) + 1):
        if sr_per_epoch[e - 1] >= RECOVERED * before:
            return e - drift, True
    return len(sr_per_epoch) - drift + 1, False


def summary(run: PolicyRun, drift: int) -> dict[str, Any]:
    """The standard summary plus the drift figures."""
    base = run.summary()
    sr = base["sr_per_epoch"]
    assert isinstance(sr, list)
    recover, recovered = epochs_to_recover(sr, drift)
    return {**base, "drift_epoch": drift, "sr_before_drift": sr[drift - 2],
            "sr_at_drift": sr[drift - 1], "recover": recover, "recovered": recovered}
