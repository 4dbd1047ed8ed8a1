"""`memrl stats` shows the gate in force, its source, the calibrated and learned values and
the evidence of gate learning (memrl/gate_learning.py)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from fake_embedder import FakeEmbedder
from mcp_helpers import server_env

from memrl import Memory, MemoryConfig, SqliteStorage
from memrl.embeddings import DIM


def cli(*args: object):
    done = subprocess.run(
        [sys.executable, "-m", "memrl_server", *map(str, args)],
        env=server_env(None),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def unit(**coords: float) -> list[float]:
    vec = [0.0] * DIM
    for name, value in coords.items():
        vec[int(name[1:])] = value
    return vec


def build(db: Path) -> None:
    """A ledger of 20 outcomes in namespace ns, learned with gate learning on: 10 tasks
    without memory (6 succeed), 5 injecting a memory at cosine 0.41 (all fail), 5 at 0.9
    (all succeed): the learned gate is 0.425 (see test_conformance_learned_gate)."""
    embedder = FakeEmbedder(
        dim=DIM,
        model_id="fake-cli",
        vectors={
            "qA": unit(e4=1.0),
            "qB": unit(e0=1.0),
            "intent B": unit(e0=0.41, e1=math.sqrt(1 - 0.41**2)),
            "qC": unit(e2=1.0),
            "intent C": unit(e2=0.9, e3=math.sqrt(1 - 0.81)),
        },
    )
    memory = Memory(SqliteStorage(db, DIM, embedder.model_id), embedder, MemoryConfig(gate_learning=True))
    try:
        memory.store_experience("intent B", "a misleading recipe", namespace="ns")
        memory.store_experience("intent C", "the right recipe", namespace="ns")
        for query, successes, n in (("qA", 6, 10), ("qB", 0, 5), ("qC", 5, 5)):
            for i in range(n):
                task = memory.recall(query, "ns")
                memory.report(task.task_id or "", success=i < successes)
    finally:
        memory.close()


def test_stats_shows_the_learned_gate_and_its_evidence(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    build(db)
    [on] = cli("stats", "--db", db, "--namespace", "ns", "--learn-gate")
    assert on["delta"] == pytest.approx(0.425) and on["delta_kind"] == "learned"
    assert on["delta_learned"] == pytest.approx(0.425) and on["delta_calibrated"] is None
    assert on["gate_learning"] is True
    evidence = on["gate_evidence"]
    assert evidence["tasks"] == 20 and evidence["tasks_empty_pool"] == 10
    assert evidence["empty_pool_success_rate"] == pytest.approx(0.6)
    assert evidence["tasks_injected_above"] == 5 and evidence["injected_above_success_rate"] == 1.0
    assert evidence["tasks_injected_below"] == 5 and evidence["injected_below_success_rate"] == 0.0
    assert evidence["injected_memories"] == 10 and evidence["false_positive_injections"] == 5
    assert on["false_positive_rate"] == pytest.approx(0.5)
    assert [b["from"] for b in evidence["bins"]] == [0.4, 0.5]

    [off] = cli("stats", "--db", db, "--namespace", "ns")  # a server without --learn-gate
    assert off["delta"] == 0.35 and off["delta_kind"] == "default"
    assert off["delta_learned"] == pytest.approx(0.425) and off["gate_learning"] is False
    assert off["delta_source"] == "default until the namespace has 20 distinct intents"


def test_the_eval_reads_the_gate_of_each_policy_database(tmp_path: Path) -> None:
    from memrl_clients.eval import gate

    run = tmp_path / "seed3-bank0.5"
    run.mkdir()
    build(run / "humaneval-memrl_gate.db")
    [row] = gate.collect(tmp_path)
    assert (row["env"], row["policy"], row["seed"], row["bank"]) == ("humaneval", "memrl_gate", 3, 0.5)
    assert row["false_positive_rate"] == pytest.approx(0.5) and row["injected_memories"] == 10
    assert row["delta_learned"] == pytest.approx(0.425) and row["delta_calibrated"] is None
    assert row["delta_last_recall"] == pytest.approx(0.35)  # learned at the 20th outcome
    assert "| humaneval | 0.5 | memrl_gate | 1 | 0.500 | 10 | - | 0.425 | 0.350 |" in gate.table([row])


def test_the_commands_that_take_learn_gate() -> None:
    from memrl_server.cli import build_parser

    commands = build_parser().commands  # type: ignore[attr-defined]
    takes = {
        name for name, parser in commands.items()
        if any("--learn-gate" in a.option_strings for a in parser._actions)
    }
    assert takes == {"serve", "recall", "report", "stats"}
