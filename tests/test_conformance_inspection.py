"""The inspection reads of `Memory` (what `memrl ui` shows), on every backend.

Memories, their use and Q history, a memory's ledger history, ledger pages with filters,
the learning curve, the dry-run recall, and the view itself (one read-only snapshot beside
the server's writes): the same history gives the same pages on the SQLite file and on
PostgreSQL. What only one backend has (query plans, migrating an old database) lives in
tests/test_core_inspection.py and tests/test_postgres_inspection.py.
"""

from __future__ import annotations

import pytest
from fake_embedder import FakeEmbedder

from memrl import InvalidInputError, MemoryConfig, SqliteStorage

OPEN = MemoryConfig(alpha=0.5, delta=-1.0, k1=3, k2=1)


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


def _execute(memory, statement: str, rows: list[tuple]) -> None:
    """`statement` (with `?` placeholders) once per row, in one write transaction."""
    if not isinstance(memory.storage, SqliteStorage):
        statement = statement.replace("?", "%s")
    with memory.storage.write() as tx:
        for row in rows:
            tx.conn.execute(statement, row)


def _set_q(memory, values: dict[int, float]) -> None:
    _execute(memory, "UPDATE memories SET q = ? WHERE id = ?", [(q, i) for i, q in values.items()])


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




def test_text_search_folds_ascii_letters_only(open_memory):
    """SQLite's LIKE folds A-Z only; PostgreSQL must not fold more (ILIKE and lower()
    follow the database's locale)."""
    memory = open_memory(config=OPEN)
    memory.store_experience("rebuild the ÉCOLE index", "Straße closed", "note", "p")
    memory.store_experience("plain intent", "plain experience", "note", "p")

    def found(text: str) -> int:
        return memory.memories_page("p", text=text).total

    assert (found("école"), found("ÉCOLE"), found("Rebuild THE"), found("cole")) == (0, 1, 1, 1)
    assert (found("STRASSE"), found("straße"), found("STRAßE"), found("STRAẞE")) == (0, 1, 1, 0)


def test_ledger_ties_break_by_task_id_in_byte_order(open_memory):
    memory = open_memory(config=OPEN)
    _store(memory, 1)
    ids = ["t-a", "t-B", "t-.", "t-0", "t-Z", "t-:"]  # byte order: . 0 : B Z a
    for task_id in ids:
        memory.recall("intent 0", "p", task_id=task_id)
    _execute(memory, "UPDATE tasks SET created_at = ? WHERE task_id = ?", [(1000.0, t) for t in ids])
    expected = ["t-a", "t-Z", "t-B", "t-:", "t-0", "t-."]
    assert [t.task_id for t in memory.ledger_page("p").tasks] == expected
    seen, before = [], None
    while True:
        page = memory.ledger_page("p", limit=2, before=before)
        seen += [t.task_id for t in page.tasks]
        if page.next_before is None:
            break
        before = page.next_before
    assert seen == expected
    [a] = memory.iter_memories("p")
    assert [x.task_id for x in memory.memory_history(a.id).appearances] == expected


def test_an_updates_cursor_between_whole_numbers(open_memory):
    """A cursor value typed into the URL need not be one of the column's values."""
    memory = open_memory(config=OPEN)
    ids = _store(memory, 6)
    _execute(memory, "UPDATE memories SET n_updates = ? WHERE id = ?",
             [(n, i) for n, i in zip([0, 1, 2, 3, 3, 5], ids)])

    def page(descending: bool, after: tuple[float, int]) -> list[int]:
        rows = memory.memories_page("p", sort="updates", descending=descending, after=after).rows
        return [r.memory.n_updates for r in rows]

    assert page(True, (2.5, 1)) == [2, 1, 0]
    assert page(False, (2.5, 10**6)) == [3, 3, 5]
    assert page(True, (-0.5, 0)) == [] and page(False, (1e300, 0)) == []
    assert page(True, (1e300, 0)) == [5, 3, 3, 2, 1, 0]
    assert page(True, (3.0, ids[4])) == [3, 2, 1, 0]  # (3, id 4) then the rest


def test_one_view_is_one_snapshot(open_memory):
    """Reads inside one `inspect()` block see the database as it was at the first."""
    memory = open_memory(config=OPEN)
    _store(memory, 2)
    from memrl.inspection import memory_filter

    query = memory_filter("p")
    with memory.storage.inspect() as r:
        assert r.memory_count(query) == 2
        memory.store_experience("intent 9", "experience 9", namespace="p")  # committed meanwhile
        assert r.memory_count(query) == 2 and len(r.memory_page(query)) == 2
    assert memory.memories_page("p").total == 3


def test_the_view_cannot_write(open_memory):
    memory = open_memory(config=OPEN)
    _store(memory, 1)
    with pytest.raises(Exception, match="(?i)read.?only"):  # noqa: PT011 - each driver its own
        with memory.storage.inspect() as r:
            r.conn.execute("DELETE FROM memories")  # type: ignore[attr-defined]
    assert memory.memories_page("p").total == 1


def test_q_after_when_learning_is_off_or_the_memory_was_forgotten(open_memory):
    """Learning off: Q after is the Q the memory keeps. Forgotten between recall and
    outcome: credited, no Q after (there is no Q any more)."""
    memory = open_memory(config=MemoryConfig(delta=-1.0, k1=3, k2=2, lam=0.0, learning=False))
    a, b = _store(memory, 2)
    _set_q(memory, {a: 0.4, b: -0.2})
    task = memory.recall("intent 0", "p")
    assert {m.id for m in task.injected} == {a, b}
    memory.forget([b], "p")
    outcome = memory.report(task.task_id or "", success=True)
    assert (outcome.credited, outcome.forgotten) == ({a: 0.4}, [b])
    [entry] = memory.ledger_page("p").tasks
    assert {(m.memory_id, m.credited, m.q_after) for m in entry.pool} == {(a, True, 0.4), (b, True, None)}
    assert memory.memory_history(a).q_history[-1][1] == 0.4
    assert memory.memory_history(b).q_history == []
