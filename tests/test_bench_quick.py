"""A tiny run of memrl-bench: every figure is produced and written as JSON (speeds are not judged)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from memrl_clients.bench import cli


def test_tiny_bench_writes_every_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_json = tmp_path / "bench.json"
    code = cli.main([
        "--quick", "--n-real", "200", "--queries", "8", "--report-tasks", "20",
        "--cold-runs", "1", "--budget", "2", "--workdir", str(tmp_path / "work"),
        "--json", str(out_json), "--quiet",
    ])
    assert code == 0
    printed = capsys.readouterr().out
    assert "sqlite-vec" in printed and "targets:" in printed
    figures = json.loads(out_json.read_text())
    assert set(figures) >= {"meta", "tiers", "store_throughput", "cold_start", "targets"}
    tier = figures["tiers"]["10k"]
    assert tier["memories"] == 200
    for section in ("index", "sqlite_vec", "numpy", "recall_inprocess", "recall_mcp",
                    "outcome_updates", "ratios"):
        assert section in tier, section
    for key in ("p50_ms", "p95_ms"):
        assert tier["index"]["k5"][key] > 0
        assert tier["sqlite_vec"]["k5"][key] > 0
        assert tier["numpy"]["k5"][key] > 0
        assert tier["recall_inprocess"][key] > 0
        assert tier["recall_mcp"]["recall"][key] > 0
        assert tier["recall_inprocess"]["without_embedding"][key] > 0
    # the cold-cache figures: the file evicted, then timed before it is read again
    assert tier["recall_cold"]["p50_ms"] > 0 and tier["recall_cold"]["first_recall_ms"] > 0
    assert tier["index"]["k5_cold"]["p50_ms"] > 0 and tier["index"]["prime_s"] >= 0
    assert "cold page cache" in printed
    for key in ("recall_at_5", "recall_at_10"):
        assert 0.0 <= tier["index"][key] <= 1.0
        assert tier["sqlite_vec"][key] >= 0.99  # exact search agrees with numpy
    assert tier["outcome_updates"]["reports"] == 20
    assert figures["store_throughput"]["items_per_s"] > 0
    assert figures["cold_start"]["spawn_to_tools_list_s"] > 0
    assert figures["cold_start"]["spawn_to_first_recall_s"] >= figures["cold_start"]["spawn_to_tools_list_s"]
    assert tier["recall_mcp"]["server_memory"]["rss_mb"] > 0
    assert {"recall_p50_10k", "recall_at_5_10k", "outcome_updates_per_s"} <= set(figures["targets"])
