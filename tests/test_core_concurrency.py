"""Several processes share one database file: no lost memory, task or update, no lock errors,
and every memory's Q is exactly what replaying the ledger's rewards in report order gives."""

from __future__ import annotations

import itertools
import multiprocessing
import random
import time
from pathlib import Path
from typing import Any

import pytest
from fake_embedder import FakeEmbedder

from memrl import Memory, MemoryConfig, SqliteStorage
from memrl.storage.sqlite.migrations import MIGRATIONS

WORKERS = 4
OPS = 200
DIM = 16
MODEL = "fake-mp-16"
CONFIG = MemoryConfig(alpha=0.3, delta=-1.0, k1=5, k2=3)
NAMESPACES = ["proj-a", "proj-b"]
TOPICS = ["fix the flaky build", "migrate the database schema", "speed up the test suite"]


def worker(path: str, wid: int, barrier: Any, results: Any) -> None:
    """Interleaved store / recall / report operations; reports what it did and every error."""
    done: dict[str, Any] = {
        "wid": wid, "created": 0, "existing": 0, "tasks": [], "applied": 0, "not_applied": 0,
        "reflections": 0, "errors": [],
    }
    rng = random.Random(1000 + wid)
    pending: list[Any] = []
    try:
        barrier.wait()  # all processes open the (new) file at the same moment
        store = SqliteStorage(path, DIM, MODEL)
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


def test_processes_share_one_file_without_losing_anything(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(path, w, barrier, results)) for w in range(WORKERS)]
    started = time.perf_counter()
    for p in procs:
        p.start()
    reports = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    elapsed = time.perf_counter() - started
    print(f"\n{WORKERS} processes x {OPS} operations on one file: {elapsed:.1f} s")

    errors = [e for r in reports for e in r["errors"]]
    assert errors == []
    store = SqliteStorage(path, DIM, MODEL)
    try:
        conn = store._conn
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        # nothing lost
        created = sum(r["created"] + r["reflections"] for r in reports)
        assert conn.execute("SELECT count(*) FROM memories").fetchone()[0] == created
        assert_every_memory_has_its_intent_vector(conn)
        task_ids = sorted(t for r in reports for t in r["tasks"])
        assert sorted(r[0] for r in conn.execute("SELECT task_id FROM tasks")) == task_ids
        reported = conn.execute("SELECT count(*) FROM tasks WHERE reward IS NOT NULL").fetchone()[0]
        assert reported == sum(r["applied"] for r in reports)
        assert sum(r["existing"] for r in reports) > 0  # duplicates across processes happened
        assert sum(r["not_applied"] for r in reports) > 0
        assert_interleaved(conn)
        assert_q_replays_the_ledger(conn)
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


def assert_interleaved(conn: Any) -> None:
    """The workers really ran at the same time: their recalls alternate in the ledger."""
    order = [r[0].split("-")[0] for r in conn.execute("SELECT task_id FROM tasks ORDER BY created_at")]
    switches = sum(a != b for a, b in itertools.pairwise(order))
    assert switches >= len(order) // 10, f"workers barely overlapped: {switches} switches"


def assert_q_replays_the_ledger(conn: Any) -> None:
    """Replay every reported task in report order; Q, n_updates, last_reward must match exactly."""
    rows = conn.execute("SELECT id, q, n_updates, last_reward FROM memories").fetchall()
    q = {r[0]: CONFIG.q_init for r in rows}
    n = {r[0]: 0 for r in rows}
    last: dict[int, float | None] = {r[0]: None for r in rows}
    tasks = conn.execute(
        "SELECT task_id, reward FROM tasks WHERE reward IS NOT NULL ORDER BY reported_at, rowid"
    ).fetchall()
    credited_total = 0
    for task_id, reward in tasks:
        for (mid,) in conn.execute(
            "SELECT memory_id FROM task_candidates WHERE task_id = ? AND credited = 1", (task_id,)
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


ROUNDS = 100


def opener(directory: str, barrier: Any, results: Any) -> None:
    """Open (create and migrate) a new file at the same moment as the others, ROUNDS times."""
    errors = []
    for round_no in range(ROUNDS):
        barrier.wait()
        try:
            SqliteStorage(f"{directory}/new-{round_no}.db", DIM, MODEL).close()
        except Exception as e:  # noqa: BLE001 - reported to the parent
            errors.append(f"round {round_no}: {type(e).__name__}: {e}")
    results.put(errors)


def test_processes_create_a_new_file_at_the_same_moment(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=opener, args=(str(tmp_path), barrier, results)) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    errors = [e for _ in procs for e in results.get(timeout=120)]
    for p in procs:
        p.join(timeout=30)
    assert errors == []
    for round_no in range(ROUNDS):
        store = SqliteStorage(tmp_path / f"new-{round_no}.db", DIM, MODEL)
        try:
            assert store._conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
            assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            store.close()
