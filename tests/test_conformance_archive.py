"""The archive, corrections, per-memory feedback and forgetting by utility, on every backend.

Expectations are computed by hand: Q moves by Q <- Q + alpha (r - Q) from 0, so with
alpha = 0.5 one success gives 0.5 and one failure -0.5.
"""

from __future__ import annotations

import dataclasses
import time

import pytest
from backends import query
from fake_embedder import FakeEmbedder

from memrl import InvalidInputError, MemoryConfig, SqliteStorage, Storage, open_storage
from memrl.memory import Experience
from memrl.storage.base import MEMORY_FIELDS, MemoryRow

GATE_OPEN = MemoryConfig(delta=-1.0, alpha=0.5, k1=5, k2=5)
DAY = 86_400.0


def ids_of(recall) -> list[int]:
    return sorted(m.id for m in recall.candidates)


# -- archive and restore ----------------------------------------------------------------------


def test_archive_leaves_retrieval_as_forget_does_and_restore_keeps_the_id(open_memory, sql) -> None:
    memory = open_memory(FakeEmbedder(), GATE_OPEN)
    a = memory.store_experience("deploy the app", "run make deploy").id
    b = memory.store_experience("deploy the app", "run the deploy script").id
    c = memory.store_experience("write the changelog", "list the merged pull requests").id
    memory.report(memory.recall("deploy the app").task_id, success=True)  # a, b, c: Q 0.5
    assert ids_of(memory.recall("deploy the app", dry_run=True)) == [a, b, c]

    assert memory.archive([a]).archived == [a]
    assert ids_of(memory.recall("deploy the app", dry_run=True)) == [b, c]
    assert sql(memory.storage, "SELECT count(*) FROM intents") == [(2,)]
    # the intent's last memory leaves: the intent leaves the index, as with forget
    memory.archive([b])
    assert ids_of(memory.recall("deploy the app", dry_run=True)) == [c]
    assert sql(memory.storage, "SELECT count(*) FROM intents") == [(1,)]
    assert memory.get(a) is None
    [stats] = memory.stats()
    assert (stats["memories"], stats["archived"], stats["intents"]) == (1, 2, 1)
    shelved = {r.memory.id: r for r in memory.iter_archived()}
    assert sorted(shelved) == [a, b]
    assert (shelved[a].reason, shelved[a].superseded_by) == ("manual", None)
    assert (shelved[a].memory.q, shelved[a].memory.n_updates) == (0.5, 1)

    assert memory.restore([a]).restored == [a]
    back = memory.get(a)
    assert back is not None and (back.q, back.n_updates, back.experience) == (
        0.5, 1, "run make deploy"
    )
    assert ids_of(memory.recall("deploy the app", dry_run=True)) == [a, c]
    assert sql(memory.storage, "SELECT count(*) FROM intents") == [(2,)]
    [stats] = memory.stats()
    assert (stats["memories"], stats["archived"]) == (2, 1)
    # ids are never reused: a new memory gets an id above every archived one
    assert memory.store_experience("another chore", "sweep").id > c


def columns(store: Storage, table: str) -> list[str]:
    """The columns of `table` in the order the database keeps them."""
    if isinstance(store, SqliteStorage):
        return [r[0] for r in query(store, f"SELECT name FROM pragma_table_info('{table}') ORDER BY cid")]
    return [
        r[0]
        for r in query(
            store,
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = ? ORDER BY ordinal_position",
            table,
        )
    ]


def test_memories_and_the_archive_have_the_columns_of_memory_fields(backend) -> None:
    """The archive copies a memory by MEMORY_FIELDS (storage/base.py): a column added to
    `memories` must be added to MEMORY_FIELDS, MemoryRow and `archived_memories` in the
    same migration, else this fails."""
    embedder = FakeEmbedder()
    store = open_storage(backend.target, embedder.dim, embedder.model_id)
    try:
        assert tuple(f.name for f in dataclasses.fields(MemoryRow)) == MEMORY_FIELDS
        assert tuple(columns(store, "memories")) == MEMORY_FIELDS
        assert tuple(columns(store, "archived_memories")) == (
            *MEMORY_FIELDS, "embedding", "reason", "superseded_by", "archived_at"
        )
    finally:
        store.close()


def test_archive_and_restore_keep_every_field_of_a_memory(open_memory) -> None:
    """Every MEMORY_FIELDS value, each unlike its default, survives the archive and the
    way back (a sibling keeps the intent, so even its id stays)."""
    memory = open_memory(FakeEmbedder(), GATE_OPEN)
    task = memory.recall("deploy the app", "p", task_id="task-src").task_id
    [a, b] = memory.store_many(
        [
            Experience("deploy the app", "run make deploy", "failure", "p", task,
                       {"by": "ops", "steps": [1, 2]}),
            Experience("deploy the app", "run the deploy script", namespace="p"),
        ],
        learned=[
            dict(q=-0.3, n_updates=7, last_reward=-1.0, created_at=1000.5, updated_at=2000.25,
                 successes=2.5, failures=4.5, q_recent=-0.6),
            {},
        ],
    )
    before, plain = memory.get(a.id), memory.get(b.id)
    assert before is not None and plain is not None
    # a field a plain store sets alike would not show a copy that drops it
    alike = {f for f in MEMORY_FIELDS if getattr(before, f) == getattr(plain, f)}
    assert alike == {"namespace", "intent_id", "intent", "model_id"}

    memory.archive([a.id], "p")
    [shelved] = memory.iter_archived("p")
    assert shelved.memory == before
    memory.restore([a.id], "p")
    assert memory.get(a.id) == before


def test_a_pending_task_credits_a_restored_memory_by_its_id(open_memory) -> None:
    memory = open_memory(FakeEmbedder(), GATE_OPEN)
    a = memory.store_experience("deploy", "way a").id
    task = memory.recall("deploy")
    memory.archive([a])
    memory.restore([a])
    assert memory.report(task.task_id, success=True).credited == {a: 0.5}


def test_forget_deletes_archived_memories_for_good(open_memory, sql) -> None:
    memory = open_memory(FakeEmbedder(), GATE_OPEN)
    a = memory.store_experience("deploy", "way a", namespace="p").id
    b = memory.store_experience("build", "way b", namespace="q").id
    memory.archive([a], "p")
    memory.archive([b], "q")
    out = memory.forget([a, b], "p")
    assert (out.deleted, out.still_present, out.refused) == (1, [b], [b])
    assert sql(memory.storage, "SELECT id FROM archived_memories") == [(b,)]
    with pytest.raises(InvalidInputError, match=rf"no archived memory has id \[{a}\]"):
        memory.restore([a])


@pytest.mark.parametrize("case", ["live", "unknown", "other namespace"])
def test_restore_checks_every_id_and_changes_nothing_on_error(open_memory, snapshot, case) -> None:
    memory = open_memory(FakeEmbedder(), GATE_OPEN)
    a = memory.store_experience("deploy", "way a", namespace="p").id
    b = memory.store_experience("build", "way b", namespace="p").id
    c = memory.store_experience("test", "way c", namespace="q").id
    memory.archive([a], "p")
    memory.archive([c], "q")
    bad, message = {
        "live": (b, rf"memories \[{b}\] are not archived"),
        "unknown": (999, r"no archived memory has id \[999\]"),
        "other namespace": (c, rf"archived memories \[{c}\] are not in namespace 'p'"),
    }[case]
    before = snapshot(memory.storage)
    with pytest.raises(InvalidInputError, match=message):
        memory.restore([a, bad], "p")
    assert snapshot(memory.storage) == before


def test_restore_refuses_when_a_live_memory_holds_the_same_content(open_memory, snapshot) -> None:
    memory = open_memory(FakeEmbedder(), GATE_OPEN)
    a = memory.store_experience("deploy", "way a").id
    memory.archive([a])
    again = memory.store_experience("deploy", "way a").id
    assert again > a
    before = snapshot(memory.storage)
    with pytest.raises(InvalidInputError, match=rf"memory {again} .* holds the same intent"):
        memory.restore([a])
    assert snapshot(memory.storage) == before


@pytest.mark.parametrize("case", ["unknown", "archived", "other namespace"])
def test_archive_checks_every_id(open_memory, snapshot, case) -> None:
    memory = open_memory(FakeEmbedder(), GATE_OPEN)
    a = memory.store_experience("deploy", "way a", namespace="p").id
    b = memory.store_experience("build", "way b", namespace="p").id
    c = memory.store_experience("test", "way c", namespace="q").id
    memory.archive([b], "p")
    bad, message = {
        "unknown": (999, r"no memory has id \[999\]"),
        "archived": (b, rf"memories \[{b}\] are archived \({b}: manual\)"),
        "other namespace": (c, rf"memories \[{c}\] are not in namespace 'p'"),
    }[case]
    before = snapshot(memory.storage)
    with pytest.raises(InvalidInputError, match=message):
        memory.archive([a, bad], "p")
    assert snapshot(memory.storage) == before


# -- corrections ------------------------------------------------------------------------------


def test_a_correction_is_recalled_in_place_of_what_it_supersedes(open_memory, sql) -> None:
    memory = open_memory(FakeEmbedder(), GATE_OPEN)
    old = memory.store_experience("run the tests", "use python -m unittest").id
    other = memory.store_experience("run the tests", "clear the cache first").id
    assert [m.id for m in memory.recall("run the tests").injected] == [other, old]

    out = memory.store_experience("run the tests", "use pytest -x -q", supersedes=[old])
    assert out.created and out.superseded == [old]
    assert sorted(m.id for m in memory.recall("run the tests").injected) == [other, out.id]
    [row] = list(memory.iter_archived())
    assert (row.memory.id, row.reason, row.superseded_by) == (old, "superseded", out.id)
    assert sql(memory.storage, "SELECT memory_id, superseded_by FROM memory_corrections") == [
        (old, out.id)
    ]


@pytest.mark.parametrize("case", ["unknown", "other namespace", "archived", "itself"])
def test_supersedes_checks_every_id_and_stores_nothing_on_error(open_memory, snapshot, case) -> None:
    memory = open_memory(FakeEmbedder(), GATE_OPEN)
    a = memory.store_experience("deploy", "way a", namespace="p").id
    b = memory.store_experience("deploy", "way b", namespace="q").id
    c = memory.store_experience("deploy", "way c", namespace="p").id
    memory.archive([c], "p")
    text, bad, message = {
        "unknown": ("way d", 999, r"supersedes: no memory has id \[999\]"),
        "other namespace": ("way d", b, rf"memories \[{b}\] are not in namespace 'p'"),
        "archived": ("way d", c, rf"memories \[{c}\] are archived \({c}: manual\)"),
        "itself": ("way a", a, rf"same intent and experience as memory {a}"),
    }[case]
    before = snapshot(memory.storage)
    with pytest.raises(InvalidInputError, match=message):
        memory.store_experience("deploy", text, namespace="p", supersedes=sorted({a, bad}))
    assert snapshot(memory.storage) == before


def test_store_many_refuses_one_memory_superseded_twice(open_memory, snapshot) -> None:
    memory = open_memory(FakeEmbedder(), GATE_OPEN)
    a = memory.store_experience("deploy", "way a").id
    before = snapshot(memory.storage)
    with pytest.raises(InvalidInputError, match=rf"memories \[{a}\] are superseded by two items"):
        memory.store_many(
            [Experience("deploy", "way b", supersedes=[a]), Experience("deploy", "way c", supersedes=[a])]
        )
    assert snapshot(memory.storage) == before


# -- per-memory feedback ----------------------------------------------------------------------


def test_feedback_overrides_the_outcome_per_memory(open_memory, sql) -> None:
    memory = open_memory(FakeEmbedder(), MemoryConfig(delta=-1.0, alpha=0.5, k1=4, k2=3))
    ids = [memory.store_experience("fix the build", f"way {i}").id for i in range(4)]
    task = memory.recall("fix the build")
    injected = [m.id for m in task.injected]
    (left_out,) = set(ids) - set(injected)
    plain, wrong, old = injected
    out = memory.report(
        task.task_id,
        success=False,
        feedback={left_out: "useful", wrong: "incorrect", old: "outdated"},
    )
    # failure: plain gets -1 -> -0.5; useful gets +1 (not in the injected set) -> 0.5;
    # incorrect gets -1 -> -0.5; outdated is archived, not credited
    assert out.credited == {plain: -0.5, left_out: 0.5, wrong: -0.5}
    assert out.archived == [old]
    assert memory.get(old) is None
    assert [(r.memory.id, r.reason) for r in memory.iter_archived()] == [(old, "outdated")]
    assert sorted(sql(memory.storage, "SELECT memory_id, verdict FROM memory_feedback")) == sorted(
        [(left_out, "useful"), (wrong, "incorrect"), (old, "outdated")]
    )
    assert memory.get(left_out).last_reward == 1.0


def test_incorrect_on_a_successful_task_gets_the_failure_reward(open_memory, snapshot) -> None:
    memory = open_memory(FakeEmbedder(), MemoryConfig(delta=-1.0, alpha=0.5, k1=2, k2=2))
    a, b = (memory.store_experience("fix the build", f"way {i}").id for i in range(2))
    task = memory.recall("fix the build")
    out = memory.report(task.task_id, success=True, used_ids=[a], feedback={b: "incorrect"})
    assert out.credited == {a: 0.5, b: -0.5}
    before = snapshot(memory.storage)
    again = memory.report(task.task_id, success=True, feedback={a: "outdated"})
    assert again.applied is False
    assert snapshot(memory.storage) == before  # exactly once: the second feedback changes nothing


@pytest.mark.parametrize(
    "feedback, message",
    [
        ({999: "useful"}, r"feedback names memories \[999\] that were not in task"),
        ({1: "great"}, r"feedback for memory 1 is 'great': use one of useful, incorrect, outdated"),
        ({"1": "useful"}, r"feedback keys must be memory ids"),
    ],
)
def test_bad_feedback_is_an_error_and_changes_nothing(open_memory, snapshot, feedback, message) -> None:
    memory = open_memory(FakeEmbedder(), GATE_OPEN)
    memory.store_experience("fix the build", "way a")
    task = memory.recall("fix the build")
    before = snapshot(memory.storage)
    with pytest.raises(InvalidInputError, match=message):
        memory.report(task.task_id, success=True, feedback=feedback)
    assert snapshot(memory.storage) == before
    assert memory.report(task.task_id, success=True).applied is True


# -- forgetting by utility --------------------------------------------------------------------


def stocked(memory, now: float) -> dict[str, int]:
    """Seven memories of namespace p, each for one rule (or none)."""
    specs = {
        "low1": dict(q=-0.5, n_updates=5),
        "low2": dict(q=-0.2, n_updates=3),
        "thin": dict(q=-0.9, n_updates=1),  # low Q, too little evidence
        "stale": dict(created_at=now - 40 * DAY, updated_at=now - 40 * DAY),
        "recent": dict(created_at=now - 10 * DAY, updated_at=now - 10 * DAY),
        "old": {},
    }
    results = memory.store_many(
        [Experience(f"intent {name}", f"experience {name}", namespace="p") for name in specs],
        learned=list(specs.values()),
    )
    ids = {name: r.id for name, r in zip(specs, results)}
    ids["fix"] = memory.store_experience(
        "intent old", "experience fixed", namespace="p", supersedes=[ids["old"]]
    ).id
    memory.restore([ids["old"]], "p")  # a superseded leftover
    return ids


def test_prune_dry_run_says_what_would_go_and_why_and_writes_nothing(open_memory, snapshot) -> None:
    memory = open_memory(FakeEmbedder(), GATE_OPEN)
    now = time.time()
    ids = stocked(memory, now)
    before = snapshot(memory.storage)
    out = memory.prune("p", 3, dry_run=True, now=now)
    assert snapshot(memory.storage) == before
    assert (out.before, out.after, out.over, out.dry_run) == (7, 7, 0, True)
    assert [(c.id, c.rule) for c in out.chosen] == [
        (ids["old"], "superseded"),
        (ids["low1"], "low-q"),
        (ids["low2"], "low-q"),
        (ids["stale"], "stale"),
    ]
    low1 = out.chosen[1]
    assert (low1.q, low1.n_updates, low1.last_injected) == (-0.5, 5, None)
    assert low1.why == "Q -0.500 < +0 after 5 outcomes"
    assert out.chosen[3].why == "never injected, created 40.0 days ago"


def test_prune_archives_down_to_capacity_and_no_further_than_the_rule(open_memory) -> None:
    memory = open_memory(FakeEmbedder(), GATE_OPEN)
    now = time.time()
    ids = stocked(memory, now)
    out = memory.prune("p", 5, now=now)
    assert [c.id for c in out.chosen] == [ids["old"], ids["low1"]]
    assert (out.before, out.after, out.over) == (7, 5, 0)
    assert sorted(r.id for r in memory.iter_memories("p")) == sorted(
        ids[n] for n in ("low2", "thin", "stale", "recent", "fix")
    )
    assert {r.memory.id: r.reason for r in memory.iter_archived("p")} == {
        ids["old"]: "pruned", ids["low1"]: "pruned"
    }
    # capacity 1: the rule selects two more (low2, stale); thin, recent and fix stay
    out = memory.prune("p", 1, now=now)
    assert [c.id for c in out.chosen] == [ids["low2"], ids["stale"]]
    assert (out.after, out.over) == (3, 2)
    # at capacity: nothing to do
    assert memory.prune("p", 3, now=now).chosen == []


def test_prune_counts_the_last_injection_from_the_ledger(open_memory) -> None:
    memory = open_memory(FakeEmbedder(), MemoryConfig(delta=-1.0, k1=1, k2=1))
    now = time.time()
    [used, idle] = memory.store_many(
        [Experience("deploy", "way used"), Experience("write docs", "way idle")],
        learned=[dict(created_at=now - 90 * DAY)] * 2,
    )
    assert [m.id for m in memory.recall("deploy").injected] == [used.id]
    out = memory.prune("default", 1, dry_run=True, now=now)
    assert [(c.id, c.rule) for c in out.chosen] == [(idle.id, "stale")]
    # 31 days later the injection is stale too, and the older activity goes first
    later = memory.prune("default", 0, dry_run=True, now=now + 31 * DAY)
    assert [c.id for c in later.chosen] == [idle.id, used.id]
    assert later.chosen[1].last_injected is not None


def test_prune_needs_a_capacity(open_memory) -> None:
    memory = open_memory(FakeEmbedder(), GATE_OPEN)
    with pytest.raises(InvalidInputError, match="no capacity"):
        memory.prune("p")


def test_a_store_above_the_configured_capacity_prunes(open_memory) -> None:
    memory = open_memory(FakeEmbedder(), MemoryConfig(delta=-1.0, capacity=2))
    [bad] = memory.store_many([Experience("deploy", "bad way")], [dict(q=-0.6, n_updates=4)])
    memory.store_experience("build", "way b")
    assert memory.get(bad.id) is not None
    memory.store_experience("test", "way c")
    assert memory.get(bad.id) is None
    assert [(r.memory.id, r.reason) for r in memory.iter_archived()] == [(bad.id, "pruned")]
    [stats] = memory.stats()
    assert (stats["memories"], stats["archived"]) == (2, 1)
