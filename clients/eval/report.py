"""The results: a table for the terminal, a JSON document, PNG learning curves."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .harness import ALL_POLICIES

LABELS = {p.name: p.label for p in ALL_POLICIES}
# lambda 0 injects exactly what RAG injects, so their lines coincide: styles keep both visible.
STYLES = {"no_memory": ("-", "o", 5), "rag": ("--", "s", 8), "memrl": ("-", "o", 5),
          "lam0": (":", "x", 6), "lam1": ("-.", "^", 5), "memrl_used": ("-", "D", 4),
          "memrl_eps": ("--", "v", 4), "default": ("-", "*", 7)}
COLUMNS = ("last", "csr", "forgetting", "transfer_sr", "q_success_r", "fp_injection", "recover")


def fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(results: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """Markdown table: one row per environment and policy."""
    lines = ["| env | policy | SR per epoch | Last | CSR | forgetting | transfer SR | r(Q, success) "
             "| false-positive injections | epochs to recover (drift) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for env, policies in results.items():
        for name, s in policies.items():
            curve = " ".join(f"{v:.2f}" for v in s["sr_per_epoch"])
            cells = " | ".join(fmt(s.get(c)) for c in COLUMNS)
            lines.append(f"| {env} | {LABELS.get(name, name)} | {curve} | {cells} |")
    return "\n".join(lines)


def write_json(path: Path, results: Mapping[str, Any], meta: Mapping[str, Any],
               late: Mapping[str, Any] | None = None) -> None:
    """`{"meta", "results", "late_discovery"}`: one run, or an aggregate of runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"meta": dict(meta), "results": results, "late_discovery": dict(late or {})}
    path.write_text(json.dumps(doc, indent=2) + "\n")


def write_attempts(path: Path, runs: Mapping[str, Any]) -> None:
    """One JSON line per attempt (policy, phase, epoch, task, success, injected ids, reused id)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for name, run in runs.items():
            for a in run.attempts:
                f.write(json.dumps({"policy": name, **dataclasses.asdict(a)}) + "\n")


def plot(path: Path, env: str, policies: Mapping[str, Mapping[str, Any]]) -> Path:
    """Success rate per epoch, one line per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for name, s in policies.items():
        sr = s["sr_per_epoch"]
        style, marker, size = STYLES.get(name, ("-", "o", 5))
        ax.plot(range(1, len(sr) + 1), sr, linestyle=style, marker=marker, markersize=size,
                fillstyle="none" if name == "rag" else "full", label=LABELS.get(name, name))
    ax.set_xlabel("epoch")
    ax.set_ylabel("success rate")
    ax.set_title(f"{env}: runtime learning")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def late_table(late: Mapping[str, Mapping[str, Any]]) -> str:
    """The late-discovery scenario of one run: the curve and reachability per policy."""
    lines = ["| policy | SR per epoch | Last | reached: injected | reused | pool full (k1 already "
             "under the intent): injected | pool open: injected |",
             "|---|---|---|---|---|---|---|"]
    for name, s in late.items():
        curve = " ".join(f"{v:.2f}" for v in s["sr_per_epoch"])
        reach, full, open_ = s["reachability"], s["pool_full"], s["pool_open"]
        lines.append(
            f"| {LABELS.get(name, name)} | {curve} | {fmt(s['last'])} | {_reach(reach, 'injected')}"
            f" | {fmt(reach['reused'])} | {_reach(full, 'injected')} | {_reach(open_, 'injected')} |"
        )
    return "\n".join(lines)


def _reach(part: Mapping[str, Any], key: str) -> str:
    """A share with what it is over: `0.500 (4 tasks, 12 attempts)`."""
    if part[key] is None:
        return "-"
    return f"{part[key]:.3f} ({part['tasks']} tasks, {part['later_attempts']} attempts)"


def spread(cell: Mapping[str, Any]) -> str:
    """`mean ± std (min-max)` over seeds; `-` when no run had the metric."""
    if cell["mean"] is None:
        return "-"
    std = "" if cell["std"] is None else f" ± {cell['std']:.3f}"
    return f"{cell['mean']:.3f}{std} ({cell['min']:.2f}-{cell['max']:.2f})"


def aggregate_table(agg: Mapping[str, Any]) -> str:
    """Markdown: per env x policy x bank setting, mean ± sample std (min-max) over seeds;
    bank off first."""
    from .aggregate import LATE_METRICS, METRICS

    lines: list[str] = []
    if agg["results"]:
        lines += ["| env | policy | bank | seeds | " + " | ".join(HEADS[m] for m in METRICS) + " |",
                  "|" + "---|" * (4 + len(METRICS))]
    for env, policies in agg["results"].items():
        for bank in _banks(policies):
            for name, by_bank in _in_order(policies):
                if bank in by_bank:
                    cell = by_bank[bank]
                    cells = " | ".join(spread(cell[m]) for m in METRICS)
                    lines.append(f"| {env} | {LABELS.get(name, name)} | {bank} | "
                                 f"{len(cell['seeds'])} | {cells} |")
    late = agg.get("late_discovery") or {}
    if late:
        lines += ["", "Late discovery (reachability: share of attempts after the first real "
                  "success that injected the memory stored from it):", "",
                  "| policy | bank | seeds | " + " | ".join(HEADS[m] for m, _ in LATE_METRICS) + " |",
                  "|" + "---|" * (3 + len(LATE_METRICS))]
        for bank in _banks(late):
            for name, by_bank in _in_order(late):
                if bank in by_bank:
                    cell = by_bank[bank]
                    cells = " | ".join(spread(cell[m]) for m, _ in LATE_METRICS)
                    lines.append(f"| {LABELS.get(name, name)} | {bank} | {len(cell['seeds'])} | {cells} |")
    return "\n".join(lines)


def _in_order(by_policy: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Policies in the order of the policy list (no memory, RAG, MemRL, ablations)."""
    rank = {name: i for i, name in enumerate(LABELS)}
    return sorted(by_policy.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))


def _banks(by_policy: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return sorted({b for by_bank in by_policy.values() for b in by_bank}, key=float)


HEADS = {"last": "Last", "csr": "CSR", "forgetting": "forgetting", "transfer_sr": "transfer SR",
         "fp_injection": "false-positive injections", "recover": "epochs to recover",
         "reach_injected": "reached: injected", "reach_reused": "reached: reused",
         "full_injected": "pool full: injected", "open_injected": "pool open: injected"}
