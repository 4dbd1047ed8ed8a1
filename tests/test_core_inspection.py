"""The inspection reads on what the core and the SQLite file alone decide: argument
checks, the learning curve's arithmetic, the SQLite query plans of every page, and an old
file gaining the inspection schema. The pages' answers on every backend are in
tests/test_conformance_inspection.py.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

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


@pytest.mark.parametrize(
    "query, message",
    [
        ({"after": (float("nan"), 3)}, "after must be"),
        ({"after": (float("inf"), 3)}, "after must be"),
        ({"after": (0.5, "3")}, "after must be"),
        ({"after": (0.5,)}, "after must be"),
    ],
)
def test_a_cursor_must_be_a_finite_value_and_an_id(open_memory, query, message):
    memory = open_memory(config=OPEN)
    with pytest.raises(InvalidInputError, match=message):
        memory.memories_page("p", **query)


def test_a_ledger_cursor_must_be_a_finite_time_and_a_task_id(open_memory):
    memory = open_memory(config=OPEN)
    for before in [(float("nan"), "t"), (1.0, 2), (1.0,), (1.0, "t\x00"), (1.0, "-t")]:
        with pytest.raises(InvalidInputError, match="before must be"):
            memory.ledger_page("p", before=before)


@pytest.mark.parametrize(
    "text, message",
    [("a\x00b", "contains a NUL character"), ("a\ud800", "lone UTF-16 surrogate"),
     ("x" * 1001, "more than the limit of 1000"), (5, "must be a string")],
)
def test_a_search_text_no_memory_could_hold_is_refused(open_memory, text, message):
    memory = open_memory(config=OPEN)
    with pytest.raises(InvalidInputError, match=message):
        memory.memories_page("p", text=text)
    assert memory.memories_page("p", text="  ").total == 0  # blank: no filter
