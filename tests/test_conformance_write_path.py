"""The write path (with the real model): new memories start at Q_init, duplicates return the existing id, and failure
reflections sent with an outcome become 'failure' memories linked to their task."""

from __future__ import annotations

import pytest

from memrl import Experience, MemoryConfig


def test_new_memory_starts_at_q_init(real_model, open_memory) -> None:
    memory = open_memory(real_model, config=MemoryConfig(q_init=0.25))
    stored = memory.store_experience(
        "deploy the service", "1. build 2. push 3. roll out", "note", "ops", metadata={"by": "ci"}
    )
    assert (stored.created, stored.namespace) == (True, "ops")
    row = memory.get(stored.id)
    assert (row.intent, row.experience, row.kind, row.namespace) == (
        "deploy the service",
        "1. build 2. push 3. roll out",
        "note",
        "ops",
    )
    assert (row.q, row.n_updates, row.last_reward, row.metadata) == (0.25, 0, None, {"by": "ci"})
    assert (row.model_id, row.source_task_id) == (real_model.model_id, None)


def test_duplicate_intent_and_experience_returns_the_existing_id(
    real_model, open_memory, sql, snapshot, backend
) -> None:
    memory = open_memory(real_model)
    first = memory.store_experience("fix flaky test", "retry with a fixed seed")
    before = snapshot(memory.storage)
    again = memory.store_experience("  fix flaky test\n", " retry with a fixed seed ")
    assert (again.id, again.created) == (first.id, False)
    assert snapshot(memory.storage) == before

    other_text = memory.store_experience("fix flaky test", "pin the dependency")
    other_ns = memory.store_experience("fix flaky test", "retry with a fixed seed", namespace="b")
    assert other_text.created and other_ns.created
    assert len({first.id, other_text.id, other_ns.id}) == 3
    assert sql(memory.storage, "SELECT count(*) FROM memories") == [(3,)]
    # one intent per namespace: the two memories of "fix flaky test" in `default` share one vector
    assert sql(memory.storage, "SELECT count(*) FROM intents") == [(2,)]
    vectors = "intent_vectors" if backend.name == "sqlite" else "intents WHERE embedding IS NOT NULL"
    assert sql(memory.storage, f"SELECT count(*) FROM {vectors}") == [(2,)]


def test_duplicate_keeps_its_learned_q(real_model, open_memory) -> None:
    memory = open_memory(real_model, config=MemoryConfig(delta=-1.0))
    mid = memory.store_experience("fix flaky test", "retry").id
    memory.report(memory.recall("fix flaky test").task_id, success=True)
    assert memory.store_experience("fix flaky test", "retry").id == mid
    assert memory.get(mid).q == pytest.approx(0.3)


def test_store_many_is_one_batch_with_duplicates_inside(
    real_model, open_memory, sql, monkeypatch
) -> None:
    memory = open_memory(real_model)
    batches = []
    embed = real_model.embed
    monkeypatch.setattr(real_model, "embed", lambda texts: batches.append(texts) or embed(texts))
    results = memory.store_many(
        [Experience("a", "x"), Experience("b", "y", kind="failure"), Experience("a", "x")]
    )
    assert [r.created for r in results] == [True, True, False]
    assert results[2].id == results[0].id
    assert sql(memory.storage, "SELECT intent, kind FROM memories ORDER BY id") == [
        ("a", "success"),
        ("b", "failure"),
    ]
    assert batches == [["a", "b", "a"]]


@pytest.mark.parametrize(
    ("outcome", "kind"),
    [
        ({"success": False}, "failure"),
        ({"reward": -0.5}, "failure"),
        ({"success": True}, "success"),
    ],
)
def test_reflection_with_an_outcome_is_stored_linked_to_the_task(
    real_model, open_memory, sql, outcome: dict, kind: str
) -> None:
    memory = open_memory(real_model, config=MemoryConfig(q_init=0.0, delta=-1.0))
    helper = memory.store_experience(
        "migrate the schema", "add the column first", namespace="db"
    ).id
    task = memory.recall("migrate the schema, again", "db")
    result = memory.report(
        task.task_id,
        reflection="The lock timed out: run migrations before the app starts.",
        **outcome,
    )
    assert result.applied is True
    assert result.reflection_id is not None and result.reflection_id != helper
    row = memory.get(result.reflection_id)
    assert (row.kind, row.source_task_id, row.namespace, row.q) == (kind, task.task_id, "db", 0.0)
    assert (row.intent, row.experience) == (
        "migrate the schema, again",
        "The lock timed out: run migrations before the app starts.",
    )
    # the reflection is new: it was not injected, so the outcome did not move its Q
    assert list(result.credited) == [helper]
    assert sql(memory.storage, "SELECT source_task_id FROM memories WHERE kind = ?", kind)[-1] == (
        task.task_id,
    )


def test_store_experience_can_link_a_task(real_model, open_memory) -> None:
    memory = open_memory(real_model)
    task = memory.recall("write the release notes")
    stored = memory.store_experience(
        "write the release notes", "list the merged PRs", task_id=task.task_id
    )
    assert memory.get(stored.id).source_task_id == task.task_id


def test_outcome_and_its_reflection_commit_together(
    open_memory, snapshot, monkeypatch, backend
) -> None:
    """If storing the reflection fails, the outcome is not recorded either: a retry can apply both."""
    memory = open_memory()
    memory.store_experience("deploy the web app", "run make deploy", namespace="ns")
    task = memory.recall("deploy the web app", "ns").task_id
    before = snapshot(memory.storage)

    def broken_insert(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(f"memrl.storage.{backend.name}.memories.insert", broken_insert)
    with pytest.raises(RuntimeError):
        memory.report(task, success=False, reflection="make deploy needs VPN; connect first")
    assert snapshot(memory.storage) == before
    monkeypatch.undo()
    out = memory.report(task, success=False, reflection="make deploy needs VPN; connect first")
    assert out.applied and out.reflection_id is not None
    assert memory.get(out.reflection_id).kind == "failure"
