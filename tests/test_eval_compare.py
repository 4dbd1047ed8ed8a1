"""The before/after table of two aggregates."""

from memrl_clients.eval.compare import tables


def _metric(mean: float, n: int = 3) -> dict[str, float]:
    return {"mean": mean, "n": n}


def _run(last: float) -> dict[str, dict[str, float]]:
    return {k: _metric(last if k == "last" else 0.5) for k in ("last", "csr", "forgetting", "transfer_sr")}


def test_rows_pair_the_same_env_bank_and_policy() -> None:
    before = {"results": {"humaneval": {"rag": {"0": _run(0.91)}, "memrl": {"0": _run(0.94)}}}}
    after = {"results": {"humaneval": {"rag": {"0": _run(0.945)}, "lam1": {"0": _run(0.7)}}}}
    text = tables(before, after)
    assert "| humaneval | RAG | 0 | 3/3 | 0.910 → 0.945 | 0.500 → 0.500 |" in text
    assert "MemRL" not in text and "λ 1" not in text  # present on one side only
    assert "late discovery" not in text


def test_late_discovery_rows_leave_out_no_memory() -> None:
    late = {"last": _metric(0.2), "reach_injected": _metric(0.3), "full_injected": _metric(0.0),
            "open_injected": _metric(0.4)}
    late_after = {k: _metric(1.0) for k in late}
    before = {"results": {}, "late_discovery": {"rag": {"0": late}, "no_memory": {"0": late}}}
    after = {"results": {}, "late_discovery": {"rag": {"0": late_after}, "no_memory": {"0": late_after}}}
    text = tables(before, after)
    assert "| RAG | 0 | 3/3 | 0.200 → 1.000 | 0.300 → 1.000 | 0.000 → 1.000 | 0.400 → 1.000 |" in text
    assert "no memory" not in text
