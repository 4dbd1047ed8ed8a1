"""Does `memrl replay` predict what other settings actually did? Replay the ledger of the
exploring policy (memrl_eps) of a `memrl-eval` run for the lambdas of the other policies,
and set each estimate beside that policy's measured training-phase success rate over the
same tasks and epochs (see docs/EVALUATION.md, Replay of the ledger).

    memrl-eval --env humaneval --tasks 60 --epochs 4 --bank 0 \\
        --policies memrl_eps,rag,lam0,lam1,memrl --seed 0 --out RUN --json RUN/eval.json
    python -m memrl_clients.eval.replay_check RUN [RUN ...] [--json FILE]

Each RUN is an --out folder holding eval.json and the policies' databases.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memrl import Memory, open_memory
from memrl.replay import Setting, as_json, ledger, replay

LOGGING = "memrl_eps"
NAMESPACE = "eval"  # the namespace memrl-eval's memory client records in
# policy -> the setting replay evaluates for it (all learn Q with alpha 0.3, epsilon 0)
TARGETS = {"lam0": Setting(lam=0.0), "memrl": Setting(lam=0.5), "lam1": Setting(lam=1.0)}


def training_sr(policy: dict[str, Any]) -> float:
    """The success rate over all training attempts (epochs have the same tasks)."""
    per_epoch = policy["sr_per_epoch"]
    return sum(per_epoch) / len(per_epoch)


def check(run: Path, bootstrap: int, seed: int,
          open_db: Callable[[Path], Memory] = open_memory) -> list[dict[str, Any]]:
    results = json.loads((run / "eval.json").read_text())["results"]
    rows = []
    for env, policies in results.items():
        if LOGGING not in policies:
            continue
        db = run / f"{env}-{LOGGING}.db"
        memory = open_db(db)
        try:
            targets = [p for p in TARGETS if p in policies]
            report = replay(NAMESPACE, ledger(memory, NAMESPACE), [TARGETS[p] for p in targets],
                            bootstrap=bootstrap, seed=seed)
        finally:
            memory.close()
        for pol, result in zip(targets, as_json(report)["results"]):
            rows.append({"run": str(run), "env": env, "policy": pol,
                         "logged_sr": report.logged["success_rate"],
                         "actual_sr": training_sr(policies[pol]), "tasks": report.tasks,
                         **{k: result[k] for k in ("setting", "support", "ess", "agree",
                                                   "success", "warnings")}})
    return rows


def _ci(e: dict[str, Any]) -> str:
    if e["value"] is None:
        return "-"
    return f"{e['value']:.3f} [{e['low']:.3f}, {e['high']:.3f}]"


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| run | env | target (policy) | logged SR | support / tasks | ESS | IPS | SNIPS | DR "
             "| actual SR |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["success"]
        lines.append(
            f"| {Path(r['run']).name} | {r['env']} | {r['setting']['label']} ({r['policy']}) | "
            f"{r['logged_sr']:.3f} | {r['support']}/{r['tasks']} | {r['ess']:.1f} | "
            f"{_ci(s['ips'])} | {_ci(s['snips'])} | {_ci(s['dr'])} | {r['actual_sr']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m memrl_clients.eval.replay_check",
                                description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("runs", nargs="+", type=Path, help="memrl-eval --out folders")
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="write the rows here")
    args = p.parse_args(argv)
    for run in args.runs:
        if not (run / "eval.json").is_file():
            p.error(f"{run} has no eval.json: run memrl-eval with --out {run} --json {run}/eval.json")
    rows = [row for run in args.runs for row in check(run, args.bootstrap, args.seed)]
    if not rows:
        p.error(f"no run has the {LOGGING} policy: run memrl-eval with --policies {LOGGING},...")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
