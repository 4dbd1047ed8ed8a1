"""The hook latency bench runs end to end (tiny sizes; it prints figures, asserts none)."""

from __future__ import annotations

from hook_helpers import processes_mentioning
from memrl_clients.bench.hooks import render_hooks, run_hooks_bench


def test_hook_bench_runs_and_leaves_no_daemon(tmp_path):
    out = run_hooks_bench(
        n_memories=30, first_runs=1, warm_runs=2, local_runs=1, quiet=True, workdir=tmp_path
    )
    assert set(out["warm"]) == {
        "UserPromptSubmit",
        "PostToolUse (plain command)",
        "PostToolUse (test run)",
        "Stop (report)",
    }
    assert all(s["n"] == 2 for s in out["warm"].values())
    assert out["context"]["prompts_with_context"] >= 1
    assert "first call (daemon starts)" in render_hooks(out)
    assert processes_mentioning(str(tmp_path)) == []
