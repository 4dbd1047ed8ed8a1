"""Outcome learning: Q <- Q + alpha (r - Q) on the credited memories only, exactly once per task."""

from __future__ import annotations

import json

import pytest

from memrl import InvalidInputError, MemoryConfig

TOPIC = "fix the failing build"


def three_memories(memory) -> list[int]:
    return [
        memory.store_experience(f"{TOPIC} step {i}", f"experience {i}").id for i in range(3)
    ]


@pytest.mark.parametrize("alpha", [0.3, 0.1, 1.0])
def test_q_after_n_successes_is_one_minus_decay(open_memory, alpha: float) -> None:
    memory = open_memory(config=MemoryConfig(alpha=alpha, delta=-1.0, k1=3, k2=3))
    ids = three_memories(memory)
    for n in range(1, 11):
        task = memory.recall(TOPIC)
        assert sorted(m.id for m in task.injected) == ids
        outcome = memory.report(task.task_id, success=True)
        assert outcome.applied is True
        assert outcome.credited == pytest.approx({i: 1 - (1 - alpha) ** n for i in ids})
        for i in ids:
            row = memory.get(i)
            assert row.q == pytest.approx(1 - (1 - alpha) ** n, rel=1e-12)
            assert (row.n_updates, row.last_reward) == (n, 1.0)


def test_mixed_rewards_follow_the_update_rule(open_memory) -> None:
    memory = open_memory(config=MemoryConfig(alpha=0.3, delta=-1.0, k1=1, k2=1))
    mid = memory.store_experience(TOPIC, "the only experience").id
    q = 0.0
    for r in [1.0, -1.0, 0.5, 0.0, -0.25, 1.0, 1.0]:
        memory.report(memory.recall(TOPIC).task_id, reward=r)
        q = q + 0.3 * (r - q)
        assert memory.get(mid).q == pytest.approx(q, rel=1e-12)
    assert q == pytest.approx(0.4941387)  # 0.3, -0.09, 0.087, 0.0609, -0.03237, 0.277341, ...


def test_failure_uses_the_configured_failure_reward(open_memory, sql) -> None:
    memory = open_memory(config=MemoryConfig(alpha=0.5, delta=-1.0, failure_reward=-0.5))
    mid = memory.store_experience(TOPIC, "experience").id
    task = memory.recall(TOPIC)
    assert memory.report(task.task_id, success=False).credited == {mid: pytest.approx(-0.25)}
    assert sql(memory.storage, "SELECT outcome, reward FROM tasks") == [("failure", -0.5)]


def test_learning_off_records_outcomes_without_moving_q(open_memory, sql) -> None:
    memory = open_memory(config=MemoryConfig(delta=-1.0, learning=False))
    mid = memory.store_experience(TOPIC, "experience").id
    task = memory.recall(TOPIC)
    assert memory.report(task.task_id, success=True).credited == {mid: 0.0}
    assert (memory.get(mid).q, memory.get(mid).n_updates) == (0.0, 0)
    assert sql(memory.storage, "SELECT reward FROM tasks") == [(1.0,)]


def test_duplicate_outcome_does_not_update_twice(open_memory, snapshot) -> None:
    memory = open_memory(config=MemoryConfig(alpha=0.3, delta=-1.0))
    ids = three_memories(memory)
    task = memory.recall(TOPIC)
    first = memory.report(task.task_id, success=True)
    assert first.applied is True
    before = snapshot(memory.storage)

    again = memory.report(task.task_id, success=True)
    other = memory.report(task.task_id, reward=-1.0, reflection="a reflection sent on a retry")

    for result in (again, other):
        assert result.applied is False
        assert "already reported" in result.message
        assert result.reward == 1.0
        assert result.reflection_id is None
        assert result.credited == pytest.approx({i: 0.3 for i in ids})
    assert snapshot(memory.storage) == before
    assert [memory.get(i).n_updates for i in ids] == [1, 1, 1]


def test_only_named_used_ids_are_credited(open_memory, sql) -> None:
    memory = open_memory(config=MemoryConfig(alpha=0.3, delta=-1.0, k1=3, k2=3))
    a, b, c = three_memories(memory)
    task = memory.recall(TOPIC)
    outcome = memory.report(task.task_id, success=True, used_ids=[b])
    assert outcome.credited == {b: pytest.approx(0.3)}
    assert [memory.get(i).q for i in (a, b, c)] == [0.0, pytest.approx(0.3), 0.0]
    assert [memory.get(i).n_updates for i in (a, b, c)] == [0, 1, 0]
    assert sorted(sql(memory.storage, "SELECT memory_id, injected, credited FROM task_candidates")) == [
        (a, 1, 0), (b, 1, 1), (c, 1, 0)
    ]
    assert sql(memory.storage, "SELECT used_ids FROM tasks") == [(json.dumps([b]),)]


def test_default_credit_is_the_injected_set_not_the_pool(open_memory) -> None:
    memory = open_memory(config=MemoryConfig(alpha=0.3, delta=-1.0, k1=3, k2=2))
    ids = three_memories(memory)
    task = memory.recall(TOPIC)
    injected = [m.id for m in task.injected]
    (left_out,) = set(ids) - set(injected)
    assert set(memory.report(task.task_id, success=True).credited) == set(injected)
    assert memory.get(left_out).q == 0.0


def test_empty_used_ids_credits_none(open_memory, sql) -> None:
    memory = open_memory(config=MemoryConfig(delta=-1.0))
    ids = three_memories(memory)
    task = memory.recall(TOPIC)
    outcome = memory.report(task.task_id, success=True, used_ids=[])
    assert (outcome.applied, outcome.credited) == (True, {})
    assert [memory.get(i).q for i in ids] == [0.0, 0.0, 0.0]
    assert sql(memory.storage, "SELECT reward, used_ids FROM tasks") == [(1.0, "[]")]
    assert sql(memory.storage, "SELECT count(*) FROM task_candidates WHERE credited") == [(0,)]


@pytest.mark.parametrize("stray", ["not-injected candidate", "unknown id"])
def test_used_ids_not_injected_is_an_error_and_changes_nothing(
    open_memory, snapshot, stray: str
) -> None:
    memory = open_memory(config=MemoryConfig(alpha=0.3, delta=-1.0, k1=3, k2=2))
    ids = three_memories(memory)
    task = memory.recall(TOPIC)
    injected = [m.id for m in task.injected]
    bad = (set(ids) - set(injected)).pop() if stray == "not-injected candidate" else 999_999
    before = snapshot(memory.storage)

    with pytest.raises(InvalidInputError, match=rf"used_ids \[{bad}\] were not injected"):
        memory.report(task.task_id, success=True, used_ids=[injected[0], bad])

    assert snapshot(memory.storage) == before
    # the task is still open: a correct report afterwards is applied
    assert memory.report(task.task_id, success=True, used_ids=[injected[0]]).applied is True


def test_reports_on_different_tasks_accumulate(open_memory) -> None:
    memory = open_memory(config=MemoryConfig(alpha=0.3, delta=-1.0, k1=3, k2=3))
    ids = three_memories(memory)
    first, second = memory.recall(TOPIC), memory.recall(TOPIC)
    memory.report(second.task_id, success=False, used_ids=[ids[0]])
    memory.report(first.task_id, success=True, used_ids=[ids[0], ids[1]])
    # ids[0]: 0 -> -0.3 -> -0.3 + 0.3 * (1 + 0.3) = 0.09
    assert memory.get(ids[0]).q == pytest.approx(0.09)
    assert memory.get(ids[1]).q == pytest.approx(0.3)
    assert memory.get(ids[2]).q == 0.0
