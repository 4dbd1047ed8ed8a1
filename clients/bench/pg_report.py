"""The PostgreSQL figures of `memrl-bench` as text, beside the SQLite figures of the run."""

from __future__ import annotations

from typing import Any


def render(pg: dict[str, Any], sqlite_tiers: dict[str, Any]) -> list[str]:
    """The PostgreSQL figures as text, beside the SQLite figures of the same run."""
    lines = ["", f"PostgreSQL ({pg['server']}, pgvector {(pg.get('pgvector') or ['?'])[0]}):"]
    for name, t in pg["tiers"].items():
        idx, rec = t["index"], t["recall_inprocess"]
        nomodel = rec.get("without_embedding") or {}
        lines.append(
            f"  pg-{name}: {t['memories']:,} memories ({t['db_mb']:.0f} MB); search k=10 p50/p95 "
            f"{idx['p50_ms']:.2f}/{idx['p95_ms']:.2f} ms, recall@5 {idx['recall_at_5']:.3f} "
            f"@10 {idx['recall_at_10']:.3f}; recall() p50/p95 {rec['p50_ms']:.1f}/{rec['p95_ms']:.1f} ms "
            f"(without the embedding {nomodel.get('p50_ms', float('nan')):.1f} ms)"
        )
        sq = sqlite_tiers.get(name)
        if sq:
            lines.append(
                f"    SQLite {name} of this run: recall() p50/p95 {sq['recall_inprocess']['p50_ms']:.1f}/"
                f"{sq['recall_inprocess']['p95_ms']:.1f} ms"
            )
        if t.get("hnsw_build_s") is not None:
            lines.append(f"    load: COPY {t['copy_s']} s, HNSW build {t['hnsw_build_s']} s")
        o = t["outcome_updates"]
        lines.append(f"    outcome updates: {o['reports_per_s']:.0f} reports/s, {o['q_updates_per_s']:.0f} Q updates/s")
        d = t.get("design")
        if d:
            lines += _render_design(d)
    sq_updates = [t["outcome_updates"] for t in sqlite_tiers.values() if "outcome_updates" in t]
    if sq_updates:
        lines.append(f"  SQLite outcome updates of this run: {sq_updates[0]['reports_per_s']:.0f} reports/s")
    for backend, a in pg.get("agents", {}).items():
        lines.append(
            f"  {a['agents']} agents x {a['seconds']:.0f} s on {backend}: {a.get('reports', 0)} tasks "
            f"(recall + report) = {a['reports_per_s']:.0f}/s, {a['q_updates_per_s']:.0f} Q updates/s, "
            f"errors {a.get('errors', 0)}, lost updates {a['lost_updates']} "
            f"(replayed {a['credits_replayed']} credits over {a['memories']} memories)"
        )
    return lines


def _render_design(d: dict[str, Any]) -> list[str]:
    pa = d["phase_a"]
    lines = [
        f"    phase A p50/p95: two calls {pa['two_calls']['p50_ms']:.2f}/{pa['two_calls']['p95_ms']:.2f} ms, "
        f"one statement {pa['one_statement']['p50_ms']:.2f}/{pa['one_statement']['p95_ms']:.2f} ms "
        f"(same pool {pa['same_pool']:.0%})"
    ]
    for ef, r in d["ef_search"].items():
        lines.append(f"    ef_search {ef:>4}: p50 {r['p50_ms']:.2f} ms, recall@10 {r['recall_at_10']:.3f}")
    scan = d["iterative_scan"]
    for mode in ("off", "relaxed_order", "strict_order"):
        r = scan[mode]
        lines.append(
            f"    iterative_scan {mode:<13} (1k-intent namespaces): rows {r['mean_rows']:.1f} of 10, "
            f"recall@10 {r['recall_at_10']:.3f}, p50 {r['p50_ms']:.2f} ms"
        )
    lines.append(f"    plan for a small namespace: {scan['plan']}")
    forced = d.get("iterative_scan_forced") or {}
    for mode in ("off", "relaxed_order", "strict_order"):
        if mode in forced:
            r = forced[mode]
            lines.append(
                f"    forced HNSW, iterative_scan {mode:<13}: rows {r['mean_rows']:.1f} of 10, "
                f"recall@10 {r['recall_at_10']:.3f}, p50 {r['p50_ms']:.2f} ms"
            )
    for key, r in (d.get("hnsw_params") or {}).items():
        lines.append(f"    {key}: build {r['build_s']} s, p50 {r['p50_ms']:.2f} ms, recall@10 {r['recall_at_10']:.3f}")
    return lines
