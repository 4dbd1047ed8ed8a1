"""The runtime-learning protocol, played by the host against one memory backend.

Per epoch, per task: recall -> the agent attempts with the injected memories -> the
environment checks -> report the outcome -> store a memory (a script on success, a
reflection on failure). After the last epoch the memory is frozen (no reports, no stores)
and the agent is tested on the held-out split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from . import metrics
from .common import Agent, MemoryDraft, Task, stable_rng, train_key
from .memory_client import MemoryBackend

TRANSFER = "transfer"


@dataclass(frozen=True)
class Policy:
    name: str
    label: str
    flags: tuple[str, ...] | None  # `memrl serve` flags; None: no memory at all
    credit_used: bool = False  # report used_ids (what the agent acted on), not every injected
    # per-memory feedback: a reused solution that failed is reported `outdated` (archived)
    feedback: bool = False


# The paper's rule, named explicitly: the server's defaults add UCB and change detection.
PAPER = ("--explore", "none", "--no-change-detection")
POLICIES = (
    Policy("no_memory", "no memory", None),
    Policy("rag", "RAG (similarity only, no learning)", ("--lam", "0", "--no-learning", *PAPER)),
    Policy("memrl", "MemRL (lambda 0.5)", ("--lam", "0.5", *PAPER)),
    Policy("lam0", "lambda 0, learning on", ("--lam", "0", *PAPER)),
    Policy("lam1", "lambda 1", ("--lam", "1", *PAPER)),
    Policy("default", "memrl's defaults (UCB w 2 + change detection)", ("--lam", "0.5")),
)
# Not in the default set: MemRL crediting only the memories the agent acted on (used_ids);
# MemRL exploring with epsilon 0.2, whose ledger `memrl replay` can evaluate other settings on;
# MemRL with the gate learned from outcomes (memrl/gate_learning.py).
EXTRA_POLICIES = (
    Policy("memrl_used", "MemRL, used_ids credit", ("--lam", "0.5", *PAPER), credit_used=True),
    # Beyond the paper (learning.py, retrieval.py): one mechanism each, on the paper's rule.
    Policy("memrl_ucb", "MemRL + UCB (w 1)",
           ("--lam", "0.5", "--explore", "ucb", "--explore-weight", "1", "--no-change-detection")),
    Policy("memrl_ucb2", "MemRL + UCB (w 2)",
           ("--lam", "0.5", "--explore", "ucb", "--explore-weight", "2", "--no-change-detection")),
    Policy("memrl_ts", "MemRL + Thompson",
           ("--lam", "0.5", "--explore", "thompson", "--explore-weight", "1",
            "--no-change-detection")),
    Policy("memrl_cd", "MemRL + change detection",
           ("--lam", "0.5", "--explore", "none", "--change-threshold", "1.2")),
    Policy("memrl_ucb2_cd", "MemRL + UCB (w 2) + change detection",
           ("--lam", "0.5", "--explore", "ucb", "--explore-weight", "2",
            "--change-threshold", "1.2")),
    Policy("memrl_eps", "MemRL, epsilon 0.2", ("--lam", "0.5", "--epsilon", "0.2", *PAPER)),
    # forgetting by utility: at most 60 memories per namespace (prune's rule on every store)
    Policy("memrl_cap", "MemRL, capacity 60", ("--lam", "0.5", "--capacity", "60", *PAPER)),
    Policy("memrl_gate", "MemRL, learned gate", ("--lam", "0.5", "--learn-gate", *PAPER)),
    Policy("memrl_fb", "MemRL, failed reuse reported outdated", ("--lam", "0.5", *PAPER),
           feedback=True),
)
ALL_POLICIES = POLICIES + EXTRA_POLICIES


@dataclass(frozen=True)
class Attempt:
    phase: str  # "train" or "transfer"
    epoch: int  # 1..E for train, 0 for transfer
    task_id: str
    success: bool
    injected: tuple[int, ...]
    reused: int | None
    stored: int | None = None  # id of the memory stored after it (None in transfer)
    used: tuple[int, ...] | None = None  # injected memories the agent acted on (None: unknown)


@dataclass
class PolicyRun:
    policy: str
    attempts: list[Attempt] = field(default_factory=list)
    final_q: dict[int, float] = field(default_factory=dict)
    stored: set[int] = field(default_factory=set)
    bank_ids: dict[str, list[int]] = field(default_factory=dict)  # source task -> bank memories

    def epochs(self) -> list[dict[str, bool]]:
        by_epoch: dict[int, dict[str, bool]] = {}
        for a in self.attempts:
            if a.phase == "train":
                by_epoch.setdefault(a.epoch, {})[a.task_id] = a.success
        return [by_epoch[e] for e in sorted(by_epoch)]

    def summary(self) -> dict[str, object]:
        epochs = self.epochs()
        transfer = {a.task_id: a.success for a in self.attempts if a.phase == TRANSFER}
        train = [a for a in self.attempts if a.phase == "train"]
        reused = [a for a in train if a.reused is not None]
        return {
            "sr_per_epoch": metrics.sr_per_epoch(epochs),
            "last": metrics.last(epochs),
            "csr": metrics.csr(epochs),
            "forgetting": metrics.forgetting(epochs),
            "transfer_sr": metrics.success_rate(transfer) if transfer else None,
            "q_success_r": metrics.q_success_r(
                ((a.injected, a.success) for a in train if a.injected), self.final_q
            ),
            "memories_stored": len(self.stored),
            "reuse_rate": len(reused) / len(train) if train else 0.0,
            "reuse_success": sum(a.success for a in reused) / len(reused) if reused else None,
            "fp_injection": metrics.false_positive_injection(
                (a.injected, a.used, a.success) for a in train
            ),
        }


def epoch_order(tasks: Sequence[Task], seed: int, epoch: int) -> list[Task]:
    """The task order of one epoch: shuffled, the same for every policy."""
    order = list(tasks)
    stable_rng(seed, "order", epoch).shuffle(order)
    return order


async def run_policy(
    policy: Policy,
    agent: Agent,
    memory: MemoryBackend,
    train: Sequence[Task],
    held_out: Sequence[Task],
    epochs: int,
    seed: int,
    bank: Sequence[MemoryDraft] = (),
    tick: Callable[[], None] = lambda: None,
) -> PolicyRun:
    run = PolicyRun(policy.name)
    for draft in bank:
        mid = await memory.store(draft)
        run.stored.add(mid)
        if draft.source is not None:
            run.bank_ids.setdefault(draft.source, []).append(mid)
    for epoch in range(1, epochs + 1):
        for task in epoch_order(train, seed, epoch):
            key = train_key(seed, task, epoch)
            await _train_step(run, policy, agent, memory, task, key, epoch)
            tick()
    for task in held_out:
        _, injected = await memory.recall(task.query)  # frozen: no report, no store
        outcome = agent.attempt(task, injected, (seed, task.env, task.task_id, TRANSFER))
        run.attempts.append(Attempt(TRANSFER, 0, task.task_id, outcome.success,
                                    tuple(m.id for m in injected), outcome.reused))
        tick()
    run.stored.discard(0)
    return run


async def _train_step(run: PolicyRun, policy: Policy, agent: Agent, memory: MemoryBackend,
                      task: Task, key: tuple[object, ...], epoch: int) -> None:
    task_id, injected = await memory.recall(task.query)
    run.final_q.update({m.id: m.q for m in injected})
    outcome = agent.attempt(task, injected, key)
    if task_id is not None:
        used = list(outcome.used) if policy.credit_used and outcome.used is not None else None
        stale = policy.feedback and not outcome.success and outcome.reused is not None
        verdicts = {outcome.reused: "outdated"} if stale and outcome.reused else None
        run.final_q.update(await memory.report(task_id, outcome.success, used, verdicts))
    stored = await memory.store(agent.write_memory(task, outcome), task_id)
    run.stored.add(stored)
    run.attempts.append(Attempt("train", epoch, task.task_id, outcome.success,
                                tuple(m.id for m in injected), outcome.reused,
                                stored or None, outcome.used))
