"""`memrl hook` as a real subprocess per event, over a real database file, with the warm
daemon and the real model: what each session does to Q, the ledger and the host."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import table_snapshot
from hook_helpers import (
    HookEnv,
    bash_failed,
    bash_ok,
    mcp_recall,
    prompt,
    session_end,
    session_start,
    stop,
)
from memrl_server.hooks.locations import Locations
from memrl_server.namespaces import namespace_for

from memrl import Experience, Memory, SqliteStorage

TASK = "pytest fails with ModuleNotFoundError: no module named 'shopcart' when run from CI"
FIXES = [
    (
        "pytest cannot import the package under test (ModuleNotFoundError)",
        "Install the package in editable mode (pip install -e .) and run pytest from the root.",
    ),
    (
        "ModuleNotFoundError for the project package when running the test suite",
        "Add an empty conftest.py at the repository root so the root is on sys.path.",
    ),
    (
        "tests fail with import errors after moving modules into src/",
        "Set [tool.pytest.ini_options] pythonpath = ['src'] instead of editing sys.path.",
    ),
]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Iterator[HookEnv]:
    hooks = HookEnv(tmp_path_factory.mktemp("hooks"))
    yield hooks
    hooks.stop_daemon()
    assert hooks.daemon_pids() == [], "a daemon outlived the tests"


@pytest.fixture(scope="module")
def storage(env, real_model) -> Iterator[SqliteStorage]:
    store = SqliteStorage(env.db, real_model.dim, real_model.model_id)
    yield store
    store.close()


@pytest.fixture(scope="module")
def memory(storage, real_model) -> Memory:
    return Memory(storage, real_model)


@pytest.fixture
def ns(request) -> str:
    return f"test/{request.node.name[:60]}"


def seed(memory: Memory, ns: str) -> list[int]:
    return [r.id for r in memory.store_many([Experience(i, e, namespace=ns) for i, e in FIXES])]


def q_of(memory: Memory, ids: list[int]) -> dict[int, float]:
    return {i: round(memory.get(i).q, 4) for i in ids}


def shown_ids(context: str) -> list[int]:
    import re

    return [int(m) for m in re.findall(r"^#(\d+) ", context, re.MULTILINE)]


def task_id_of(context: str) -> str:
    import re

    match = re.search(r"task_id (t-[0-9a-f]{16})", context)
    assert match, context
    return match.group(1)


def test_a_passing_session_raises_the_recalled_memories_q(env, memory, ns):
    ids = seed(memory, ns)
    started = env.hook(session_start("s-pass"), namespace=ns)
    assert "no need to call recall_experience" in started.context
    first = env.hook(prompt("s-pass", TASK), namespace=ns)
    shown = shown_ids(first.context)
    assert shown and set(shown) <= set(ids)
    task_id = task_id_of(first.context)
    env.hook(bash_ok("s-pass", "ls src"), namespace=ns)
    env.hook(bash_ok("s-pass", ".venv/bin/python -m pytest -q", "12 passed in 0.40s"), namespace=ns)
    blocked = env.hook(stop("s-pass"), namespace=ns)
    assert blocked.answer["decision"] == "block"
    assert "store_experience" in blocked.answer["reason"] and task_id in blocked.answer["reason"]
    assert memory.task(task_id).outcome is None  # reported after the reminder, not before
    assert env.hook(stop("s-pass", active=True), namespace=ns).answer is None
    assert memory.task(task_id).outcome == "success"
    assert q_of(memory, shown) == {i: 0.3 for i in shown}
    assert all(q == 0.0 for i, q in q_of(memory, ids).items() if i not in shown)


def test_a_failing_session_lowers_it(env, memory, ns):
    ids = seed(memory, ns)
    shown = shown_ids(env.hook(prompt("s-fail", TASK), namespace=ns).context)
    out = "E   ModuleNotFoundError: No module named 'shopcart'\n=== 3 failed in 0.21s ==="
    env.hook(bash_failed("s-fail", "pytest -q", 1, out), namespace=ns)
    env.hook(stop("s-fail", active=True), namespace=ns)  # another hook's block: no reminder
    assert q_of(memory, shown) == {i: -0.3 for i in shown}
    assert set(shown) <= set(ids)


def test_the_last_verdict_of_the_turn_counts(env, memory, ns):
    seed(memory, ns)
    first = env.hook(prompt("s-fix", TASK), namespace=ns)
    env.hook(bash_failed("s-fix", "pytest", 1, "=== 1 failed, 4 passed in 0.2s ==="), namespace=ns)
    env.hook(bash_ok("s-fix", "pytest", "5 passed in 0.2s"), namespace=ns)
    env.hook(bash_failed("s-fix", "ruff check .", 1, "Found 1 error."), namespace=ns)
    env.hook(stop("s-fix", active=True), namespace=ns)
    task = memory.task(task_id_of(first.context))
    assert (task.outcome, task.reward) == ("success", 1.0)  # tests outrank the linter


def test_a_session_with_no_verifier_reports_nothing(env, memory, ns):
    ids = seed(memory, ns)
    first = env.hook(prompt("s-none", TASK), namespace=ns)
    env.hook(bash_ok("s-none", "git status"), namespace=ns)
    done = env.hook(stop("s-none"), namespace=ns)
    assert done.answer is None
    assert "no verifier ran; nothing reported, the task stays open" in done.stderr
    assert memory.task(task_id_of(first.context)).outcome is None
    assert all(q == 0.0 for q in q_of(memory, ids).values())
    ended = env.hook(session_end("s-none"), namespace=ns)
    assert "closed without a verdict" in ended.stderr
    assert memory.task(task_id_of(first.context)).outcome is None


def test_a_background_test_run_gives_no_verdict(env, memory, ns):
    """PostToolUse of `run_in_background` fires at launch, before any outcome."""
    seed(memory, ns)
    first = env.hook(prompt("s-bg", TASK), namespace=ns)
    started = bash_ok("s-bg", "pytest -q", "")
    started["tool_input"]["run_in_background"] = True
    env.hook(started, namespace=ns)
    assert env.hook(stop("s-bg"), namespace=ns).answer is None
    assert memory.task(task_id_of(first.context)).outcome is None


def test_a_stop_never_loops(env, memory, ns):
    seed(memory, ns)
    env.hook(prompt("s-loop", TASK), namespace=ns)
    env.hook(bash_ok("s-loop", "pytest", "3 passed in 0.1s"), namespace=ns)
    assert env.hook(stop("s-loop"), namespace=ns).answer["decision"] == "block"
    for active in (False, True, False):  # the reminder is given once per task, whatever comes
        assert env.hook(stop("s-loop", active=active), namespace=ns).answer is None
    # stop_hook_active on the first stop: never block
    env.hook(prompt("s-loop", TASK + " again"), namespace=ns)
    env.hook(bash_ok("s-loop", "pytest", "3 passed in 0.1s"), namespace=ns)
    assert env.hook(stop("s-loop", active=True), namespace=ns).answer is None
    assert env.hook(stop("s-loop", active=True), namespace=ns).answer is None


def test_the_reminder_can_be_turned_off(env, memory, ns):
    seed(memory, ns)
    first = env.hook(prompt("s-quiet", TASK), "--no-stop-reminder", namespace=ns)
    env.hook(bash_ok("s-quiet", "pytest", "3 passed in 0.1s"), namespace=ns)
    assert env.hook(stop("s-quiet"), "--no-stop-reminder", namespace=ns).answer is None
    assert memory.task(task_id_of(first.context)).outcome == "success"


@pytest.mark.parametrize(
    "raw",
    [
        "not json at all",
        "[1, 2, 3]",
        "",
        '{"hook_event_name": "UserPromptSubmit", "prompt": "no session id"}',
        '{"session_id": "s-bad", "prompt": "no event name"}',
        '{"session_id": "s-bad", "hook_event_name": "Notification", "message": "hi"}',
        '{"session_id": "s-bad", "hook_event_name": "UserPromptSubmit", "prompt": 42}',
    ],
)
def test_malformed_or_unknown_payloads_exit_0_with_a_log_line_and_change_nothing(env, storage, raw):
    state_file = Locations(env.db.resolve(), env.home).state
    before = table_snapshot(storage), state_snapshot(state_file)
    done = env.hook(raw)
    assert done.returncode == 0 and done.stdout == ""
    assert done.stderr.startswith("memrl hook: ignored: ")
    assert len(done.stderr.strip().splitlines()) == 1
    assert (table_snapshot(storage), state_snapshot(state_file)) == before


def state_snapshot(path: Path) -> list[tuple[object, ...]]:
    if not path.exists():
        return []
    import sqlite3

    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM tasks ORDER BY task_id").fetchall()


def test_the_models_own_recall_shares_the_outcome_without_double_credit(env, memory, ns):
    ids = seed(memory, ns)
    hook_shown = shown_ids(env.hook(prompt("s-model", TASK), namespace=ns).context)
    # the model calls recall_experience itself (the plugin's MCP server), same memories
    model = memory.recall("fix the ModuleNotFoundError in the CI test run", ns)
    model_ids = [m.id for m in model.injected]
    structured = {"task_id": model.task_id, "namespace": ns, "memories": []}
    env.hook(mcp_recall("s-model", "mcp__plugin_memrl_memrl__recall_experience", structured))
    env.hook(bash_ok("s-model", "pytest", "7 passed in 0.3s"), namespace=ns)
    env.hook(stop("s-model", active=True), namespace=ns)
    assert memory.task(model.task_id).outcome == "success"
    credited = set(hook_shown) | set(model_ids)
    assert q_of(memory, ids) == {i: (0.3 if i in credited else 0.0) for i in ids}


def test_a_model_report_of_the_hook_task_wins(env, memory, ns):
    seed(memory, ns)
    context = env.hook(prompt("s-own", TASK), namespace=ns).context
    task_id, shown = task_id_of(context), shown_ids(context)
    memory.report(task_id, success=False, used_ids=shown[:1])  # the model's report_outcome
    env.hook(bash_ok("s-own", "pytest", "7 passed in 0.3s"), namespace=ns)
    done = env.hook(stop("s-own", active=True), namespace=ns)
    assert f"task {task_id}: already_reported" in done.stderr
    assert memory.task(task_id).outcome == "failure"
    assert q_of(memory, shown) == {i: (-0.3 if i == shown[0] else 0.0) for i in shown}


def test_a_short_prompt_continues_the_open_task(env, memory, ns):
    seed(memory, ns)
    first = env.hook(prompt("s-short", TASK), namespace=ns)
    assert env.hook(prompt("s-short", "yes, go on"), namespace=ns).answer is None
    env.hook(bash_ok("s-short", "pytest", "2 passed in 0.1s"), namespace=ns)
    env.hook(stop("s-short", active=True), namespace=ns)
    assert memory.task(task_id_of(first.context)).outcome == "success"
    again = env.hook(prompt("s-short", "thanks!"), namespace=ns)  # after a reported task
    assert task_id_of(again.context) != task_id_of(first.context)


def test_session_end_reports_a_pending_verdict(env, memory, ns):
    """Stop does not run when the user interrupts; SessionEnd closes the loop then."""
    seed(memory, ns)
    first = env.hook(prompt("s-end", TASK), namespace=ns)
    env.hook(bash_failed("s-end", "npm test", 1, "Tests:       2 failed, 8 total"), namespace=ns)
    env.hook(session_end("s-end", "other"), namespace=ns)
    assert memory.task(task_id_of(first.context)).outcome == "failure"


def test_a_new_prompt_reports_the_interrupted_turn_first(env, memory, ns):
    seed(memory, ns)
    first = env.hook(prompt("s-next", TASK), namespace=ns)
    env.hook(bash_ok("s-next", "go test ./...", "ok  \tshop/cart\t0.02s"), namespace=ns)
    env.hook(prompt("s-next", "now add a regression test for the import"), namespace=ns)
    assert memory.task(task_id_of(first.context)).outcome == "success"


def test_the_namespace_comes_from_the_payload_cwd_like_memrl_serve(env, memory, tmp_path):
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    git = ["git", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "remote", "add", "origin", "git@github.com:Acme/Shop.git"], check=True)
    expected = namespace_for(repo)
    assert expected == "github.com/acme/shop"
    seed(memory, expected)
    payload = {**prompt("s-cwd", TASK), "cwd": str(repo / "sub")}
    context = env.hook(payload).context
    assert memory.task(task_id_of(context)).namespace == expected


def test_disabled_events_do_nothing(env, memory, ns):
    seed(memory, ns)
    done = env.hook(prompt("s-off", TASK), "--disable", "UserPromptSubmit", namespace=ns)
    assert done.answer is None and done.stderr == ""


def test_the_hook_is_a_subcommand_of_the_cli():
    done = subprocess.run(
        [sys.executable, "-m", "memrl_server", "hook", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--budget" in done.stdout and "--no-stop-reminder" in done.stdout
