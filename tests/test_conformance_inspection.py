"""The inspection reads of `Memory` (what `memrl ui` shows) on a real SQLite file.

Memories, their use and Q history, a memory's ledger history, ledger pages with filters,
the learning curve, the dry-run recall, and the query plans: every page query walks an
index, never a sort of the namespace.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
from fake_embedder import FakeEmbedder

from memrl import InvalidInputError, MemoryConfig
from memrl.inspection import MAX_POINTS, curve
from memrl.storage.base import TaskPoint

OPEN = MemoryConfig(alpha=0.5, delta=-1.0, k1=3, k2=1)
DATA = Path(__file__).parent / "data"


def _store(memory, n: int, ns: str = "p") -> list[int]:
    kinds = ("success", "failure", "note")
    return [
        memory.store_experience(f"intent {i}", f"experience {i}", kinds[i % 3], ns).id
        for i in range(n)
    ]


def _walk(memory, ns: str, **query) -> list[int]:
    """Every id of the namespace, page after page."""
    seen, after = [], None
    while True:
        page = memory.memories_page(ns, after=after, limit=4, **query)
        seen += [r.memory.id for r in page.rows]
        if page.next_after is None:
            return seen
        after = page.next_after


def _set_q(memory, values: dict[int, float]) -> None:
    with memory.storage.write() as tx:
        tx.conn.executemany("UPDATE memories SET q = ? WHERE id = ?", [(q, i) for i, q in values.items()])


@pytest.mark.parametrize("sort", ["q", "created", "updates", "id"])
@pytest.mark.parametrize("descending", [True, False])
def test_keyset_pages_visit_every_memory_once_in_sort_order(open_memory, sort, descending):
    memory = open_memory(config=OPEN)
    ids = _store(memory, 11)
    _set_q(memory, {ids[0]: 0.5, ids[1]: 0.5, ids[2]: -0.25, ids[7]: 0.9})  # ties at 0.5 and 0
    _store(memory, 3, ns="other")
    seen = _walk(memory, "p", sort=sort, descending=descending)
    rows = {r.id: r for r in memory.iter_memories("p")}
    key = {"q": "q", "created": "created_at", "updates": "n_updates", "id": "id"}[sort]
    expected = sorted(ids, key=lambda i: (getattr(rows[i], key), i), reverse=descending)
    assert seen == expected


def test_filters_kind_q_range_and_text_with_count(open_memory):
    memory = open_memory(config=OPEN)
    ids = _store(memory, 9)
    _set_q(memory, {ids[0]: 0.8, ids[3]: -0.6, ids[6]: 0.2})
    memory.store_experience("100% done_ok", "literal % and _ in text", "note", "p")
    page = memory.memories_page("p", kind="success")
    assert [r.memory.id for r in page.rows] == [ids[0], ids[6], ids[3]]
    assert page.total == 3
    page = memory.memories_page("p", q_min=0.1, q_max=0.9)
    assert [r.memory.id for r in page.rows] == [ids[0], ids[6]] and page.total == 2
    page = memory.memories_page("p", text="EXPERIENCE 4")
    assert [r.memory.intent for r in page.rows] == ["intent 4"]
    assert [r.memory.intent for r in memory.memories_page("p", text="0% d").rows] == ["100% done_ok"]
    assert memory.memories_page("p", text="_").total == 1  # `_` is no wildcard
    assert memory.memories_page("p", text="%").total == 1
    assert memory.memories_page("nobody").total == 0


@pytest.mark.parametrize(
    "query, message",
    [
        ({"sort": "random"}, "sort 'random' is invalid"),
        ({"kind": "idea"}, "kind 'idea' is invalid"),
        ({"q_min": float("nan")}, "q_min must be a number"),
        ({"limit": 0}, "limit must be an integer in 1..500"),
    ],
)
def test_bad_page_arguments_say_what_to_fix(open_memory, query, message):
    memory = open_memory(config=OPEN)
    with pytest.raises(InvalidInputError, match=message):
        memory.memories_page("p", **query)


def test_usage_q_history_and_appearances_come_from_the_ledger(open_memory):
    memory = open_memory(config=MemoryConfig(alpha=0.5, lam=0.0, delta=-1.0, k1=3, k2=1))
    a, b = _store(memory, 2)  # one pool of two; lam = 0: the more similar one is injected
    _set_q(memory, {a: 0.2})
    rewards = [1.0, -1.0, None, 1.0]
    q, expected_history = 0.2, []
    for r in rewards:
        task = memory.recall("intent 0", "p")
        assert [m.id for m in task.injected] == [a]
        if r is not None:
            memory.report(task.task_id, reward=r)
            q += 0.5 * (r - q)
            expected_history.append(q)
    listed = {row.memory.id: row for row in memory.memories_page("p").rows}
    usage = listed[a].usage
    assert (usage.in_pool, usage.injected, usage.injected_reported, usage.injected_success) == (4, 4, 3, 2)
    assert usage.success_rate == pytest.approx(2 / 3) and usage.last_injected is not None
    assert [q for _, q in listed[a].q_history] == pytest.approx(expected_history)
    assert (listed[b].usage.in_pool, listed[b].usage.injected, listed[b].q_history) == (4, 0, [])
    history = memory.memory_history(a)
    assert [x.reward for x in history.appearances] == [1.0, None, -1.0, 1.0]  # newest first
    assert [x.q_after for x in history.appearances] == pytest.approx(
        [expected_history[2], None, expected_history[1], expected_history[0]]
    )
    assert [x.q for x in history.appearances][-1] == pytest.approx(0.2)  # Q when recalled
    assert all(not x.injected and not x.credited for x in memory.memory_history(b).appearances)


def test_usage_of_a_memory_injected_only_for_pending_tasks(open_memory):
    memory = open_memory(config=OPEN)
    [a] = _store(memory, 1)
    memory.recall("intent 0", "p")  # never reported
    [row] = memory.memories_page("p").rows
    assert (row.usage.in_pool, row.usage.injected, row.usage.injected_reported) == (1, 1, 0)
    assert (row.usage.injected_success, row.usage.success_rate) == (0, None)
    assert row.usage.last_injected is not None


def test_a_forgotten_memory_keeps_its_ledger_history(open_memory):
    memory = open_memory(config=OPEN)
    [a] = _store(memory, 1)
    memory.report(memory.recall("intent 0", "p").task_id, success=True)
    assert memory.forget([a], "p").deleted == 1
    history = memory.memory_history(a)
    assert history.memory is None
    assert [(x.injected, x.credited, x.q_after) for x in history.appearances] == [(True, True, 0.5)]
    [entry] = memory.ledger_page("p").tasks
    assert [(m.memory_id, m.intent, m.kind) for m in entry.pool] == [(a, None, None)]


def test_ledger_pages_filters_and_pools(open_memory):
    fake = FakeEmbedder(vectors={"near": [1, 0, 0], "far": [0, 1, 0], "m": [1, 0.1, 0]}, dim=3)
    memory = open_memory(embedder=fake, config=MemoryConfig(alpha=0.5, delta=0.5, k1=3, k2=1))
    mid = memory.store_experience("m", "the memory", namespace="p").id
    won = memory.recall("near", "p")
    memory.report(won.task_id, success=True)
    lost = memory.recall("near", "p")
    memory.report(lost.task_id, success=False)
    alone = memory.recall("far", "p")  # nothing passes the gate
    memory.report(alone.task_id, success=True)
    pending = memory.recall("near", "p")
    page = memory.ledger_page("p")
    assert [t.task_id for t in page.tasks] == [pending.task_id, alone.task_id, lost.task_id, won.task_id]
    first = page.tasks[-1]
    assert (first.outcome, first.reward, first.query, first.k2) == ("success", 1.0, "near", 1)
    [member] = first.pool
    assert (member.memory_id, member.injected, member.credited, member.intent) == (mid, True, True, "m")
    assert member.similarity == pytest.approx(1 / (1 + 0.1**2) ** 0.5, rel=1e-6)
    assert member.q_after == pytest.approx(0.5)

    def ids(**query):
        return [t.task_id for t in memory.ledger_page("p", **query).tasks]

    assert ids(outcome="success") == [alone.task_id, won.task_id]
    assert ids(outcome="failure") == [lost.task_id]
    assert ids(outcome="pending") == [pending.task_id]
    assert ids(empty_pool=True) == [alone.task_id]
    assert ids(empty_pool=True, outcome="failure") == []
    assert ids(empty_pool=False, outcome="success") == [won.task_id]
    one = memory.ledger_page("p", limit=3)
    rest = memory.ledger_page("p", limit=3, before=one.next_before)
    assert [t.task_id for t in one.tasks + rest.tasks] == ids() and rest.next_before is None
    with pytest.raises(InvalidInputError, match="outcome 'won' is invalid"):
        memory.ledger_page("p", outcome="won")


def test_learning_curve_of_a_known_series():
    series = [
        TaskPoint(1.0, 1.0, 2, 1),
        TaskPoint(2.0, -1.0, 0, 0),
        TaskPoint(3.0, None, 0, 0),
        TaskPoint(4.0, -1.0, 3, 1),
        TaskPoint(5.0, 1.0, 3, 1),
    ]
    c = curve(series, window=2)
    assert (c.tasks, c.reported, c.window) == (5, 4, 2)
    got = [(p.task, p.success, p.with_memories, p.without_memories, p.gate_empty) for p in c.points]
    assert got == [
        (1, 1.0, 1.0, None, 0.0),
        (2, 0.5, 1.0, 0.0, 0.5),
        (3, 0.5, 1.0, 0.0, 1.0),  # a pending task moves only the gate share
        (4, 0.0, 0.5, 0.0, 0.5),
        (5, 0.5, 0.5, 0.0, 0.0),
    ]


def test_learning_curve_is_sampled_and_keeps_the_last_task():
    series = [TaskPoint(float(i), 1.0, 1, 1) for i in range(1000)]
    c = curve(series, window=20)
    assert len(c.points) <= MAX_POINTS and c.points[-1].task == 1000
    steps = {b.task - a.task for a, b in zip(c.points, c.points[1:-1])}
    assert steps == {4}


def test_learning_curve_from_the_ledger(open_memory):
    memory = open_memory(config=OPEN)
    _store(memory, 2)
    for r in (True, False, True):
        memory.report(memory.recall("intent 0", "p").task_id, success=r)
    c = memory.learning_curve("p", window=10, limit=2)
    assert (c.tasks, c.reported, c.truncated) == (2, 2, True)
    assert [p.success for p in c.points] == [0.0, 0.5]  # the last two tasks only
    assert memory.learning_curve("p").truncated is False


def test_a_dry_run_recall_writes_nothing(open_memory, snapshot):
    memory = open_memory(config=OPEN)
    _store(memory, 3)
    before = snapshot(memory.storage)
    result = memory.recall("intent 1", "p", dry_run=True)
    assert result.task_id is None and result.injected and result.intents
    assert snapshot(memory.storage) == before


def test_inspection_reads_its_own_snapshot_beside_a_write(open_memory):
    """The page reads on its own connection: it neither waits for nor sees an open write."""
    memory = open_memory(config=OPEN)
    _store(memory, 2)
    with memory.storage.write() as tx:
        tx.conn.execute("UPDATE memories SET q = 0.9")
        assert {r.memory.q for r in memory.memories_page("p").rows} == {0.0}
    assert {r.memory.q for r in memory.memories_page("p").rows} == {0.9}


PAGE_CALLS = {
    "q page": lambda m: m.memories_page("p", after=(0.0, 5)),
    "created page": lambda m: m.memories_page("p", sort="created", descending=False),
    "updates page, kind": lambda m: m.memories_page("p", sort="updates", kind="failure"),
    "id page": lambda m: m.memories_page("p", sort="id", after=(3, 3)),
    "q range": lambda m: m.memories_page("p", q_min=-0.5, q_max=0.5),
    "memory history": lambda m: m.memory_history(1),
    "ledger page": lambda m: m.ledger_page("p", before=(1e12, "t")),
    "ledger, outcome": lambda m: m.ledger_page("p", outcome="failure", empty_pool=True),
    "learning curve": lambda m: m.learning_curve("p"),
}


@pytest.mark.parametrize("name", sorted(PAGE_CALLS))
def test_page_queries_walk_an_index(open_memory, name):
    """Every statement the page runs, traced with its values and explained: each table is
    reached through an index, and nothing sorts a whole namespace (one memory's own ledger
    rows may be sorted: their number is that memory's use, not the namespace's size)."""
    memory = open_memory(config=OPEN)
    _store(memory, 3)
    memory.report(memory.recall("intent 0", "p").task_id, success=True)
    memory.memories_page("p")  # opens the inspection connection
    conn = memory.storage._inspect_conn
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    PAGE_CALLS[name](memory)
    conn.set_trace_callback(None)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert selects
    for statement in selects:
        plan = " | ".join(r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + statement))
        if "TEMP B-TREE FOR ORDER BY" in plan:
            assert "task_candidates_memory (memory_id=?)" in plan, (statement, plan)
        for step in plan.split(" | "):
            if step.startswith("SCAN"):  # a full pass only over a subquery's few rows
                assert step.startswith(("SCAN t", "SCAN json_each")) or "INDEX" in step, (statement, plan)


def test_an_old_file_gains_the_inspection_schema(tmp_path, real_model, sql):
    from memrl import open_memory

    db = tmp_path / "v2.db"
    with gzip.open(DATA / "schema-v2.db.gz") as src, open(db, "wb") as dst:
        shutil.copyfileobj(src, dst)
    memory = open_memory(db, embedder=real_model)
    indexes = {r[0] for r in sql(memory.storage, "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"memories_by_q", "memories_by_updates", "memories_by_created"} <= indexes
    # outcomes reported before the migration never recorded Q after: NULL, not a guess
    history = memory.memory_history(1)
    assert [x.q_after for x in history.appearances if x.credited] == [None]
    assert history.memory is not None and history.memory.n_updates == 1
    assert history.q_history == []
    memory.close()
