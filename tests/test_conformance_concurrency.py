"""Several processes share one store (a SQLite file, or a PostgreSQL database): no lost
memory, task or update, no lock errors, and every memory's Q is exactly what replaying the
ledger's rewards in report order gives. Processes opening a new store at the same moment
migrate it once."""

from __future__ import annotations

import itertools
import multiprocessing
import random
import time
from pathlib import Path
from typing import Any

import pytest
from backends import Backend, admin, query, with_schema
from fake_embedder import FakeEmbedder

from memrl import Memory, MemoryConfig, Storage, open_storage
from memrl.storage.postgres.migrations import MIGRATIONS as PG_MIGRATIONS
from memrl.storage.sqlite.migrations import MIGRATIONS

WORKERS = 4
OPS = 200
DIM = 16
MODEL = "fake-mp-16"
CONFIG = MemoryConfig(alpha=0.3, delta=-1.0, k1=5, k2=3)
NAMESPACES = ["proj-a", "proj-b"]
TOPICS = ["fix the flaky build", "migrate the database schema", "speed up the test suite"]


def worker(target: str, wid: int, barrier: Any, results: Any) -> None:
    """Interleaved store / recall / report operations; reports what it did and every error."""
    done: dict[str, Any] = {
        "wid": wid, "created": 0, "existing": 0, "tasks": [], "applied": 0, "not_applied": 0,
        "reflections": 0, "errors": [],
    }
    rng = random.Random(1000 + wid)
    pending: list[Any] = []
    try:
        barrier.wait()  # all processes open the (new) file at the same moment
        store = open_storage(target, DIM, MODEL)
        memory = Memory(store, FakeEmbedder(dim=DIM, model_id=MODEL), CONFIG, random.Random(wid))
        for i in range(OPS):
            try:
                _one_op(memory, rng, wid, i, pending, done)
            except Exception as e:  # noqa: BLE001 - recorded; the parent asserts there are none
                done["errors"].append(f"op {i}: {type(e).__name__}: {e}")
        store.close()
    except BaseException as e:  # noqa: BLE001 - reported to the parent, never lost
        done["errors"].append(f"open/close: {type(e).__name__}: {e}")
    finally:
        results.put(done)


def _one_op(memory: Memory, rng: random.Random, wid: int, i: int, pending: list, done: dict) -> None:
    ns, topic = rng.choice(NAMESPACES), rng.choice(TOPICS)
    op = rng.random()
    if op < 0.3 or not pending and op >= 0.6:
        # one in five stores is a text every worker may store: a duplicate across processes
        shared = rng.random() < 0.2
        intent = f"{topic} shared" if shared else f"{topic} worker {wid} op {i}"
        stored = memory.store_experience(intent, f"steps for {intent}", namespace=ns)
        done["created" if stored.created else "existing"] += 1
    elif op < 0.6:
        task = memory.recall(f"{topic} today", ns, task_id=f"w{wid}-op{i}")
        pending.append(task)
        done["tasks"].append(task.task_id)
    else:
        task = pending.pop(rng.randrange(len(pending)))
        injected = [m.id for m in task.injected]
        used = None if rng.random() < 0.5 else rng.sample(injected, rng.randint(0, len(injected)))
        reflection = f"reflection {wid}-{i}" if rng.random() < 0.1 else None
        reward = rng.choice([1.0, -1.0, 0.5, -0.25, 0.0])
        outcome = memory.report(task.task_id, reward=reward, used_ids=used, reflection=reflection)
        assert outcome.applied
        done["applied"] += 1
        done["reflections"] += outcome.reflection_id is not None
        if rng.random() < 0.1:  # a retried report must change nothing
            assert not memory.report(task.task_id, reward=-reward).applied
            done["not_applied"] += 1


def test_processes_share_one_store_without_losing_anything(backend: Backend) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [
        ctx.Process(target=worker, args=(backend.target, w, barrier, results))
        for w in range(WORKERS)
    ]
    started = time.perf_counter()
    for p in procs:
        p.start()
    reports = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    elapsed = time.perf_counter() - started
    print(f"\n{WORKERS} processes x {OPS} operations on one {backend.name} store: {elapsed:.1f} s")

    errors = [e for r in reports for e in r["errors"]]
    assert errors == []
    store = open_storage(backend.target, DIM, MODEL)
    try:
        if backend.name == "sqlite":
            assert query(store, "PRAGMA integrity_check") == [("ok",)]
            assert_every_memory_has_its_intent_vector(store._conn)  # type: ignore[attr-defined]
        # nothing lost
        created = sum(r["created"] + r["reflections"] for r in reports)
        assert query(store, "SELECT count(*) FROM memories") == [(created,)]
        intents = query(store, "SELECT count(DISTINCT intent_id) FROM memories")
        assert query(store, "SELECT count(*) FROM intents") == intents
        task_ids = sorted(t for r in reports for t in r["tasks"])
        assert sorted(r[0] for r in query(store, "SELECT task_id FROM tasks")) == task_ids
        reported = query(store, "SELECT count(*) FROM tasks WHERE reward IS NOT NULL")
        assert reported == [(sum(r["applied"] for r in reports),)]
        assert sum(r["existing"] for r in reports) > 0  # duplicates across processes happened
        assert sum(r["not_applied"] for r in reports) > 0
        assert_interleaved(store)
        assert_q_replays_the_ledger(store, backend.name)
    finally:
        store.close()


def assert_every_memory_has_its_intent_vector(conn) -> None:
    """Each memory's intent exists with one vector; no intent or vector is left without memories."""
    intents = conn.execute("SELECT count(DISTINCT intent_id) FROM memories").fetchone()[0]
    assert conn.execute("SELECT count(*) FROM intents").fetchone()[0] == intents
    assert conn.execute("SELECT count(*) FROM intent_vectors").fetchone()[0] == intents
    assert conn.execute("SELECT count(*) FROM intent_vec0").fetchone()[0] == intents
    missing = conn.execute(
        "SELECT count(*) FROM memories m LEFT JOIN intent_vectors v ON v.intent_id = m.intent_id "
        "WHERE v.intent_id IS NULL"
    ).fetchone()[0]
    assert missing == 0


def assert_interleaved(store: Storage) -> None:
    """The workers really ran at the same time: their recalls alternate in the ledger."""
    order = [r[0].split("-")[0] for r in query(store, "SELECT task_id FROM tasks ORDER BY created_at")]
    switches = sum(a != b for a, b in itertools.pairwise(order))
    assert switches >= len(order) // 10, f"workers barely overlapped: {switches} switches"


def assert_q_replays_the_ledger(store: Storage, backend: str) -> None:
    """Replay every reported task in report order; Q, n_updates, last_reward must match exactly."""
    rows = query(store, "SELECT id, q, n_updates, last_reward FROM memories")
    q = {r[0]: CONFIG.q_init for r in rows}
    n = {r[0]: 0 for r in rows}
    last: dict[int, float | None] = {r[0]: None for r in rows}
    tiebreak = "rowid" if backend == "sqlite" else "task_id"
    tasks = query(
        store,
        f"SELECT task_id, reward FROM tasks WHERE reward IS NOT NULL ORDER BY reported_at, {tiebreak}",
    )
    credited_total = 0
    for task_id, reward in tasks:
        for (mid,) in query(
            store, "SELECT memory_id FROM task_candidates WHERE task_id = ? AND credited", task_id
        ):
            q[mid] = q[mid] + CONFIG.alpha * (reward - q[mid])
            n[mid] += 1
            last[mid] = reward
            credited_total += 1
    assert credited_total > 100
    multiply_updated = [mid for mid, count in n.items() if count >= 5]
    assert len(multiply_updated) > 5
    assert {r[0]: r[1] for r in rows} == pytest.approx(q, abs=1e-12)
    assert {r[0]: r[2] for r in rows} == n
    assert {r[0]: r[3] for r in rows} == last


ROUNDS = {"sqlite": 100, "postgres": 20}


def opener(targets: list[str], barrier: Any, results: Any) -> None:
    """Open (create and migrate) a new store at the same moment as the others, per round."""
    errors = []
    for round_no, target in enumerate(targets):
        barrier.wait()
        try:
            open_storage(target, DIM, MODEL).close()
        except Exception as e:  # noqa: BLE001 - reported to the parent
            errors.append(f"round {round_no}: {type(e).__name__}: {e}")
    results.put(errors)


def new_targets(backend: Backend, tmp_path: Path) -> list[str]:
    if backend.name == "sqlite":
        return [str(tmp_path / f"new-{n}.db") for n in range(ROUNDS["sqlite"])]
    schemas = [f"{backend.schema}_{n}" for n in range(ROUNDS["postgres"])]
    with admin(backend.dsn) as conn:
        for schema in schemas:
            conn.execute(f"CREATE SCHEMA {schema}")
    return [with_schema(backend.dsn, schema) for schema in schemas]


def test_processes_create_a_new_store_at_the_same_moment(backend: Backend, tmp_path: Path) -> None:
    targets = new_targets(backend, tmp_path)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=opener, args=(targets, barrier, results)) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    errors = [e for _ in procs for e in results.get(timeout=180)]
    for p in procs:
        p.join(timeout=30)
    try:
        assert errors == []
        for target in targets:
            store = open_storage(target, DIM, MODEL)
            try:
                if backend.name == "sqlite":
                    assert query(store, "PRAGMA user_version") == [(len(MIGRATIONS),)]
                    assert query(store, "PRAGMA journal_mode") == [("wal",)]
                else:
                    applied = query(store, "SELECT version FROM schema_migrations ORDER BY version")
                    assert applied == [(n + 1,) for n in range(len(PG_MIGRATIONS))]
            finally:
                store.close()
    finally:
        if backend.name == "postgres":
            with admin(backend.dsn) as conn:
                for n in range(ROUNDS["postgres"]):
                    conn.execute(f"DROP SCHEMA {backend.schema}_{n} CASCADE")
