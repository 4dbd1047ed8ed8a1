"""The inspection page's reads on PostgreSQL, where they could part from SQLite's: the
same history gives the same pages on both backends; the migrations bring an m001
database (written by SQL of its schema) up, its old outcomes left without a Q after; every statement a view runs
reaches its table through an index, with no sort of a namespace, on a table of 60k
memories."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from backends import Backend, admin, query
from fake_embedder import FakeEmbedder

from memrl import Memory, MemoryConfig, SqliteStorage, open_storage
from memrl.memory import content_hash
from memrl.storage.postgres import backend as pg_backend
from memrl.storage.postgres import migrations
from memrl.storage.postgres.connection import connect

CONFIG = MemoryConfig(alpha=0.4, delta=-1.0, k1=4, k2=2, epsilon=0.2)


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Backend]:
    place = Backend("postgres", tmp_path)
    yield place
    place.close()


# -- the same history, the same pages ---------------------------------------------------------


TOPICS = ["deploy the service", "fix the flaky test", "rotate the keys", "bump the version"]


def _history(memory: Memory) -> int:
    """Memories in two namespaces, recalls with explicit task ids, mixed outcomes, a
    pending task, a forgotten memory and equal Q values (ties broken by id)."""
    rng = random.Random(7)
    for i in range(24):
        topic = TOPICS[i % len(TOPICS)]
        kind = ("success", "failure", "note")[i % 3]
        memory.store_experience(f"{topic}, case {i}", f"Step {i}: DO the {topic} thing", kind, "p")
    memory.store_experience("other namespace", "not on the page", namespace="elsewhere")
    forgotten = 0
    for n in range(40):
        task = memory.recall(f"{TOPICS[n % len(TOPICS)]} now", "p", task_id=f"task-{n:03d}")
        forgotten = forgotten or (task.injected[0].id if task.injected else 0)
        if n % 9 == 8:
            continue  # pending
        used = None
        if n % 5 == 0 and task.injected:
            used = [task.injected[0].id]
        memory.report(task.task_id or "", reward=rng.choice([1.0, -1.0, 0.5, 0.0]), used_ids=used)
    memory.forget([forgotten], "p")
    with memory.storage.write() as tx:  # ties at Q = 0.25 and at n_updates
        for mid in (5, 6, 7):
            tx.conn.execute(  # type: ignore[attr-defined]
                "UPDATE memories SET q = 0.25, n_updates = 2 WHERE id = "
                + ("?" if isinstance(memory.storage, SqliteStorage) else "%s"),
                (mid,),
            )
    return forgotten


def _pages(memory: Memory) -> dict[str, Any]:
    """Every view's answer, times left out (each backend stamps its own clock)."""
    out: dict[str, Any] = {}
    queries: list[dict[str, Any]] = [
        {"sort": s, "descending": d} for s in ("q", "created", "updates", "id") for d in (True, False)
    ]
    queries += [{"kind": "failure"}, {"q_min": -0.2, "q_max": 0.6}, {"text": "do THE deploy"},
                {"text": "step 1"}, {"text": "flaky", "sort": "updates", "kind": "note"}]
    for q in queries:
        rows, after = [], None
        while True:
            page = memory.memories_page("p", after=after, limit=5, **q)
            rows += [
                (r.memory.id, r.memory.q, r.memory.n_updates, r.memory.kind,
                 (r.usage.in_pool, r.usage.injected, r.usage.injected_reported,
                  r.usage.injected_success, r.usage.last_injected is None),
                 [v for _, v in r.q_history], page.total)
                for r in page.rows
            ]
            if page.next_after is None:
                break
            after = page.next_after
        out[f"memories {q}"] = rows
    for mid in range(1, 26):
        h = memory.memory_history(mid)
        out[f"memory {mid}"] = (
            None if h.memory is None else (h.memory.id, h.memory.q),
            [(a.task_id, a.query, a.rank, a.similarity, a.q, a.score, a.injected, a.credited,
              a.outcome, a.reward, a.q_after) for a in h.appearances],
            [v for _, v in h.q_history],
        )
    for q in ({}, {"outcome": "success"}, {"outcome": "failure"}, {"outcome": "pending"},
              {"empty_pool": False}, {"empty_pool": True}):
        tasks, before = [], None
        while True:
            page = memory.ledger_page("p", before=before, limit=7, **q)
            tasks += [
                (t.task_id, t.query, t.k1, t.k2, t.lam, t.explored, t.selection_prob, t.outcome,
                 t.reward, t.used_ids,
                 [(m.memory_id, m.rank, m.similarity, m.q, m.score, m.injected, m.credited,
                   m.q_after, m.intent, m.kind) for m in t.pool])
                for t in page.tasks
            ]
            if page.next_before is None:
                break
            before = page.next_before
        out[f"ledger {q}"] = tasks
    curve = memory.learning_curve("p", window=5, limit=30)
    out["curve"] = (curve.tasks, curve.reported, curve.truncated,
                    [(p.task, p.success, p.with_memories, p.without_memories, p.gate_empty)
                     for p in curve.points])
    return out


def test_the_same_history_gives_the_same_pages_on_both_backends(pg: Backend, tmp_path: Path) -> None:
    answers = []
    for target in (str(tmp_path / "m.db"), pg.target):
        embedder = FakeEmbedder()
        memory = Memory(open_storage(target, embedder.dim, embedder.model_id), embedder, CONFIG,
                        rng=random.Random(3))
        try:
            forgotten = _history(memory)
            answers.append(_pages(memory))
        finally:
            memory.close()
    sqlite, postgres = answers
    assert sqlite.keys() == postgres.keys()
    for key in sqlite:
        assert sqlite[key] == postgres[key], key
    # a history worth comparing: memories listed, Q after recorded, a forgotten memory
    assert len(sqlite["memories {'sort': 'q', 'descending': True}"]) == 23
    after = [a[-1] for mid in range(1, 25) for a in sqlite[f"memory {mid}"][1]]
    assert sum(q is not None for q in after) >= 10
    assert sqlite[f"memory {forgotten}"][0] is None and sqlite[f"memory {forgotten}"][1]
    pools = [m for t in sqlite["ledger {}"] for m in t[-1]]
    assert (forgotten, None, None) in {(m[0], m[-2], m[-1]) for m in pools}


# -- an m001 database gains the inspection schema -------------------------------------------------


def _m001_database(target: str, monkeypatch) -> tuple[int, str]:
    """A database at schema version 1 holding what m001's code wrote: a memory, and a
    reported task that credited it with Q moved and no Q after (the column came with m002).
    Only m001 is applied, and the rows are plain SQL of that schema: today's code writes
    columns m001 did not have."""
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
        conn = connect(target)
        try:
            assert migrations.apply_migrations(conn, 8, target) == 1
        finally:
            conn.close()
    vector = "[" + ",".join(map(str, FakeEmbedder().embed_query("deploy").tolist())) + "]"
    task = "m001-task"
    with admin(target) as conn:
        conn.execute("INSERT INTO namespaces(namespace, model_id) VALUES ('p', 'fake-model')")
        [(intent_id,)] = conn.execute(
            "INSERT INTO intents(namespace, key, text, created_at, embedding) "
            "VALUES ('p', 'deploy', 'deploy', 1.0, %s::vector) RETURNING id",
            (vector,),
        )
        [(mid,)] = conn.execute(
            "INSERT INTO memories(namespace, intent_id, intent, experience, kind, q, n_updates, "
            "last_reward, created_at, updated_at, content_hash, model_id) VALUES "
            "('p', %s, 'deploy', 'make deploy', 'success', 0.5, 1, 1.0, 1.0, 2.0, %s, "
            "'fake-model') RETURNING id",
            (intent_id, content_hash("deploy", "make deploy")),
        )
        conn.execute(
            "INSERT INTO tasks(task_id, namespace, query, model_id, created_at, k1, k2, lam, "
            "delta, epsilon, outcome, reward, reported_at) VALUES "
            "(%s, 'p', 'deploy', 'fake-model', 1.0, 5, 3, 0.5, -1.0, 0.0, 'success', 1.0, 2.0)",
            (task,),
        )
        conn.execute(
            "INSERT INTO task_candidates(task_id, memory_id, rank, similarity, q, score, "
            "injected, credited) VALUES (%s, %s, 0, 1.0, 0.0, 0.5, true, true)",
            (task, mid),
        )
    return int(mid), task


def test_an_m001_database_gains_the_inspection_schema(pg: Backend, monkeypatch) -> None:
    mid, task = _m001_database(pg.target, monkeypatch)
    memory = Memory(open_storage(pg.target, 8, "fake-model"), FakeEmbedder(), MemoryConfig(delta=-1.0))
    try:
        assert [v for v, _ in query(memory.storage, "SELECT version, name FROM schema_migrations "
                                    "ORDER BY version")] == list(
            range(1, len(migrations.MIGRATIONS) + 1)
        )
        indexes = {r[0] for r in query(memory.storage, "SELECT indexname FROM pg_indexes "
                                       "WHERE schemaname = current_schema()")}
        assert {"memories_by_q", "memories_by_updates", "memories_by_created",
                "tasks_by_created"} <= indexes
        assert "tasks_namespace" not in indexes
        history = memory.memory_history(mid)
        assert [(x.task_id, x.credited, x.q_after) for x in history.appearances] == [(task, True, None)]
        assert history.q_history == [] and history.memory is not None
        # m003: no evidence counted before it, the fast EMA starts at Q
        m = history.memory
        assert (m.q, m.successes, m.failures, m.q_recent) == (0.5, 0.0, 0.0, 0.5)
        assert query(memory.storage, "SELECT learned_delta, learned_reports FROM namespaces") == [
            (None, 0)]
        memory.report(memory.recall("deploy", "p").task_id or "", success=True)
        assert [x.q_after for x in memory.memory_history(mid).appearances] == [
            pytest.approx(0.5 + 0.3 * 0.5), None]
    finally:
        memory.close()


# -- every statement walks an index ----------------------------------------------------------------


class _Recorder:
    """A connection that remembers each statement with its arguments."""

    def __init__(self, conn: Any, log: list[tuple[str, Any]]) -> None:
        self._conn, self._log = conn, log

    def execute(self, sql: str, args: Any = None, **kw: Any) -> Any:
        self._log.append((sql, args))
        return self._conn.execute(sql, args, **kw)


PAGE_CALLS: dict[str, Callable[[Memory], Any]] = {
    "q page": lambda m: m.memories_page("p"),
    "q page, after": lambda m: m.memories_page("p", after=(0.0, 5000)),
    "created page": lambda m: m.memories_page("p", sort="created", descending=False,
                                              after=(1e9 + 7000, 7000)),
    "updates page, kind": lambda m: m.memories_page("p", sort="updates", kind="failure",
                                                    after=(10, 40000)),
    "id page": lambda m: m.memories_page("p", sort="id", after=(0, 30000)),
    "q range": lambda m: m.memories_page("p", q_min=-0.5, q_max=-0.4),
    "memory history": lambda m: m.memory_history(1),
    "ledger page": lambda m: m.ledger_page("p", before=(1e9 + 1000, "b-1000")),
    "ledger, outcome": lambda m: m.ledger_page("p", outcome="failure"),
    "ledger, gate passed": lambda m: m.ledger_page("p", empty_pool=False),
    "learning curve": lambda m: m.learning_curve("p", limit=500),
}
BIG = ("memories", "tasks", "task_candidates")
INDEXED = ("Index Scan", "Index Only Scan", "Bitmap Heap Scan")


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """60k memories (20k of them in namespace p) and 30,000 tasks of p with pools, by SQL."""
    place = Backend("postgres", tmp_path_factory.mktemp("pgplans"))
    open_storage(place.target, 8, "fake-model").close()
    with admin(place.target) as conn:
        conn.execute("DROP INDEX intents_embedding")  # not read by the page; loads faster
        conn.execute("INSERT INTO namespaces VALUES ('p', 'fake-model'), ('o', 'fake-model')")
        conn.execute(
            "INSERT INTO intents(namespace, key, text, created_at, embedding) SELECT "
            "CASE WHEN g % 3 = 0 THEN 'p' ELSE 'o' END, 'i' || g, 'intent ' || g, 1e9 + g, "
            "array_fill(1.0, ARRAY[8])::vector FROM generate_series(1, 60000) g"
        )
        conn.execute(
            "INSERT INTO memories(namespace, intent_id, intent, experience, kind, q, n_updates, "
            "created_at, updated_at, content_hash, model_id) SELECT namespace, id, text, "
            "'experience ' || id, (ARRAY['success', 'failure', 'note'])[1 + id % 3], "
            "sin(id), id % 30, created_at, created_at, md5(text), 'fake-model' FROM intents"
        )
        conn.execute(
            "INSERT INTO tasks(task_id, namespace, query, model_id, created_at, k1, k2, lam, "
            "delta, epsilon, outcome, reward, reported_at) SELECT 'b-' || g, 'p', 'query', "
            "'fake-model', 1e9 + g, 3, 1, 0.5, 0, 0, CASE WHEN g % 4 = 0 THEN NULL ELSE 'reward' "
            "END, CASE WHEN g % 4 = 0 THEN NULL ELSE cos(g) END, 1e9 + g + 1 "
            "FROM generate_series(1, 30000) g"
        )
        conn.execute(
            "INSERT INTO task_candidates(task_id, memory_id, rank, similarity, q, score, "
            "injected, credited, q_after) SELECT 'b-' || g, 3 * (1 + (g * 7 + j * 131) % 20000), "
            "j, 0.5, 0, 0, j = 0, j = 0 AND g % 4 <> 0, CASE WHEN j = 0 THEN 0.1 END "
            "FROM generate_series(1, 30000) g, generate_series(0, 2) j WHERE g % 10 <> 0"
        )
        conn.execute("VACUUM ANALYZE")
    yield place.target
    place.close()


@pytest.mark.parametrize("name", sorted(PAGE_CALLS))
def test_page_queries_walk_an_index(big: str, name: str, monkeypatch) -> None:
    """Each statement of a view, explained with its values: the big tables are reached
    through an index, never scanned, and a sort only orders one memory's or one page's
    ledger rows (fetched through an index of task_candidates), never a namespace."""
    log: list[tuple[str, Any]] = []

    class Recording(pg_backend.PostgresInspect):
        def __init__(self, conn: Any) -> None:
            super().__init__(_Recorder(conn, log))

    monkeypatch.setattr(pg_backend, "PostgresInspect", Recording)
    embedder = FakeEmbedder()
    memory = Memory(open_storage(big, embedder.dim, embedder.model_id), embedder, CONFIG)
    try:
        PAGE_CALLS[name](memory)
    finally:
        memory.close()
    assert log
    import psycopg

    with admin(big) as conn:
        for sql, args in log:
            text = psycopg.ClientCursor(conn).mogrify(sql, args)
            [[plan]] = conn.execute("EXPLAIN (FORMAT JSON) " + text).fetchone()
            nodes = list(_nodes(plan["Plan"]))
            shown = (text, [(n["Node Type"], n.get("Relation Name"), n.get("Index Name"))
                            for n in nodes])
            for n in nodes:
                assert not (n["Node Type"] == "Seq Scan" and n.get("Relation Name") in BIG), shown
                if n["Node Type"] in ("Sort", "Incremental Sort"):
                    below = list(_nodes(n))
                    assert any(b.get("Relation Name") == "task_candidates"
                               and b["Node Type"] in INDEXED for b in below), shown
