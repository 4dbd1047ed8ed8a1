"""A tiny run of memrl-bench: every figure is produced and written as JSON (speeds are not judged)."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from memrl_clients.bench import cli


def test_tiny_bench_writes_every_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_json = tmp_path / "bench.json"
    code = cli.main([
        "--quick", "--n-real", "200", "--queries", "8", "--report-tasks", "20",
        "--cold-runs", "1", "--budget", "2", "--workdir", str(tmp_path / "work"),
        "--json", str(out_json), "--quiet", "--clients", "1,2", "--concurrency-seconds", "0.5",
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
        assert tier["recall_inprocess"]["without_embedding_back_to_back"][key] > 0
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
    # the concurrency tier: both servers, every N, rows printed
    conc = figures["concurrency"]
    assert "concurrent recalls over streamable HTTP" in printed
    for mode in ("batching", "no batching"):
        for n in ("1", "2"):
            row = conc["rows"][mode][n]
            assert row["recalls"] > 0 and row["errors"] == 0 and row["p50_ms"] > 0, (mode, n)
    assert conc["ratios"]["2"]["batching_over_no_batching"] > 0


def test_the_concurrency_tier_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_json = tmp_path / "c.json"
    code = cli.main([
        "--concurrency", "--n-real", "60", "--clients", "1,3", "--concurrency-seconds", "0.3",
        "--workdir", str(tmp_path / "work"), "--json", str(out_json), "--quiet",
    ])
    assert code == 0
    printed = capsys.readouterr().out
    assert "concurrent recalls over streamable HTTP" in printed
    lines = [line for line in printed.splitlines() if line.strip().startswith(("1 |", "3 |"))]
    assert len(lines) == 2
    figures = json.loads(out_json.read_text())
    assert set(figures["concurrency"]["rows"]["batching"]) == {"1", "3"}
    for rows in figures["concurrency"]["rows"].values():  # the CPU a recall cost on each side
        for row in rows.values():
            assert row["server_cpu_ms_per_recall"] > 0 and row["client_cpu_ms_per_recall"] > 0
            assert row["cpu_bound_recalls_per_s"] > 0
    assert "CPU per recall, batching" in printed
    assert not list((tmp_path / "work").glob("concurrency-*.db"))  # removed after the run


def test_the_model_bound_is_stated_only_when_the_batches_took_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`model_bound` divides by the batches' CPU per text: when the clock shows none (a
    coarse clock, or an embedder that computes nothing) there is no bound (None, which
    the report leaves out), not a division by zero."""
    from memrl_clients.bench import concurrency

    from tests.fake_embedder import FakeEmbedder

    texts = [f"task {i}" for i in range(concurrency.BOUND_TEXTS)]
    bound = concurrency.model_bound(FakeEmbedder(), texts)
    assert bound is not None and bound["ratio_bound"] >= bound["cpus"]
    monkeypatch.setattr(concurrency.time, "process_time", lambda: 1.0)
    assert concurrency.model_bound(FakeEmbedder(), texts) is None


def test_embedding_contention_rows() -> None:
    from memrl_clients.bench import contention

    settings = (("threads 1, no spinning", 1, False), ("default threads, spinning", None, True))
    out = contention.run(queries=3, rounds=1, settings=settings)
    assert [r["setting"] for r in out["rows"]] == [s[0] for s in settings]
    for row in out["rows"]:
        for condition in contention.CONDITIONS:
            assert row[condition]["n"] == 3 and row[condition]["p95_ms"] > 0
    text = contention.render(out)
    assert "busy core" in text and "threads 1, no spinning" in text
    assert out["lowest_p95_busy_core"] in {s[0] for s in settings}


def test_a_reused_bulk_database_starts_with_no_learning(tmp_path: Path) -> None:
    """The SQLite tiers' reset (as the PostgreSQL tier's): no ledger, no feedback, every
    credited memory back to Q 0 with no evidence."""
    from fake_embedder import FakeEmbedder
    from memrl_clients.bench import build

    from memrl import Experience, Memory, MemoryConfig, SqliteStorage

    path = tmp_path / "bulk.db"
    embedder = FakeEmbedder()
    store = SqliteStorage(path, embedder.dim, embedder.model_id)
    memory = Memory(store, embedder, MemoryConfig(delta=-1.0))
    memory.store_many(Experience(f"task {i}", f"way {i}") for i in range(6))
    for i in range(4):
        task = memory.recall(f"task {i}")
        memory.report(task.task_id, success=bool(i % 2),
                      feedback={task.injected[0].id: "useful"} if i == 0 else None)
    assert any(m.n_updates for m in memory.iter_memories())
    store.close()
    build._reset_ledger(path)
    store = SqliteStorage(path, embedder.dim, embedder.model_id)
    try:
        rows = list(Memory(store, embedder).iter_memories())
    finally:
        store.close()
    assert len(rows) == 6
    assert all((m.q, m.n_updates, m.successes, m.failures, m.q_recent, m.last_reward)
               == (0, 0, 0, 0, 0, None) for m in rows)
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM memory_feedback").fetchone()[0] == 0


def test_the_crossover_script_measures_every_path(tmp_path: Path) -> None:
    """`python -m memrl_clients.bench.crossover` on a small namespace: the code index, the
    exact scan and numpy are all timed, the scan's cache is counted, nothing is judged."""
    from memrl_clients.bench import crossover

    row = crossover.measure(2500, 32, 12, 5, tmp_path)
    assert row["n"] == 2500 and row["recall_code_vs_scan"] > 0.9
    assert row["scan_bytes_per_row"] >= 32 * 4 and "scan_head_dims" in row
    assert all(row[key] > 0 for key in ("code_p50_ms", "scan_p50_ms", "numpy_p50_ms"))
