"""Many agents reporting at once: no lost update, whatever the backend.

`run_agents(target, agents, seconds)` starts `agents` concurrent agents (threads spread
over a few processes, each process with its own storage: a connection pool on
PostgreSQL, the shared file on SQLite) that recall, report a random reward (crediting all
or some of the injected memories) and now and then store a memory, until the time is up.
Then every memory's Q, update count and last reward are compared with a replay of the
ledger's rewards in report order: a lost update would show as a memory whose Q differs.

The agents embed with `HashEmbedder` (a hashed bag of words, no model): 64 processes
holding the ONNX model would need ~16 GB, and what is measured here is the storage under
concurrent writes, not the embedding (which the recall tiers measure with the real model).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import random
import threading
import time
from typing import Any

import numpy as np

from memrl import Memory, MemoryConfig, Storage, open_storage
from memrl.learning import Evidence, update
from memrl.storage import is_postgres_url

DIM = 384
MODEL = "bench-hash-384"
CONFIG = MemoryConfig(alpha=0.3, delta=-1.0, k1=5, k2=3)
NAMESPACE = "bench-agents"
TOPICS = [f"{verb} the {thing}" for verb in ("fix", "speed up", "document", "refactor")
          for thing in ("build", "login page", "payment flow", "search index", "nightly job")]


class HashEmbedder:
    """A deterministic hashed bag of words (see the module docstring)."""

    model_id = MODEL
    dim = DIM

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                digest = hashlib.sha256(word.encode()).digest()
                out[row, int.from_bytes(digest[:4], "little") % DIM] += 1.0
            out[row] /= max(float(np.linalg.norm(out[row])), 1e-9)
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


def seed(target: str) -> None:
    """A few memories per topic, so every recall injects some."""
    storage = open_storage(target, DIM, MODEL)
    try:
        memory = Memory(storage, HashEmbedder(), CONFIG)
        for topic in TOPICS:
            for i in range(4):
                memory.store_experience(f"{topic} case {i}", f"steps {i} for {topic}", namespace=NAMESPACE)
    finally:
        storage.close()


def _agent(memory: Memory, wid: int, deadline: float, counts: dict[str, int], lock: Any) -> None:
    rng = random.Random(wid)
    done = {"reports": 0, "credits": 0, "stores": 0, "errors": 0}
    while time.monotonic() < deadline:
        try:
            topic = rng.choice(TOPICS)
            task = memory.recall(f"{topic} today", NAMESPACE)
            injected = [m.id for m in task.injected]
            used = None if rng.random() < 0.5 else rng.sample(injected, rng.randint(0, len(injected)))
            out = memory.report(str(task.task_id), reward=rng.choice([1.0, -1.0, 0.5, 0.0]), used_ids=used)
            done["reports"] += 1
            done["credits"] += len(out.credited)
            if rng.random() < 0.1:
                memory.store_experience(f"{topic} note {wid}-{done['reports']}", "a new way", namespace=NAMESPACE)
                done["stores"] += 1
        except Exception:  # noqa: BLE001 - counted: the run reports every error
            done["errors"] += 1
    with lock:
        for k, v in done.items():
            counts[k] = counts.get(k, 0) + v


def _process(target: str, first: int, threads: int, start_at: float, seconds: float, out: Any) -> None:
    storage = _open(target, threads)
    memory = Memory(storage, HashEmbedder(), CONFIG)
    counts: dict[str, int] = {}
    lock = threading.Lock()
    time.sleep(max(0.0, start_at - time.time()))
    deadline = time.monotonic() + seconds
    workers = [
        threading.Thread(target=_agent, args=(memory, first + t, deadline, counts, lock))
        for t in range(threads)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    storage.close()
    out.put(counts)


def _open(target: str, connections: int) -> Storage:
    """The process's storage; on PostgreSQL one pooled connection per agent thread."""
    if is_postgres_url(target):
        from memrl.storage.postgres import PostgresStorage

        return PostgresStorage(target, DIM, MODEL, pool_size=connections)
    return open_storage(target, DIM, MODEL)


def run_agents(target: str, agents: int, seconds: float, processes: int = 4) -> dict[str, Any]:
    """`agents` agents for `seconds` on the store at `target`, then the replay check."""
    seed(target)
    processes = max(1, min(processes, agents))
    per = [agents // processes + (1 if i < agents % processes else 0) for i in range(processes)]
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 5.0  # every process imported and connected before the clock starts
    firsts = np.cumsum([0, *per[:-1]]).tolist()
    procs = [
        ctx.Process(target=_process, args=(target, int(f), n, start_at, seconds, out))
        for f, n in zip(firsts, per)
    ]
    for p in procs:
        p.start()
    totals: dict[str, int] = {}
    for _ in procs:
        for k, v in out.get(timeout=seconds + 300).items():
            totals[k] = totals.get(k, 0) + v
    for p in procs:
        p.join(timeout=60)
    storage = open_storage(target, DIM, MODEL)
    try:
        check = replay_check(storage)
    finally:
        storage.close()
    return {
        "agents": agents,
        "processes": processes,
        "seconds": seconds,
        **totals,
        "reports_per_s": round(totals.get("reports", 0) / seconds, 1),
        "q_updates_per_s": round(totals.get("credits", 0) / seconds, 1),
        **check,
    }


def rows(storage: Storage, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of `sql` (`?` placeholders) on the storage's database, read outside `Memory`."""
    if hasattr(storage, "url"):
        import psycopg

        with psycopg.connect(storage.url) as conn:
            return [tuple(r) for r in conn.execute(sql.replace("?", "%s"), args).fetchall()]
    return [tuple(r) for r in storage._conn.execute(sql, args).fetchall()]  # type: ignore[attr-defined]


def replay_check(storage: Storage) -> dict[str, Any]:
    """Replay the ledger's rewards in report order; count memories whose Q, update count or
    last reward differ from the stored ones (lost updates)."""
    stored = {r[0]: r[1:] for r in rows(storage, "SELECT id, q, n_updates, last_reward FROM memories")}
    rule = CONFIG.rule
    assert rule is not None  # the agents learn
    state = {m: Evidence(CONFIG.q_init, CONFIG.q_init) for m in stored}
    n = dict.fromkeys(stored, 0)
    last: dict[int, float | None] = dict.fromkeys(stored)
    tiebreak = "task_id" if hasattr(storage, "url") else "rowid"
    credits = rows(
        storage,
        "SELECT c.memory_id, t.reward FROM tasks t JOIN task_candidates c ON c.task_id = t.task_id "
        f"WHERE t.reward IS NOT NULL AND c.credited ORDER BY t.reported_at, t.{tiebreak}",
    )
    for mid, reward in credits:
        if mid in state:  # the learning rule itself (EMA, evidence, change detection)
            state[mid] = update(state[mid], reward, rule)
            n[mid] += 1
            last[mid] = reward
    lost = [
        m for m, (sq, sn, sl) in stored.items()
        if abs(sq - state[m].q) > 1e-9 or sn != n[m] or sl != last[m]
    ]
    return {"memories": len(stored), "credits_replayed": len(credits), "lost_updates": len(lost)}
