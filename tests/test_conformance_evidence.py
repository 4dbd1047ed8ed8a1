"""Evidence next to Q and change detection (learning.py), on every backend: the SQL each
backend runs gives what the rule says, figures computed by hand."""

from __future__ import annotations

import pytest

from memrl import MemoryConfig
from memrl.learning import Evidence, LearningRule, update

TOPIC = "deploy the service to staging"


def one_memory(open_memory, **config):
    memory = open_memory(config=MemoryConfig(delta=-1.0, k1=1, k2=1, **config))
    return memory, memory.store_experience(TOPIC, "run make deploy ENV=staging").id


def test_a_new_memory_has_no_evidence_and_the_prior_uncertainty(open_memory) -> None:
    memory, mid = one_memory(open_memory)
    row = memory.get(mid)
    assert (row.successes, row.failures, row.q_recent) == (0.0, 0.0, 0.0)
    assert row.q_sd == pytest.approx(0.5773503)  # 2 sqrt(1/12): Beta(1, 1) on [-1, 1]
    [recalled] = memory.recall(TOPIC).injected
    assert (recalled.successes, recalled.failures) == (0.0, 0.0)
    assert recalled.q_sd == pytest.approx(0.5773503)


def test_outcomes_count_as_successes_and_failures(open_memory) -> None:
    memory, mid = one_memory(open_memory)
    for r in (1.0, 1.0, -1.0, 0.5):
        memory.report(memory.recall(TOPIC).task_id, reward=r)
    row = memory.get(mid)
    # 1 + 1 + 0 + 0.75 successes, 0 + 0 + 1 + 0.25 failures
    assert (row.successes, row.failures) == pytest.approx((2.75, 1.25))
    # Beta(3.75, 2.25): sd = 2 sqrt(3.75 * 2.25 / (6^2 * 7)) = 0.36596
    assert row.q_sd == pytest.approx(0.3659625, rel=1e-6)
    # fast EMA (0.7): 0.7, 0.91, -0.427, 0.2219
    assert row.q_recent == pytest.approx(0.2219)
    assert row.q == pytest.approx(0.3 * 0.5 + 0.7 * (0.3 * -1 + 0.7 * 0.51))  # EMA alone


def test_without_change_detection_q_is_the_paper_ema(open_memory) -> None:
    memory, mid = one_memory(open_memory, change_threshold=None)
    for _ in range(20):
        memory.report(memory.recall(TOPIC).task_id, success=True)
    memory.report(memory.recall(TOPIC).task_id, success=False)
    q20 = 1 - 0.7**20
    assert memory.get(mid).q == pytest.approx(q20 + 0.3 * (-1 - q20))  # 0.4002...


def test_change_detection_resets_a_long_record_on_the_first_contradiction(open_memory) -> None:
    memory, mid = one_memory(open_memory, change_threshold=1.2)
    for _ in range(20):
        memory.report(memory.recall(TOPIC).task_id, success=True)
    before = memory.get(mid)
    assert (before.successes, before.failures) == (20.0, 0.0)
    memory.report(memory.recall(TOPIC).task_id, success=False)
    row = memory.get(mid)
    # recent = 1 - 0.3^20 + 0.7 (-1 - that) ~ -0.4; record Beta(21, 2): mean 2*21/23 - 1 =
    # 0.826; |-0.4 - 0.826| = 1.226 > 1.2: Q restarts from the recent average
    assert row.q == pytest.approx(-0.4, abs=1e-9)
    assert row.q_recent == pytest.approx(-0.4, abs=1e-9)
    assert (row.successes, row.failures) == (0.0, 1.0)


def test_change_detection_leaves_a_reliable_memory_alone_after_one_failure(open_memory) -> None:
    memory, mid = one_memory(open_memory, change_threshold=1.2)
    pattern = [True, True, True, True, False] * 3 + [True, False]
    state = Evidence(0.0, 0.0)
    rule = LearningRule(0.3, 0.7, 1.2)
    resets = 0
    for success in pattern:
        memory.report(memory.recall(TOPIC).task_id, success=success)
        after = update(state, 1.0 if success else -1.0, rule)
        resets += after.successes + after.failures == 1.0 and state.successes + state.failures > 0
        state = after
        row = memory.get(mid)
        assert (row.q, row.q_recent, row.successes, row.failures) == pytest.approx(
            (state.q, state.q_recent, state.successes, state.failures), abs=1e-12
        )
    assert resets == 0  # 80% success with single failures: never reset
    for _ in range(2):  # two failures in a row contradict the record: reset
        memory.report(memory.recall(TOPIC).task_id, success=False)
    assert memory.get(mid).successes == 0.0


def test_learning_off_moves_no_evidence(open_memory) -> None:
    memory, mid = one_memory(open_memory, learning=False)
    memory.report(memory.recall(TOPIC).task_id, success=True)
    row = memory.get(mid)
    assert (row.q, row.successes, row.failures, row.q_recent) == (0.0, 0.0, 0.0, 0.0)


def test_export_and_import_keep_the_evidence(open_memory) -> None:
    from memrl.transfer import export_lines, import_jsonl

    memory, mid = one_memory(open_memory)
    for r in (1.0, -1.0, 1.0):
        memory.report(memory.recall(TOPIC).task_id, reward=r)
    lines = list(export_lines(memory))
    assert import_jsonl(memory, lines, namespace="copy").created == 1
    [row] = list(memory.iter_memories("copy"))
    src = memory.get(mid)
    assert (row.q, row.successes, row.failures, row.q_recent) == pytest.approx(
        (src.q, src.successes, src.failures, src.q_recent)
    )


def test_archive_and_restore_keep_the_evidence(open_memory) -> None:
    memory, mid = one_memory(open_memory)
    for r in (1.0, 1.0, -1.0):
        memory.report(memory.recall(TOPIC).task_id, reward=r)
    before = memory.get(mid)
    memory.archive([mid])
    assert memory.get(mid) is None
    memory.restore([mid])
    after = memory.get(mid)
    assert (after.q, after.successes, after.failures, after.q_recent) == pytest.approx(
        (before.q, 2.0, 1.0, before.q_recent)
    )
