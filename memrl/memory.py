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

Per-memory feedback (`report(..., feedback={id: verdict})`): every id must be in the task's
phase-A pool. `useful`: the memory is credited with `success_reward` whatever the task's
outcome (even if `used_ids` left it out); `incorrect`: credited with `failure_reward`
whatever the outcome; `outdated`: not credited, archived with reason 'outdated'. A verdict
overrides `used_ids` for its memory. The verdicts are logged in the ledger
(`memory_feedback`); like the outcome, they apply once.

The archive: a memory leaves retrieval without being lost. `archive` (reason 'manual'),
a correction (`store_experience(..., supersedes=[ids])`: reason 'superseded'), an
'outdated' verdict and `prune` (reason 'pruned') move memories to the archive through the
path of forget (an intent left empty leaves the search index); `restore` brings them back
under the same ids. Every id is checked at entry: it must exist (live, or archived for a
restore) and belong to the call's namespace, else InvalidInputError and nothing is written.

Forgetting by utility (`prune`), with a capacity C per namespace (MemoryConfig.capacity
or the call's): while the namespace holds more than C memories, archive in this order
1. superseded leftovers: memories superseded by a correction that is live too (restored
   after being superseded), oldest id first;
2. memories with evidence of low utility: n_updates >= prune_min_updates and
   Q < prune_q_below, lowest Q first;
3. stale memories: not injected for prune_stale_days days (never injected: counted from
   their creation), least recently used first.
What no rule selects stays, even above the capacity (the result says how many).

Scopes: a task belongs to the namespace it was recalled in. Reporting it, or linking a
memory to it, from another namespace is refused; so is forgetting another namespace's
memory when the caller names its namespace.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
from .storage.base import ARCHIVE_REASONS, ArchivedRow, WriteTx, iter_archived, iter_memories


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
    successes: float = 0.0  # credited evidence (learning.py)
    failures: float = 0.0
    q_sd: float = 0.0  # posterior standard deviation of the utility


def _recalled(s: retrieval.Scored, m: MemoryRow) -> Recalled:
    return Recalled(
        s.memory_id, m.kind, m.intent, m.experience, s.q, s.similarity, s.score, s.injected,
        m.intent_id, m.successes, m.failures, m.q_sd,
    )


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
    feedback: dict[int, str] = field(default_factory=dict)  # the verdicts applied
    archived: list[int] = field(default_factory=list)  # 'outdated' memories archived

    @property
    def message(self) -> str:
        if not self.applied:
            return f"Outcome for task {self.task_id} was already reported; nothing changed."
        credited = _count(len(self.credited), "memory", "memories")
        text = f"Outcome recorded; {credited} credited with reward {self.reward:+g}."
        verdicts = {v: [m for m, w in self.feedback.items() if w == v] for v in validation.VERDICTS}
        if verdicts["useful"] or verdicts["incorrect"]:
            text += (
                f" Feedback: useful {verdicts['useful']}, incorrect {verdicts['incorrect']} "
                "credited with the success / failure reward."
            )
        if self.forgotten:
            text += f" Memories {self.forgotten} were forgotten since the recall: not credited."
        if self.archived:
            text += f" Memories {self.archived} marked outdated were archived."
        return text


@dataclass(frozen=True)
class StoreResult:
    id: int
    created: bool
    namespace: str
    redacted: int = 0  # secrets replaced by [REDACTED] before storing
    superseded: list[int] = field(default_factory=list)  # archived: this memory replaces them
    archived: bool = False  # stored straight into the archive (Experience.archive_reason)


@dataclass(frozen=True)
class ArchiveResult:
    archived: list[int]
    reason: str


@dataclass(frozen=True)
class RestoreResult:
    restored: list[int]


@dataclass(frozen=True)
class PruneChoice:
    """A memory `prune` archives (or would, in a dry run), and the rule that chose it."""

    id: int
    rule: str  # superseded | low-q | stale
    q: float
    n_updates: int
    last_injected: float | None
    why: str


@dataclass(frozen=True)
class PruneResult:
    namespace: str
    capacity: int
    before: int  # memories in retrieval before
    after: int  # ... and after (before, in a dry run: nothing was written)
    chosen: list[PruneChoice]
    dry_run: bool
    over: int  # still above capacity: no rule selects more


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
    supersedes: Sequence[int] | None = None  # ids this memory corrects: archived once stored
    archive_reason: str | None = None  # import of an archived memory: archived once stored


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


def _reason(value: object) -> str:
    if value not in ARCHIVE_REASONS:
        raise InvalidInputError(
            f"archive reason {validation.shown(value)} is invalid: use one of "
            f"{', '.join(ARCHIVE_REASONS)}"
        )
    return str(value)


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
            [
                Candidate(p.memory.id, p.similarity, p.memory.q, p.memory.q_sd)
                for p in pool.values()
            ],
            params.lam,
            params.k2,
            params.epsilon,
            self._rng,
            params.explore,
            params.explore_weight,
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
        ranked = [_recalled(s, pool[s.memory_id].memory) for s in selection.ranked]
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
        feedback: Mapping[int, str] | None = None,
    ) -> OutcomeResult:
        """Apply Q <- Q + alpha (r - Q) to the credited memories of `task_id`, exactly once.
        With `namespace`, the task must have been recalled in it. `feedback`: per-memory
        verdicts (module docstring)."""
        task_id = validation.task_id(task_id)
        outcome, r = self._reward(success, reward)
        used = None if used_ids is None else validation.memory_ids("used_ids", used_ids)
        verdicts = [] if feedback is None else validation.feedback(feedback)
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
            rewards, outdated = self._verdicts(task, verdicts)
            credit = sorted((set(credit) | set(rewards)) - set(outdated))
            if outdated:  # two sets of rows change: take their locks at once, in id order
                tx.lock_memories([*credit, *outdated])
            done = tx.apply_outcome(task_id, outcome, r, used, credit, self.config.rule, rewards)
            if verdicts:
                tx.record_feedback(task_id, verdicts)
            archived = tx.archive_memories(outdated, "outdated") if outdated else []
            if self.config.gate_learning:
                self._learn_gate(tx, task.namespace)
            reflection_id = None
            if lesson is not None:
                [(reflection_id, _)] = tx.insert_memories([lesson], self.config)
        return OutcomeResult(
            task_id, True, r, done.new_q, reflection_id, done.forgotten, dict(verdicts), archived
        )

    def _verdicts(
        self, task: TaskRow, verdicts: list[tuple[int, str]]
    ) -> tuple[dict[int, float], list[int]]:
        """The per-memory rewards of `useful` / `incorrect` and the `outdated` ids; every
        id must be in the task's pool."""
        stray = sorted(m for m, _ in verdicts if m not in set(task.pool))
        if stray:
            raise InvalidInputError(
                f"feedback names memories {stray} that were not in task {task.task_id}'s "
                f"pool (pool: {task.pool}): give feedback only on memories the recall returned"
            )
        cfg = self.config
        rewards = {
            m: cfg.success_reward if v == "useful" else cfg.failure_reward
            for m, v in verdicts
            if v != "outdated"
        }
        return rewards, [m for m, v in verdicts if v == "outdated"]

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
        supersedes: Sequence[int] | None = None,
    ) -> StoreResult:
        """Store one experience with Q_init; the same intent + experience again returns its id.
        `supersedes`: ids of memories of the namespace this one corrects; they are archived
        (reason 'superseded') in the same transaction, and recall returns this one instead."""
        return self.store_many(
            [
                Experience(intent, experience, kind, namespace, task_id, metadata, supersedes)
            ]
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
        superseded: list[list[int]] = []
        with self.storage.write() as tx:
            claimed: set[int] = set()
            corrected = [m for c, _, _ in validated for m in c.supersedes or []]
            if corrected:  # checked and archived under their locks: no one moves them between
                tx.lock_memories(corrected)
            for c, _, _ in validated:
                if c.task_id is not None:
                    self._check_task_link(tx.task(c.task_id), c)
                if c.supersedes:
                    self._check_live(tx, c.supersedes, c.namespace, "supersedes")
                    twice = sorted(claimed & set(c.supersedes))
                    if twice:
                        raise InvalidInputError(
                            f"supersedes: memories {twice} are superseded by two items: "
                            "name each superseded memory once; nothing was stored"
                        )
                    claimed.update(c.supersedes)
            results = tx.insert_memories(rows, self.config)
            for (mid, _), (c, _, _) in zip(results, validated):
                if not c.supersedes:
                    superseded.append([])
                    continue
                if mid in c.supersedes:
                    raise InvalidInputError(
                        f"supersedes: the correction has the same intent and experience as "
                        f"memory {mid}, which it would supersede: change the text of the "
                        "correction; nothing was stored"
                    )
                superseded.append(tx.archive_memories(c.supersedes, "superseded", mid))
            shelved: set[int] = set()
            for (mid, created), (c, _, _) in zip(results, validated):
                if created and c.archive_reason is not None:
                    shelved.update(tx.archive_memories([mid], c.archive_reason))
        out = [
            StoreResult(mid, created, c.namespace, n, sup, mid in shelved)
            for (mid, created), (c, _, n), sup in zip(results, validated, superseded)
        ]
        self._prune_if_over([r.namespace for r in out if r.created])
        return out

    def _check_live(self, tx: Any, ids: Sequence[int], namespace: str | None, name: str) -> None:
        """Every id is a live memory (of `namespace`, if given); else InvalidInputError
        naming the ids and what to fix."""
        rows = tx.get(ids)
        missing = [m for m in ids if m not in rows]
        shelved = tx.archived(missing) if missing else {}
        other = sorted(
            m for m, row in [*rows.items(), *((k, a.memory) for k, a in shelved.items())]
            if namespace is not None and row.namespace != namespace
        )
        problems = []
        unknown = sorted(m for m in missing if m not in shelved)
        if unknown:
            problems.append(f"no memory has id {unknown}")
        if other:
            problems.append(f"memories {other} are not in namespace {namespace!r}")
        archived = sorted(m for m in shelved if m not in other)
        if archived:
            why = ", ".join(f"{m}: {shelved[m].reason}" for m in archived)
            problems.append(
                f"memories {archived} are archived ({why}): restore them first, or leave "
                "them out"
            )
        if problems:
            raise InvalidInputError(
                f"{name}: {'; '.join(problems)}. Name live memories of the namespace; "
                "nothing was written"
            )

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
            supersedes=(
                None
                if item.supersedes is None
                else validation.memory_ids("supersedes", item.supersedes)
            ),
            archive_reason=None if item.archive_reason is None else _reason(item.archive_reason),
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
        """Delete memories (their vectors too; the ledger keeps its history), archived ones
        included. With `namespace`, only that namespace's memories are deleted; the others
        are named in `refused` and left alone."""
        ids = validation.memory_ids("ids", memory_ids)
        with self.storage.write() as tx:
            rows = tx.get(ids)
            shelved = {m: a.memory for m, a in tx.archived(ids).items()}
            refused = sorted(
                mid
                for mid, row in [*rows.items(), *shelved.items()]
                if namespace is not None and row.namespace != namespace
            )
            deleted = tx.delete_memories([mid for mid in rows if mid not in refused])
            deleted += tx.delete_archived([mid for mid in shelved if mid not in refused])
            remaining = sorted([*tx.get(ids), *tx.archived(ids)])
        return ForgetResult(ids, deleted, remaining, refused)

    # -- the archive and forgetting by utility -------------------------------------------------

    def archive(
        self, memory_ids: Sequence[int], namespace: str | None = None, reason: str = "manual"
    ) -> ArchiveResult:
        """Move live memories out of retrieval into the archive (restorable, same ids).
        Every id must be live (and of `namespace`, if given), else nothing is archived."""
        ids = validation.memory_ids("ids", memory_ids)
        if reason not in ("manual", "pruned", "outdated"):
            raise InvalidInputError(
                f"reason {validation.shown(reason)} is invalid: use manual, pruned or outdated "
                "(a correction archives with reason superseded: store it with supersedes)"
            )
        if namespace is not None:
            namespace = validation.namespace(namespace)
        if not ids:
            raise InvalidInputError("ids is empty: name the memories to archive")
        with self.storage.write() as tx:
            tx.lock_memories(ids)
            self._check_live(tx, ids, namespace, "archive")
            done = tx.archive_memories(ids, reason)
        return ArchiveResult(done, reason)

    def restore(self, memory_ids: Sequence[int], namespace: str | None = None) -> RestoreResult:
        """Bring archived memories back into retrieval under their ids. Every id must be
        archived (and of `namespace`, if given), else nothing is restored."""
        ids = validation.memory_ids("ids", memory_ids)
        if namespace is not None:
            namespace = validation.namespace(namespace)
        if not ids:
            raise InvalidInputError("ids is empty: name the archived memories to restore")
        with self.storage.write() as tx:
            shelved = tx.archived(ids)
            missing = [m for m in ids if m not in shelved]
            live = sorted(tx.get(missing)) if missing else []
            problems = []
            if live:
                problems.append(f"memories {live} are not archived (they are in retrieval)")
            unknown = sorted(set(missing) - set(live))
            if unknown:
                problems.append(f"no archived memory has id {unknown}")
            other = sorted(
                m for m, a in shelved.items()
                if namespace is not None and a.memory.namespace != namespace
            )
            if other:
                problems.append(f"archived memories {other} are not in namespace {namespace!r}")
            if problems:
                raise InvalidInputError(
                    f"restore: {'; '.join(problems)}. Name archived memories of the namespace "
                    "(`memrl stats` counts them, `memrl export --archived` lists them); "
                    "nothing was restored"
                )
            done = tx.restore_memories(ids, self.config)
        return RestoreResult(done)

    def iter_archived(self, namespace: str | None = None) -> Iterator[ArchivedRow]:
        """Every archived memory (of one namespace, or all), oldest id first."""
        return iter_archived(self.storage, namespace)

    def prune(
        self,
        namespace: str = DEFAULT_NAMESPACE,
        capacity: int | None = None,
        *,
        dry_run: bool = False,
        now: float | None = None,
    ) -> PruneResult:
        """Archive (reason 'pruned') what the rule of the module docstring selects until the
        namespace holds at most `capacity` memories (default: MemoryConfig.capacity).
        `dry_run` writes nothing and returns what would go and why."""
        cfg = self.config
        if capacity is None:
            capacity = cfg.capacity
        if capacity is None:
            raise InvalidInputError(
                "no capacity: pass one (memrl prune --capacity N) or set it on the server "
                "(memrl serve --capacity N)"
            )
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise InvalidInputError(
                f"capacity must be an integer >= 0, got {validation.shown(capacity)}"
            )
        namespace = validation.namespace(namespace)
        now = time.time() if now is None else now
        rows = {m.id: m for m in self.iter_memories(namespace)}
        before = len(rows)
        excess = before - capacity
        chosen: list[PruneChoice] = []
        if excess > 0:
            chosen = self._prune_choices(namespace, rows, excess, now)
        if dry_run or not chosen:
            return PruneResult(
                namespace, capacity, before, before, chosen, dry_run,
                max(0, excess - len(chosen)) if excess > 0 else 0,
            )
        with self.storage.write() as tx:
            done = set(tx.archive_memories([c.id for c in chosen], "pruned"))
            after = tx.stats(namespace)
        chosen = [c for c in chosen if c.id in done]
        left = after[0]["memories"] if after else 0
        return PruneResult(
            namespace, capacity, before, left, chosen, False, max(0, left - capacity)
        )

    def _prune_choices(
        self, namespace: str, rows: dict[int, MemoryRow], excess: int, now: float
    ) -> list[PruneChoice]:
        cfg = self.config
        with self.storage.read() as r:
            leftovers = [m for m in r.superseded_live(namespace) if m in rows]
        with self.storage.inspect() as i:
            usage = i.usage(list(rows))
        last = {m: usage[m].last_injected if m in usage else None for m in rows}
        stale_after = cfg.prune_stale_days * 86_400.0

        def choice(mid: int, rule: str, why: str) -> PruneChoice:
            row = rows[mid]
            return PruneChoice(mid, rule, row.q, row.n_updates, last[mid], why)

        ordered: list[PruneChoice] = [
            choice(m, "superseded", "superseded by a correction that is in retrieval too")
            for m in leftovers
        ]
        low = sorted(
            (m for m in rows.values()
             if m.n_updates >= cfg.prune_min_updates and m.q < cfg.prune_q_below),
            key=lambda m: (m.q, m.id),
        )
        ordered += [
            choice(
                m.id, "low-q",
                f"Q {m.q:+.3f} < {cfg.prune_q_below:+g} after {m.n_updates} outcomes",
            )
            for m in low
        ]

        def active(m: MemoryRow) -> float:
            used = last[m.id]
            return m.created_at if used is None else used

        stale = sorted(
            (m for m in rows.values() if now - active(m) >= stale_after),
            key=lambda m: (active(m), m.id),
        )
        for m in stale:
            days = (now - active(m)) / 86_400.0
            why = (
                f"never injected, created {days:.1f} days ago"
                if last[m.id] is None
                else f"last injected {days:.1f} days ago"
            )
            ordered.append(choice(m.id, "stale", why))
        out: list[PruneChoice] = []
        seen: set[int] = set()
        for c in ordered:
            if len(out) == excess:
                break
            if c.id not in seen:
                seen.add(c.id)
                out.append(c)
        return out

    def _prune_if_over(self, namespaces: Sequence[str]) -> None:
        """With a capacity configured, a store that grew a namespace above it prunes it
        (the same path as `prune`)."""
        cap = self.config.capacity
        if cap is None:
            return
        for ns in sorted(set(namespaces)):
            with self.storage.read() as r:
                rows = r.stats(ns)
            if rows and rows[0]["memories"] > cap:
                self.prune(ns, cap)

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

    def preload(self, namespace: str, *, finish_later: bool = False) -> int:
        """Read a namespace's search data into memory ahead of its first recall. With
        `finish_later`, what only speeds up later searches is left to `finish_preload`
        (recalls answer meanwhile, exactly, a little slower)."""
        return self.storage.preload(validation.namespace(namespace), finish_later=finish_later)

    def finish_preload(self) -> None:
        """The work `preload(..., finish_later=True)` left (recalls go on meanwhile)."""
        self.storage.finish_preload()

    def close(self) -> None:
        self.storage.close()
