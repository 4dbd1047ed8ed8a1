"""Before/after table of two aggregates (`memrl-eval --aggregate ... --json FILE`): per
environment, bank and policy, each metric's mean as "before → after", then the
late-discovery scenario's reachability.

    python -m memrl_clients.eval.compare before/aggregate.json after/aggregate.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

NAMES = {"no_memory": "no memory", "rag": "RAG", "memrl": "MemRL (λ 0.5)",
         "lam0": "λ 0, learning", "lam1": "λ 1", "memrl_used": "MemRL, used_ids credit",
         "memrl_eps": "MemRL, ε 0.2"}
METRICS = ("last", "csr", "forgetting", "transfer_sr")
LATE_METRICS = ("last", "reach_injected", "full_injected", "open_injected")


def _cells(x: dict[str, Any], y: dict[str, Any], keys: tuple[str, ...]) -> str:
    return " | ".join(f"{x[k]['mean']:.3f} → {y[k]['mean']:.3f}" for k in keys)


def tables(before: dict[str, Any], after: dict[str, Any]) -> str:
    """The Markdown of both tables; rows present on one side only are left out."""
    lines = ["| env | policy | bank | seeds | Last | CSR | forgetting | transfer SR |",
             "|---|---|---|---|---|---|---|---|"]
    for env in sorted(set(before["results"]) & set(after["results"])):
        banks = sorted({b for p in after["results"][env].values() for b in p}, key=float)
        for bank in banks:
            for pol, name in NAMES.items():
                x = before["results"][env].get(pol, {}).get(bank)
                y = after["results"][env].get(pol, {}).get(bank)
                if x and y:
                    seeds = f"{x['last']['n']}/{y['last']['n']}"
                    lines.append(f"| {env} | {name} | {bank} | {seeds} | "
                                 f"{_cells(x, y, METRICS)} |")
    late_b, late_a = before.get("late_discovery") or {}, after.get("late_discovery") or {}
    if late_b and late_a:
        lines += ["", "| late discovery | bank | seeds | Last | reached: injected | "
                  "pool full: injected | pool open: injected |", "|---|---|---|---|---|---|---|"]
        banks = sorted({b for p in late_a.values() for b in p}, key=float)
        for bank in banks:
            for pol, name in NAMES.items():
                x, y = late_b.get(pol, {}).get(bank), late_a.get(pol, {}).get(bank)
                if x and y and pol != "no_memory":
                    seeds = f"{x['last']['n']}/{y['last']['n']}"
                    lines.append(f"| {name} | {bank} | {seeds} | {_cells(x, y, LATE_METRICS)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m memrl_clients.eval.compare BEFORE.json AFTER.json", file=sys.stderr)
        return 2
    before, after = (json.loads(Path(a).read_text()) for a in args)
    print(tables(before, after))
    return 0


if __name__ == "__main__":
    sys.exit(main())
