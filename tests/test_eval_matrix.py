"""The seeds x banks matrix: per-run JSON, the aggregate (mean, min-max, sample std), its
Markdown table, re-aggregating saved runs, and running the servers with another Python."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from memrl_clients.eval import aggregate, cli, report

pytestmark = pytest.mark.timeout(300)


def test_stats_by_hand() -> None:
    s = aggregate.stats([0.5, 0.7, None, 0.9])
    assert s["n"] == 3 and s["mean"] == pytest.approx(0.7)
    assert (s["min"], s["max"]) == (0.5, 0.9)
    assert s["std"] == pytest.approx(0.2)  # sample std of 0.5, 0.7, 0.9
    assert s["values"] == [0.5, 0.7, None, 0.9]
    assert aggregate.stats([0.4])["std"] is None
    assert aggregate.stats([None, None])["mean"] is None


def doc(seed: int, bank: float, last: float, reach: float | None) -> dict:
    summary = {"last": last, "csr": 1.0, "forgetting": None, "transfer_sr": 0.5}
    late = {"last": last, "csr": 1.0, "reachability": {"injected": reach, "reused": reach},
            "pool_full": {"injected": 0.0}, "pool_open": {"injected": reach}}
    return {"meta": {"seed": seed, "bank": bank, "client_commit": "c", "server_commit": "s"},
            "results": {"humaneval": {"rag": summary, "memrl": summary}},
            "late_discovery": {"memrl": late}}


def test_aggregate_groups_by_env_policy_bank_over_seeds() -> None:
    docs = [doc(1, 0.0, 0.6, 0.5), doc(0, 0.0, 0.8, 1.0), doc(0, 0.5, 0.9, None)]
    agg = aggregate.aggregate(docs)
    off = agg["results"]["humaneval"]["memrl"]["0"]
    assert off["seeds"] == [0, 1] and off["last"]["values"] == [0.8, 0.6]
    assert off["last"]["mean"] == pytest.approx(0.7) and off["forgetting"]["mean"] is None
    assert agg["results"]["humaneval"]["memrl"]["0.5"]["last"]["n"] == 1
    late = agg["late_discovery"]["memrl"]
    assert late["0"]["reach_injected"]["mean"] == pytest.approx(0.75)
    assert late["0.5"]["reach_injected"]["n"] == 0
    assert agg["meta"]["seeds"] == [0, 1] and agg["meta"]["banks"] == [0.0, 0.5]
    table = report.aggregate_table(agg)
    lines = table.splitlines()
    rows = [ln for ln in lines if ln.startswith("| humaneval")]
    # bank off first, then policies in the policy list's order
    assert rows[0].startswith("| humaneval | RAG") and "| 0 |" in rows[0]
    assert rows[1].startswith("| humaneval | MemRL") and "0.700 ± 0.141 (0.60-0.80)" in rows[1]
    assert "| 0.5 | 1 | 0.900 (0.90-0.90)" in rows[2]
    assert any(ln.startswith("| MemRL (lambda 0.5) | 0 | 2 | ") for ln in lines)


def test_load_rejects_what_is_not_a_run(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SystemExit, match="cannot read"):
        aggregate.load([bad])
    agg = tmp_path / "agg.json"
    agg.write_text(json.dumps({"meta": {"runs": 2}, "results": {}}))
    with pytest.raises(SystemExit, match="not the JSON of a single run"):
        aggregate.load([agg])


def wrapper(tmp_path: Path) -> tuple[Path, Path]:
    """An executable that records each call, then runs this Python: a stand-in for
    another checkout's interpreter."""
    marker = tmp_path / "calls.txt"
    script = tmp_path / "other-python"
    script.write_text(f'#!/bin/sh\necho "$@" >> {marker}\nexec {sys.executable} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script, marker


def test_matrix_writes_runs_and_aggregate_with_another_server_python(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    python, marker = wrapper(tmp_path)
    # run from a folder holding another `memrl`: the servers must not import it from there
    decoy = tmp_path / "checkout" / "memrl"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text('raise ImportError("the decoy memrl was imported")\n')
    monkeypatch.chdir(decoy.parent)
    out = tmp_path / "out"
    code = cli.main(["--env", "humaneval", "--tasks", "4", "--epochs", "2", "--seeds", "0,1",
                     "--banks", "0", "--policies", "no_memory,memrl", "--out", str(out),
                     "--server-python", str(python), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    runs = sorted(out.glob("seed*-bank*/eval.json"))
    assert [p.parent.name for p in runs] == ["seed0-bank0", "seed1-bank0"]
    for path in runs:
        meta = json.loads(path.read_text())["meta"]
        assert meta["server_python"] == str(python) and meta["bank"] == 0.0
        assert meta["server_commit"] is not None
        assert (path.parent / "tables.md").read_text().startswith("| env | policy |")
    agg = json.loads((out / "aggregate.json").read_text())
    cell = agg["results"]["humaneval"]["memrl"]["0"]
    assert cell["seeds"] == [0, 1] and cell["last"]["n"] == 2
    assert "| humaneval | MemRL (lambda 0.5) | 0 | 2 |" in printed
    calls = marker.read_text().splitlines()
    assert sum("serve" in c for c in calls) == 2  # one memrl serve per run (memrl only)
    assert any("import memrl" in c for c in calls)  # the server's commit was asked for
    # the saved runs aggregate to the same table
    cli.main(["--aggregate", *map(str, runs), "--json", str(tmp_path / "again.json")])
    assert capsys.readouterr().out.strip() == printed.split("\n\naggregate of")[0].strip()
    assert json.loads((tmp_path / "again.json").read_text())["results"] == agg["results"]


def test_server_python_must_be_executable(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(SystemExit):
        cli.parse_args(["--server-python", str(missing)])
    assert not os.path.exists(missing)


def test_quick_run_says_it_is_a_smoke_test(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    cli.main(["--quick", "--env", "humaneval", "--tasks", "3", "--epochs", "1", "--policies",
              "no_memory", "--out", str(tmp_path), "--json", str(tmp_path / "r.json"),
              "--no-progress"])
    assert "is a smoke test" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["meta"]["smoke_test"] is True
