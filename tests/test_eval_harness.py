"""The protocol (recall -> attempt -> check -> report -> store; frozen transfer), first
against a recording backend, then end to end through real `memrl serve` processes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from memrl_clients.eval import cli
from memrl_clients.eval.common import MemoryDraft, Outcome, Recalled, Task
from memrl_clients.eval.harness import ALL_POLICIES, POLICIES, run_policy
from memrl_clients.eval.runner import run_suite
from memrl_clients.eval.suites import Size, humaneval_suite

pytestmark = pytest.mark.timeout(120)


class RecordingMemory:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.used: list[list[int] | None] = []
        self.feedback: list[dict[int, str] | None] = []
        self.n = 0

    async def recall(self, task: str) -> tuple[str | None, list[Recalled]]:
        self.n += 1
        self.calls.append(("recall", task))
        return f"t{self.n}", [Recalled(1, "success", "i", "e", q=0.25)]

    async def report(self, task_id: str, success: bool, used_ids: list[int] | None = None,
                     feedback: dict[int, str] | None = None) -> dict[int, float]:
        self.calls.append(("report", task_id))
        self.used.append(used_ids)
        self.feedback.append(feedback)
        return {1: 0.5 if success else -0.5}

    async def store(self, draft: MemoryDraft, task_id: str | None = None) -> int:
        self.calls.append(("store", draft.intent if task_id is None else task_id))
        return 100 + self.n


class EchoAgent:
    name = "echo"

    def attempt(self, task: Task, memories: list[Recalled], key: tuple[object, ...]) -> Outcome:
        return Outcome(task.task_id == "a", task.task_id, task.task_id, reused=memories[0].id,
                       used=(memories[0].id,) if task.task_id == "a" else ())

    def write_memory(self, task: Task, outcome: Outcome) -> MemoryDraft:
        return MemoryDraft(task.query, "text", "success" if outcome.success else "failure")


def test_protocol_order_and_frozen_transfer() -> None:
    memory = RecordingMemory()
    train = [Task("x", "a", "qa"), Task("x", "b", "qb")]
    held = [Task("x", "c", "qc")]
    bank = [MemoryDraft("bank intent", "bank text", "success")]
    run = asyncio.run(run_policy(POLICIES[2], EchoAgent(), memory, train, held, 2, 0, bank))
    kinds = [k for k, _ in memory.calls]
    assert memory.calls[0] == ("store", "bank intent")
    assert kinds[1:13] == ["recall", "report", "store"] * 4  # 2 tasks x 2 epochs
    assert kinds[13:] == ["recall"]  # transfer: no report, no store
    for i in range(1, 13, 3):  # the report and the store name the recalled task id
        assert memory.calls[i + 1][1] == memory.calls[i + 2][1] == f"t{i // 3 + 1}"
    s = run.summary()
    assert s["sr_per_epoch"] == [0.5, 0.5] and s["transfer_sr"] == 0.0
    last_train = [a for a in run.attempts if a.phase == "train"][-1]
    assert run.final_q == {1: 0.5 if last_train.success else -0.5}  # Q after the last report
    assert s["reuse_rate"] == 1.0
    assert memory.used == [None] * 4  # MemRL credits every injected memory


def test_used_ids_credit_names_what_the_agent_acted_on() -> None:
    memory = RecordingMemory()
    train = [Task("x", "a", "qa"), Task("x", "b", "qb")]
    policy = next(p for p in ALL_POLICIES if p.name == "memrl_used")
    asyncio.run(run_policy(policy, EchoAgent(), memory, train, [], 1, 0))
    assert sorted(memory.used, key=len) == [[], [1]]  # b: acted on nothing; a: memory 1


def test_feedback_policy_reports_a_failed_reuse_as_outdated() -> None:
    train = [Task("x", "a", "qa"), Task("x", "b", "qb")]  # b fails after reusing memory 1
    for name, expected in (("memrl_fb", [None, {1: "outdated"}]), ("memrl", [None, None])):
        memory = RecordingMemory()
        policy = next(p for p in ALL_POLICIES if p.name == name)
        asyncio.run(run_policy(policy, EchoAgent(), memory, train, [], 1, 0))
        assert sorted(memory.feedback, key=bool) == expected


def test_end_to_end_through_real_servers(tmp_path: Path) -> None:
    suite = humaneval_suite(seed=2, size=Size(humaneval_tasks=4, games_per_type=1, epochs=2),
                            bank_coverage=1.0)
    assert len(suite.train) == 3 and len(suite.held_out) == 1 and suite.bank
    policies = [p for p in POLICIES if p.name in ("no_memory", "rag", "memrl", "lam0")]
    runs = asyncio.run(run_suite(suite, policies, 2, tmp_path, progress=False))
    for run in runs.values():
        assert len([a for a in run.attempts if a.phase == "train"]) == 6
        assert len([a for a in run.attempts if a.phase == "transfer"]) == 1
    assert all(not a.injected for a in runs["no_memory"].attempts)
    assert runs["no_memory"].stored == set()
    # every memory policy stored the bank, then one memory per attempt (duplicates merge)
    for name in ("rag", "memrl", "lam0"):
        assert len(runs[name].stored) >= len(suite.bank) + 1
        assert any(a.injected for a in runs[name].attempts)
    assert set(runs["rag"].final_q.values()) == {0.0}  # --no-learning: Q never moves
    assert any(q != 0.0 for q in runs["memrl"].final_q.values())
    # (lambda 0 no longer injects exactly what RAG injects: memories filed under one intent
    # tie on similarity, and ties go to the higher Q, which only lam0 learns)
    assert (tmp_path / "humaneval-memrl.db").exists()


def test_cli_writes_table_json_and_curve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = cli.main(["--env", "humaneval", "--tasks", "3", "--epochs", "2", "--bank", "0",
                     "--policies", "no_memory,memrl", "--out", str(out),
                     "--json", str(tmp_path / "r.json"), "--no-progress"])
    assert code == 0
    table = capsys.readouterr().out
    assert "| humaneval | MemRL (lambda 0.5) |" in table
    data = json.loads((tmp_path / "r.json").read_text())
    summary = data["results"]["humaneval"]["memrl"]
    assert set(summary) >= {"sr_per_epoch", "last", "csr", "forgetting", "transfer_sr", "q_success_r"}
    assert len(summary["sr_per_epoch"]) == 2
    assert set(data["results"]["humaneval"]) == {"no_memory", "memrl"}
    assert (out / "humaneval-learning-curve.png").read_bytes()[:4] == b"\x89PNG"


def test_a_relative_database_path_names_the_file_the_caller_meant(tmp_path: Path, monkeypatch) -> None:
    """The server starts in the database's folder: a relative path must not be resolved
    again from there (it once named out/seed0/out/seed0/x.db, and the copied background of
    the late scenario was not the file the server opened)."""
    import asyncio

    from memrl_clients.eval.common import MemoryDraft
    from memrl_clients.eval.memory_client import McpMemory

    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()

    async def store_one() -> None:
        async with McpMemory(Path("out") / "x.db", []) as memory:
            await memory.store(MemoryDraft("run the tests", "pytest -q", "success"))

    asyncio.run(store_one())
    assert (tmp_path / "out" / "x.db").stat().st_size > 0
    assert not (tmp_path / "out" / "out").exists()
