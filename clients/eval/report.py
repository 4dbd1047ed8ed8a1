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
          "lam0": (":", "x", 6), "lam1": ("-.", "^", 5), "memrl_used": ("-", "D", 4)}
COLUMNS = ("last", "csr", "forgetting", "transfer_sr", "q_success_r")


def fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(results: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """Markdown table: one row per environment and policy."""
    lines = ["| env | policy | SR per epoch | Last | CSR | forgetting | transfer SR | r(Q, success) |",
             "|---|---|---|---|---|---|---|---|"]
    for env, policies in results.items():
        for name, s in policies.items():
            curve = " ".join(f"{v:.2f}" for v in s["sr_per_epoch"])
            cells = " | ".join(fmt(s[c]) for c in COLUMNS)
            lines.append(f"| {env} | {LABELS.get(name, name)} | {curve} | {cells} |")
    return "\n".join(lines)


def write_json(path: Path, results: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": dict(meta), "results": results}, indent=2) + "\n")


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
