"""`memrl replay` on a real SQLite file written with the real model."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from mcp_helpers import server_env

from memrl import Embedder, Memory, MemoryConfig, open_storage

TASKS = (
    "release a new version to PyPI",
    "fix the flaky integration test",
    "run the linters before a commit",
    "bump the dependency versions",
    "write the changelog entry",
)


def memrl(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memrl_server", "replay", "--db", str(db), *args],
        env=server_env(), capture_output=True, text=True, timeout=120,
    )


@pytest.fixture(scope="module")
def ledger_db(tmp_path_factory: pytest.TempPathFactory, real_model: Embedder) -> Path:
    """A namespace whose tasks were recalled with epsilon 0.3 and reported."""
    db = tmp_path_factory.mktemp("replay") / "m.db"
    store = open_storage(db, real_model.dim, real_model.model_id)
    # the paper's rule with epsilon: replay recomputes phase B from Q alone (no q_sd logged)
    paper = MemoryConfig(epsilon=0.3, delta=0.1, explore="none", change_threshold=None)
    memory = Memory(store, real_model, paper, rng=random.Random(0))
    try:
        luck = random.Random(1)
        for i, task in enumerate(TASKS):
            for j in range(3):
                memory.store_experience(task, f"way {j} of task {i}", "success", "proj")
        for n in range(30):
            recalled = memory.recall(TASKS[n % len(TASKS)], "proj")
            assert recalled.task_id is not None
            memory.report(recalled.task_id, success=luck.random() < 0.7)
        memory.recall(TASKS[0], "proj")  # one task never reported
    finally:
        store.close()
    return db


def test_table(ledger_db: Path):
    done = memrl(ledger_db, "--namespace", "proj", "--lam", "0,0.5,1", "--bootstrap", "200")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "namespace 'proj', 30 reported tasks" in out
    assert "epsilon 0.3" in out
    for label in ("lam 0 ", "lam 0.5 ", "lam 1 "):
        assert label in out
    assert "success DR [95% CI]" in out and "notes:" in out


def test_json(ledger_db: Path):
    done = memrl(ledger_db, "--namespace", "proj", "--lam", "0.5", "--epsilon", "0.3",
                 "--delta", "0.1,0.5", "--json", "--bootstrap", "200")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["tasks"] == 30 and len(report["results"]) == 2
    own, gated = report["results"]
    assert own["setting"]["label"] == "lam 0.5, delta 0.1, epsilon 0.3"
    assert own["ess"] == pytest.approx(30)  # the logging policy itself: every weight is 1
    assert own["success"]["ips"]["value"] == pytest.approx(report["logged"]["success_rate"],
                                                           abs=1e-4)
    assert gated["evaluated"] == 30 and gated["support"] <= 30
    assert report["logged"]["reproduced"] == report["logged"]["unexplored"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--namespace", "nope", "--lam", "0"), "namespace 'nope' has no memories or tasks"),
        (("--namespace", "proj", "--lam", "2"), "--lam 2.0 is out of range"),
        (("--namespace", "proj", "--lam", "a,b"), "--lam takes comma-separated floats"),
        (("--namespace", "proj", "--k2", "0"), "--k2 0 is out of range"),
        (("--namespace", "proj", "--delta", "1.5"), "--delta 1.5 is out of range"),
        (("--namespace", "proj", "--bootstrap", "0"), "--bootstrap 0 is out of range"),
    ],
)
def test_errors(ledger_db: Path, args: tuple[str, ...], message: str):
    done = memrl(ledger_db, *args)
    assert done.returncode == 2, done.stdout
    assert message in done.stderr and "Traceback" not in done.stderr


def test_no_reported_tasks_and_no_database(tmp_path: Path, real_model: Embedder):
    db = tmp_path / "m.db"
    store = open_storage(db, real_model.dim, real_model.model_id)
    memory = Memory(store, real_model, MemoryConfig())
    memory.store_experience("a task", "a way", "success", "proj")
    memory.recall("a task", "proj")
    store.close()
    done = memrl(db, "--namespace", "proj", "--lam", "0")
    assert done.returncode == 2 and "has no reported tasks" in done.stderr
    missing = memrl(tmp_path / "none.db", "--namespace", "proj", "--lam", "0")
    assert missing.returncode == 2 and "no database at" in missing.stderr
