"""The MemRL memory: the one front door to recall, learning, the write path and upkeep.

`Memory` validates input, embeds text, applies the retrieval rule (retrieval.py) and the
learning rule, and keeps every write inside one storage transaction; the storage
(storage/) keeps the rows.

Credit rule for outcomes: by default every memory injected for the task is credited. When
the caller names `used_ids`, only those are credited; they must be a subset of the
injected memories (anything else is an error and changes nothing), and an empty list
records the outcome while crediting no memory. A credited memory that was forgotten since
the recall is skipped and named in the result (`forgotten`): ids are never reused, so a
pending task never credits a newcomer.

Scopes: a task belongs to the namespace it was recalled in. Reporting it, or linking a
memory to it, from another namespace is refused; so is forgetting another namespace's
memory when the caller names its namespace.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import gate_learning, inspection, retrieval, validation
from .config import DEFAULT_NAMESPACE as DEFAULT_NAMESPACE  # re-exported
from .config import MemoryConfig
from .embeddings import Embedder
from .errors import InvalidInputError, ModelMismatchError, UnknownTaskError
from .redaction import clean_metadata, clean_text
from .retrieval import Candidate, RecallParams
from .storage import MemoryRow, NewMemory, NewTask, PoolRow, Storage, TaskCandidate, TaskRow
from .storage.base import WriteTx, iter_memories


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


@dataclass(frozen=True)
class Recalled:
    id: int
    kind: str
    intent: str
    experience: str
    q: float
    similarity: float
    score: float
    injected: bool
    intent_id: int = 0


@dataclass(frozen=True)
class RecallResult:
    task_id: str | None  # None for a dry run (nothing written)
    namespace: str
    delta: float
    injected: list[Recalled]
    candidates: list[Recalled]  # the phase-A pool, best score first
    explored: bool = False
    selection_prob: float = 1.0
    intents: list[tuple[int, float]] = field(default_factory=list)  # phase A: (intent, sim)

    @property
    def message(self) -> str:
        report = (
            "dry run: nothing was recorded"
            if self.task_id is None
            else f"report the outcome with task_id {self.task_id}"
        )
        if self.injected:
            return (
                f"{_count(len(self.injected), 'memory', 'memories')} selected from "
                f"{_count(len(self.candidates), 'candidate', 'candidates')}; {report}."
            )
        return (
            f"No stored experience is similar enough to this task (gate delta={self.delta:.2f}); "
            f"nothing injected. Work without memory; {report}."
        )


@dataclass(frozen=True)
class OutcomeResult:
    task_id: str
    applied: bool  # False: the task already had an outcome; nothing changed
    reward: float
    credited: dict[int, float]  # memory id -> Q now
    reflection_id: int | None = None
    forgotten: list[int] = field(default_factory=list)  # credited, but deleted since the recall

    @property
    def message(self) -> str:
        if not self.applied:
            return f"Outcome for task {self.task_id} was already reported; nothing changed."
        credited = _count(len(self.credited), "memory", "memories")
        text = f"Outcome recorded; {credited} credited with reward {self.reward:+g}."
        if self.forgotten:
            text += f" Memories {self.forgotten} were forgotten since the recall: not credited."
        return text


@dataclass(frozen=True)
class StoreResult:
    id: int
    created: bool
    namespace: str
    redacted: int = 0  # secrets replaced by [REDACTED] before storing


@dataclass(frozen=True)
class ForgetResult:
    requested: list[int]
    deleted: int
    still_present: list[int]  # requested ids that exist after the call
    refused: list[int]  # ids of another namespace, left alone


@dataclass
class Experience:
    """One memory to store (the argument of `store_many`)."""

    intent: str
    experience: str
    kind: str = "success"
    namespace: str = DEFAULT_NAMESPACE
    task_id: str | None = None
    metadata: dict[str, Any] | None = field(default=None)


def content_hash(intent: str, experience: str) -> str:
    return hashlib.sha256(f"{intent}\x1f{experience}".encode()).hexdigest()


def _unknown_task(task_id: str) -> UnknownTaskError:
    return UnknownTaskError(
        f"unknown task id {task_id!r}: pass the task_id that recall_experience returned "
        "for this task (a recall starts every task)"
    )


def _check_scope(task: TaskRow, namespace: str | None) -> None:
    if namespace is not None and task.namespace != namespace:
        raise InvalidInputError(
            f"task {task.task_id} belongs to namespace {task.namespace!r}, not {namespace!r}: "
            "use the namespace it was recalled in"
        )


def new_task_id() -> str:
    return "t-" + secrets.token_hex(8)


class Memory:
    """MemRL over one storage backend and one embedder."""

    def __init__(
        self,
        storage: Storage,
        embedder: Embedder,
        config: MemoryConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if storage.model_id != embedder.model_id or storage.dim != embedder.dim:
            raise ModelMismatchError(
                f"storage opened for {storage.model_id!r}/{storage.dim}d but the embedder is "
                f"{embedder.model_id!r}/{embedder.dim}d: open the storage with the embedder's "
                "model_id and dim"
            )
        self.storage = storage
        self.embedder = embedder
        self.config = config or MemoryConfig()
        self._rng = rng or random.Random()

    # -- recall ---------------------------------------------------------------------------

    def recall(
        self,
        task: str,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        k: int | None = None,
        k1: int | None = None,
        k2: int | None = None,
        lam: float | None = None,
        delta: float | None = None,
        epsilon: float | None = None,
        task_id: str | None = None,
        dry_run: bool = False,
    ) -> RecallResult:
        """Two-phase retrieval (retrieval.py), logged in the ledger unless `dry_run`."""
        params = RecallParams.of(self.config, k=k, k1=k1, k2=k2, lam=lam, delta=delta, epsilon=epsilon)
        query = self._clean("task", task, self.config.max_intent_chars)
        namespace = validation.namespace(namespace)
        if task_id is not None:
            task_id = validation.task_id(task_id)
        vector = self.embedder.embed_query(query)
        with self.storage.read() as r:
            r.check_model(namespace)
            gate = retrieval.gate(
                params.delta, r.namespace_delta(namespace), self.config,
                r.learned_delta(namespace) if self.config.gate_learning else None,
            )
            intents = retrieval.phase_a(r.nearest_intents(vector, namespace, params.k1), gate, params.k1)
            rows = r.members([iid for iid, _ in intents], params.per_intent)
        similarity = dict(intents)
        pool = {row.id: PoolRow(row, similarity[row.intent_id]) for row in rows}
        selection = retrieval.select(
            [Candidate(p.memory.id, p.similarity, p.memory.q) for p in pool.values()],
            params.lam,
            params.k2,
            params.epsilon,
            self._rng,
        )
        if not dry_run:
            task_id = task_id or new_task_id()
            with self.storage.write() as tx:
                tx.record_task(
                    NewTask(
                        task_id, namespace, query, params.k1, params.k2, params.lam, gate,
                        params.epsilon, selection.explored, selection.selection_prob,
                        [
                            TaskCandidate(s.memory_id, rank, s.similarity, s.q, s.score, s.injected)
                            for rank, s in enumerate(selection.ranked)
                        ],
                    )
                )
        ranked = [
            Recalled(
                s.memory_id, pool[s.memory_id].memory.kind, pool[s.memory_id].memory.intent,
                pool[s.memory_id].memory.experience, s.q, s.similarity, s.score, s.injected,
                pool[s.memory_id].memory.intent_id,
            )
            for s in selection.ranked
        ]
        return RecallResult(
            task_id=None if dry_run else task_id,
            namespace=namespace,
            delta=gate,
            injected=[r for r in ranked if r.injected],
            candidates=ranked,
            explored=selection.explored,
            selection_prob=selection.selection_prob,
            intents=intents,
        )

    # -- learning -------------------------------------------------------------------------

    def report(
        self,
        task_id: str,
        *,
        success: bool | None = None,
        reward: float | None = None,
        used_ids: Sequence[int] | None = None,
        reflection: str | None = None,
        namespace: str | None = None,
    ) -> OutcomeResult:
        """Apply Q <- Q + alpha (r - Q) to the credited memories of `task_id`, exactly once.
        With `namespace`, the task must have been recalled in it."""
        task_id = validation.task_id(task_id)
        outcome, r = self._reward(success, reward)
        used = None if used_ids is None else validation.memory_ids("used_ids", used_ids)
        if namespace is not None:
            namespace = validation.namespace(namespace)
        lesson = None
        if reflection is not None:
            lesson = self._reflection_memory(task_id, reflection, r, namespace)
        with self.storage.write() as tx:
            task = tx.task(task_id)
            if task is None:
                raise _unknown_task(task_id)
            _check_scope(task, namespace)
            if task.reward is not None:
                return OutcomeResult(task_id, False, float(task.reward), tx.q_of(task.credited))
            credit = self._credit(task, used)
            alpha = self.config.alpha if self.config.learning else None
            done = tx.apply_outcome(task_id, outcome, r, used, credit, alpha)
            if self.config.gate_learning:
                self._learn_gate(tx, task.namespace)
            reflection_id = None
            if lesson is not None:
                [(reflection_id, _)] = tx.insert_memories([lesson], self.config)
        return OutcomeResult(task_id, True, r, done.new_q, reflection_id, done.forgotten)

    def _learn_gate(self, tx: WriteTx, namespace: str) -> None:
        """Count the outcome; every gate_learning.EVERY outcomes, recompute the
        namespace's learned gate from its last WINDOW reported tasks (same transaction)."""
        if not gate_learning.due(tx.count_gate_report(namespace)):
            return
        tasks = tx.reported_tasks(namespace, gate_learning.WINDOW)
        evidence = gate_learning.learn(tasks, tx.namespace_delta(namespace), self.config)
        tx.set_learned_delta(namespace, evidence.learned)

    @staticmethod
    def _credit(task: TaskRow, used: list[int] | None) -> list[int]:
        if used is None:
            return task.injected
        stray = sorted(set(used) - set(task.injected))
        if stray:
            raise InvalidInputError(
                f"used_ids {stray} were not injected for task {task.task_id} (injected: "
                f"{task.injected}): name only memories that recall_experience returned"
            )
        return used

    def _reflection_memory(
        self, task_id: str, reflection: str, reward: float, namespace: str | None
    ) -> NewMemory:
        """The memory a reflection becomes: filed under the task's own query and namespace."""
        text, _ = self._clean_counted("reflection", reflection, self.config.max_experience_chars)
        with self.storage.read() as r:
            task = r.task(task_id)
        if task is None:
            raise _unknown_task(task_id)
        _check_scope(task, namespace)
        return self._new_memory(
            Experience(
                task.query, text, "success" if reward > 0 else "failure", task.namespace, task_id
            ),
            "{}",
            self.embedder.embed_query(task.query),
        )

    def _reward(self, success: bool | None, reward: float | None) -> tuple[str, float]:
        if success is None and reward is None:
            raise InvalidInputError("give success (true/false) or a reward in [-1, 1]")
        if success is not None and reward is not None:
            raise InvalidInputError("give either success or reward, not both")
        if reward is not None:
            return "reward", validation.reward(reward)
        if not isinstance(success, bool):
            raise InvalidInputError(f"success must be true or false, got {success!r}")
        if success:
            return "success", self.config.success_reward
        return "failure", self.config.failure_reward

    # -- write path -----------------------------------------------------------------------

    def store_experience(
        self,
        intent: str,
        experience: str,
        kind: str = "success",
        namespace: str = DEFAULT_NAMESPACE,
        *,
        task_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> StoreResult:
        """Store one experience with Q_init; the same intent + experience again returns its id."""
        return self.store_many(
            [Experience(intent, experience, kind, namespace, task_id, metadata)]
        )[0]

    def store_many(
        self, items: Iterable[Experience], learned: Sequence[dict[str, Any]] | None = None
    ) -> list[StoreResult]:
        """Validate all, embed in batches, insert in one transaction. `learned` (import)
        gives per item the Q and statistics to keep instead of Q_init."""
        validated = [self._validated(item) for item in items]
        if not validated:
            return []
        vectors = self.embedder.embed([c.intent for c, _, _ in validated])
        rows = [
            self._new_memory(c, meta, v, **(learned[i] if learned else {}))
            for i, ((c, meta, _), v) in enumerate(zip(validated, vectors))
        ]
        with self.storage.write() as tx:
            for c, _, _ in validated:
                if c.task_id is not None:
                    self._check_task_link(tx.task(c.task_id), c)
            results = tx.insert_memories(rows, self.config)
        return [
            StoreResult(mid, created, c.namespace, n)
            for (mid, created), (c, _, n) in zip(results, validated)
        ]

    @staticmethod
    def _check_task_link(task: TaskRow | None, item: Experience) -> None:
        if task is None:
            raise InvalidInputError(
                f"task id {item.task_id!r} is unknown: link a memory only to a task id that "
                "recall_experience returned, or leave task_id out"
            )
        _check_scope(task, item.namespace)

    def _new_memory(
        self, c: Experience, metadata: str, vector: Any, **learned: Any
    ) -> NewMemory:
        return NewMemory(
            namespace=c.namespace,
            intent=c.intent,
            intent_key=retrieval.intent_key(c.intent),
            experience=c.experience,
            kind=c.kind,
            content_hash=content_hash(c.intent, c.experience),
            metadata=metadata,
            vector=vector,
            source_task_id=c.task_id,
            **{"q": self.config.q_init, **learned},
        )

    def check_experience(self, item: Experience) -> None:
        """Raise InvalidInputError if `store_many([item])` would refuse it (nothing is written)."""
        self._validated(item)

    def _validated(self, item: Experience) -> tuple[Experience, str, int]:
        """The item with its texts stripped, checked and redacted, its metadata as JSON text,
        and how many secrets were redacted."""
        cfg = self.config
        intent, n_intent = self._clean_counted("intent", item.intent, cfg.max_intent_chars)
        experience, n_exp = self._clean_counted(
            "experience", item.experience, cfg.max_experience_chars
        )
        checked = Experience(
            intent=intent,
            experience=experience,
            kind=validation.kind(item.kind),
            namespace=validation.namespace(item.namespace),
            task_id=None if item.task_id is None else validation.task_id(item.task_id),
        )
        meta, n_meta = clean_metadata(item.metadata, cfg.max_metadata_chars, cfg.redact_secrets)
        return checked, meta, n_intent + n_exp + n_meta

    def _clean(self, name: str, value: object, max_chars: int) -> str:
        """A validated text with secrets redacted."""
        return self._clean_counted(name, value, max_chars)[0]

    def _clean_counted(self, name: str, value: object, max_chars: int) -> tuple[str, int]:
        return clean_text(name, value, max_chars, self.config.redact_secrets)

    # -- the rest of the front door -------------------------------------------------------

    def get(self, memory_id: int, namespace: str | None = None) -> MemoryRow | None:
        """One memory by id; with `namespace`, None unless it belongs to that namespace."""
        with self.storage.read() as r:
            row = r.get([memory_id]).get(memory_id)
        if row is None or (namespace is not None and row.namespace != namespace):
            return None
        return row

    def iter_memories(self, namespace: str | None = None) -> Iterator[MemoryRow]:
        """Every memory (of one namespace, or all), oldest first."""
        return iter_memories(self.storage, namespace)

    def stats(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Per-namespace counts, mean Q, success rate, and the gate a recall applies now:
        `delta`, where it comes from (`delta_kind`: explicit, learned, calibrated or
        default; `delta_source`: the same in words), the calibrated and learned values
        (`delta_calibrated`, `delta_learned`; the learned one applies only with
        `gate_learning` on), and the
        evidence of gate learning over the last gate_learning.WINDOW reported tasks
        (`gate_evidence`: tasks injected above and below the gate and their success
        rates, tasks with an empty pool, the false-positive injection rate)."""
        cfg = self.config
        with self.storage.read() as r:
            rows = r.stats(namespace)
            ledgers = {
                row["namespace"]: r.reported_tasks(row["namespace"], gate_learning.WINDOW)
                for row in rows
            }
        for row in rows:
            calibrated, learned = row["delta"], row["delta_learned"]
            row["delta_calibrated"] = calibrated
            row["delta"] = retrieval.gate(cfg.delta, calibrated, cfg, learned)
            if cfg.delta is not None:
                source, detail = "explicit", "set by --delta"
            elif cfg.gate_learning and learned is not None:
                source, detail = "learned", "learned from outcomes in this namespace (--learn-gate)"
            elif calibrated is not None:
                source, detail = "calibrated", "calibrated on this namespace's intents"
            else:
                source = "default"
                detail = f"default until the namespace has {cfg.calibration_min} distinct intents"
            row["delta_source"] = detail
            row["delta_kind"] = source
            row["gate_learning"] = cfg.gate_learning
            evidence = gate_learning.learn(ledgers[row["namespace"]], calibrated, cfg)
            row["gate_evidence"] = evidence.as_dict()
            row["false_positive_rate"] = evidence.false_positive_rate
        return rows

    def forget(self, memory_ids: Sequence[int], namespace: str | None = None) -> ForgetResult:
        """Delete memories (their vectors too; the ledger keeps its history). With
        `namespace`, only that namespace's memories are deleted; the others are named in
        `refused` and left alone."""
        ids = validation.memory_ids("ids", memory_ids)
        with self.storage.write() as tx:
            rows = tx.get(ids)
            refused = sorted(
                mid for mid, row in rows.items() if namespace is not None and row.namespace != namespace
            )
            deleted = tx.delete_memories([mid for mid in rows if mid not in refused])
            remaining = sorted(tx.get(ids))
        return ForgetResult(ids, deleted, remaining, refused)

    def task(self, task_id: str) -> TaskRow | None:
        with self.storage.read() as r:
            return r.task(validation.task_id(task_id))

    # -- inspection (read-only; the page of `memrl ui`, see inspection.py) ------------------

    def memories_page(self, namespace: str, **query: Any) -> inspection.MemoryPage:
        """One page of a namespace's memories with their use and Q history. `query`: sort
        (q | created | updates | id), descending, kind, q_min, q_max, text, after (the
        page's `next_after`), limit."""
        return inspection.memories_page(
            self.storage, inspection.memory_filter(namespace, **query)
        )

    def memory_history(self, memory_id: int, limit: int = 500) -> inspection.MemoryHistory:
        """A memory (None once forgotten) and the last `limit` tasks that had it in their pool."""
        return inspection.memory_history(self.storage, memory_id, limit)

    def ledger_page(self, namespace: str, **query: Any) -> inspection.LedgerPage:
        """One page of the task ledger, newest first, each task with its pool. `query`:
        outcome (success | failure | pending), empty_pool, before (the page's
        `next_before`), limit."""
        return inspection.ledger_page(self.storage, inspection.ledger_filter(namespace, **query))

    def learning_curve(
        self, namespace: str, window: int = 20, limit: int = 10_000
    ) -> inspection.LearningCurve:
        """Rolling success rates over the last `limit` tasks (inspection.py)."""
        return inspection.learning_curve(self.storage, namespace, window, limit)

    def preload(self, namespace: str) -> int:
        """Read a namespace's search data into memory ahead of its first recall."""
        return self.storage.preload(validation.namespace(namespace))

    def close(self) -> None:
        self.storage.close()
