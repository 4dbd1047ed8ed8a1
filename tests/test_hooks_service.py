"""The memory side of the hooks on a real database file: one outcome per turn, each memory
credited at most once, the model's own report winning over the hook's (exactly-once)."""

from __future__ import annotations

import pytest
from memrl_server.hooks.service import HookService, report_turn

from memrl import Experience

NS = "github.com/acme/app"
TASK = "fix the flaky race-condition test in the async job queue"


@pytest.fixture
def memory(open_memory):
    m = open_memory()
    m.store_many(
        [
            Experience(f"flaky async job queue test, variant {i}", f"fix {i}", namespace=NS)
            for i in range(4)
        ]
    )
    return m


def q(memory, ids):
    return {i: round(memory.get(i).q, 6) for i in ids}


def test_the_hook_task_credits_only_what_was_shown(memory):
    r = memory.recall(TASK, NS, k1=4, k2=3)
    injected = [m.id for m in r.injected]
    reports = report_turn(memory, r.task_id, injected[:2], [], success=True)
    assert reports == [
        {"task_id": r.task_id, "status": "updated", "reward": 1.0, "credited": sorted(injected[:2])}
    ]
    assert q(memory, injected) == {injected[0]: 0.3, injected[1]: 0.3, injected[2]: 0.0}


def test_a_model_report_wins_and_the_hook_report_is_a_no_op(memory):
    r = memory.recall(TASK, NS, k1=4, k2=3)
    ids = [m.id for m in r.injected]
    memory.report(r.task_id, success=False, used_ids=ids[:1])  # the model, through MCP
    reports = report_turn(memory, r.task_id, ids, [], success=True)
    assert reports[0]["status"] == "already_reported"
    assert q(memory, ids) == {ids[0]: -0.3, ids[1]: 0.0, ids[2]: 0.0}


def test_the_models_own_recall_shares_the_outcome_without_double_credit(memory):
    hook = memory.recall(TASK, NS, k1=4, k2=3)
    model = memory.recall(TASK + " (model's words)", NS, k1=4, k2=4)
    hook_ids = [m.id for m in hook.injected]
    model_ids = [m.id for m in model.injected]
    assert set(hook_ids) & set(model_ids)
    reports = report_turn(memory, hook.task_id, hook_ids, [model.task_id], success=True)
    assert [r["status"] for r in reports] == ["updated", "updated"]
    credited = reports[0]["credited"] + reports[1]["credited"]
    assert sorted(credited) == sorted(set(hook_ids) | set(model_ids))  # each once
    assert all(v == 0.3 for v in q(memory, credited).values())


def test_what_the_model_credited_itself_is_not_credited_again(memory):
    hook = memory.recall(TASK, NS, k1=4, k2=3)
    model = memory.recall(TASK, NS, k1=4, k2=3)
    shared = [m.id for m in model.injected][0]
    memory.report(model.task_id, success=True, used_ids=[shared])
    reports = report_turn(
        memory, hook.task_id, [m.id for m in hook.injected], [model.task_id], success=True
    )
    hook_report = reports[0]
    assert shared not in hook_report["credited"]
    assert memory.get(shared).q == pytest.approx(0.3)
    assert reports[1]["status"] == "already_reported"


def test_a_weak_verdict_reports_a_partial_reward(memory):
    r = memory.recall(TASK, NS, k1=4, k2=1)
    report_turn(memory, r.task_id, [r.injected[0].id], [], reward=-0.5)
    assert memory.get(r.injected[0].id).q == pytest.approx(-0.15)
    assert memory.task(r.task_id).reward == pytest.approx(-0.5)


def test_the_service_answers_ops_and_refuses_unknown_ones(memory, tmp_path):
    service = HookService(memory, tmp_path / "m.db")
    answer = service.handle(
        {"op": "recall", "namespace": NS, "prompt": f"  {TASK}  ", "budget": 600}
    )
    assert answer["ok"] and answer["shown"] == answer["injected"]
    assert f"task_id {answer['task_id']}" in answer["context"]
    assert service.handle({"op": "stats", "namespace": NS})["memories"] == 4
    assert service.handle({"op": "nope"}) == {"ok": False, "error": "unknown op 'nope'"}
    bad = service.handle({"op": "report", "task_id": "t-unknown", "success": True})
    assert bad == {"ok": True, "reports": []}
    invalid = service.handle({"op": "report", "task_id": "bad id!", "success": True})
    assert invalid["ok"] is False and "task id" in invalid["error"]
