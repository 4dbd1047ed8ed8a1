"""The MemRL memory: two-phase recall, outcome learning and the write path.

`Memory` validates input, embeds text, ranks and learns; `MemoryStore` keeps the rows.
Credit rule for outcomes: by default every memory injected for the task is credited.
When the caller names `used_ids`, only those are credited; they must be a subset of the
injected memories (anything else is an error and changes nothing), and an empty list
records the outcome while crediting no memory.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from . import validation
from .config import MemoryConfig
from .embeddings import Embedder
from .errors import InvalidInputError, ModelMismatchError, UnknownTaskError
from .ranking import Candidate, select
from .redaction import clean_metadata, clean_text
from .store import MemoryRow, MemoryStore, NewMemory, TaskRow

DEFAULT_NAMESPACE = "default"


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


@dataclass(frozen=True)
class RecallResult:
    task_id: str
    namespace: str
    delta: float
    injected: list[Recalled]
    candidates: list[Recalled]  # the phase-A pool, best score first
    explored: bool = False
    selection_prob: float = 1.0

    @property
    def message(self) -> str:
        if self.injected:
            return (
                f"{_count(len(self.injected), 'memory', 'memories')} selected from "
                f"{_count(len(self.candidates), 'candidate', 'candidates')}; "
                f"report the outcome with task_id {self.task_id}."
            )
        return (
            f"No stored experience is similar enough to this task (gate delta={self.delta:.2f}); "
            f"nothing injected. Work without memory and still report the outcome with task_id "
            f"{self.task_id}."
        )


@dataclass(frozen=True)
class OutcomeResult:
    task_id: str
    applied: bool  # False: the task already had an outcome; nothing changed
    reward: float
    credited: dict[int, float]  # memory id -> Q now
    reflection_id: int | None = None

    @property
    def message(self) -> str:
        if not self.applied:
            return f"Outcome for task {self.task_id} was already reported; nothing changed."
        credited = _count(len(self.credited), "memory", "memories")
        return f"Outcome recorded; {credited} credited with reward {self.reward:+g}."


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


def new_task_id() -> str:
    return "t-" + secrets.token_hex(8)


class Memory:
    """MemRL over one store and one embedder."""

    def __init__(
        self,
        store: MemoryStore,
        embedder: Embedder,
        config: MemoryConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if store.model_id != embedder.model_id or store.index.dim != embedder.dim:
            raise ModelMismatchError(
                f"store opened for {store.model_id!r}/{store.index.dim}d but the embedder is "
                f"{embedder.model_id!r}/{embedder.dim}d: open the store with the embedder's "
                "model_id and dim"
            )
        self.store = store
        self.embedder = embedder
        self.config = config or MemoryConfig()
        self._rng = rng or random.Random()

    # -- recall ---------------------------------------------------------------------------

    def recall(
        self,
        task: str,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        k1: int | None = None,
        k2: int | None = None,
        lam: float | None = None,
        delta: float | None = None,
        epsilon: float | None = None,
        task_id: str | None = None,
    ) -> RecallResult:
        """Phase A (similarity gate, top-k1), phase B (value-aware top-k2), logged in the ledger."""
        cfg = self.config
        query = self._clean("task", task, cfg.max_intent_chars)
        namespace = validation.namespace(namespace)
        overrides: dict[str, Any] = {
            "k1": k1,
            "k2": k2,
            "lam": lam,
            "delta": delta,
            "epsilon": epsilon,
        }
        params = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
        if task_id is None:
            task_id = new_task_id()
        elif self.store.task_exists(validation.task_id(task_id)):
            raise InvalidInputError(f"task id {task_id!r} is already used: pick a new one")
        gate = params.delta
        if gate is None:
            gate = self.store.namespace_delta(namespace)
        if gate is None:
            gate = cfg.delta_small
        vector = self.embedder.embed_query(query)
        hits = self.store.nearest(vector, namespace, params.k1)
        pool = [Candidate(mid, sim, q) for mid, sim, q in hits if sim > gate]
        selection = select(pool, params.lam, params.k2, params.epsilon, self._rng)
        self.store.record_task(
            task_id,
            namespace,
            query,
            {
                "k1": params.k1,
                "k2": params.k2,
                "lam": params.lam,
                "delta": gate,
                "epsilon": params.epsilon,
            },
            selection,
        )
        rows = self.store.get([s.memory_id for s in selection.ranked])
        ranked = [
            Recalled(
                s.memory_id,
                rows[s.memory_id].kind,
                rows[s.memory_id].intent,
                rows[s.memory_id].experience,
                s.q,
                s.similarity,
                s.score,
                s.injected,
            )
            for s in selection.ranked
            if s.memory_id in rows
        ]
        return RecallResult(
            task_id=task_id,
            namespace=namespace,
            delta=gate,
            injected=[r for r in ranked if r.injected],
            candidates=ranked,
            explored=selection.explored,
            selection_prob=selection.selection_prob,
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
    ) -> OutcomeResult:
        """Apply Q <- Q + alpha (r - Q) to the credited memories of `task_id`, exactly once."""
        task_id = validation.task_id(task_id)
        outcome, r = self._reward(success, reward)
        used = None if used_ids is None else validation.memory_ids("used_ids", used_ids)
        if reflection is not None:
            reflection = self._clean("reflection", reflection, self.config.max_experience_chars)

        def credit(task: TaskRow) -> list[int]:
            if used is None:
                return task.injected
            stray = sorted(set(used) - set(task.injected))
            if stray:
                raise InvalidInputError(
                    f"used_ids {stray} were not injected for task {task_id} (injected: "
                    f"{task.injected}): name only memories that recall_experience returned"
                )
            return used

        lesson = None
        if reflection is not None:
            lesson = self._reflection_memory(task_id, reflection, r)
        task, new_q, applied, reflection_id = self.store.apply_outcome(
            task_id,
            outcome,
            r,
            used,
            self.config.alpha,
            self.config.learning,
            credit,
            reflection=lesson,
            config=self.config,
        )
        if task is None:
            raise _unknown_task(task_id)
        if not applied:
            return OutcomeResult(task_id, False, float(task.reward or 0.0), new_q)
        return OutcomeResult(task_id, True, r, new_q, reflection_id)

    def _reflection_memory(self, task_id: str, reflection: str, reward: float) -> NewMemory:
        """The memory a reflection becomes: filed under the task's own query and namespace."""
        task = self.store.task(task_id)
        if task is None:
            raise _unknown_task(task_id)
        return NewMemory(
            namespace=task.namespace,
            intent=task.query,
            experience=reflection,
            kind="success" if reward > 0 else "failure",
            content_hash=content_hash(task.query, reflection),
            metadata="{}",
            vector=self.embedder.embed_query(task.query),
            source_task_id=task_id,
            q=self.config.q_init,
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

    def store_many(self, items: Iterable[Experience]) -> list[StoreResult]:
        """Validate all, embed in batches, insert in one transaction."""
        cfg = self.config
        validated = [self._validated(item) for item in items]
        checked = [(c, meta) for c, meta, _ in validated]
        redactions = [n for _, _, n in validated]
        if not checked:
            return []
        for task_id in {c.task_id for c, _ in checked if c.task_id is not None}:
            if not self.store.task_exists(task_id):
                raise InvalidInputError(
                    f"task id {task_id!r} is unknown: link a memory only to a task id that "
                    "recall_experience returned, or leave task_id out"
                )
        vectors = self.embedder.embed([c.intent for c, _ in checked])
        rows = [
            NewMemory(
                namespace=c.namespace,
                intent=c.intent,
                experience=c.experience,
                kind=c.kind,
                content_hash=content_hash(c.intent, c.experience),
                metadata=meta,
                vector=v,
                source_task_id=c.task_id,
                q=cfg.q_init,
            )
            for (c, meta), v in zip(checked, vectors)
        ]
        results = self.store.insert(rows, cfg)
        return [
            StoreResult(mid, created, c.namespace, redactions[i])
            for i, ((mid, created), (c, _)) in enumerate(zip(results, checked))
        ]

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
        row = self.store.get([memory_id]).get(memory_id)
        if row is None or (namespace is not None and row.namespace != namespace):
            return None
        return row

    def iter_memories(self, namespace: str | None = None) -> Iterator[MemoryRow]:
        """Every memory (of one namespace, or all), oldest first."""
        return self.store.iter_memories(namespace)

    def stats(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Per-namespace counts, mean Q, success rate and the gate in force."""
        return self.store.stats(namespace)

    def forget(self, memory_ids: Sequence[int], namespace: str | None = None) -> ForgetResult:
        """Delete memories (their vectors too; the ledger keeps its history). With
        `namespace`, only that namespace's memories are deleted; the others are named in
        `refused` and left alone."""
        ids = validation.memory_ids("ids", memory_ids)
        rows = self.store.get(ids)
        refused = sorted(
            mid for mid, row in rows.items() if namespace is not None and row.namespace != namespace
        )
        deleted = self.store.delete([mid for mid in rows if mid not in refused])
        remaining = sorted(self.store.get(ids))
        return ForgetResult(sorted(set(ids)), deleted, remaining, refused)

    def task(self, task_id: str) -> TaskRow | None:
        return self.store.task(validation.task_id(task_id))

    def close(self) -> None:
        self.store.close()
