"""The learned gate's evidence over the databases of an eval run (see docs/EVALUATION.md,
"A gate that learns"): per environment, policy and bank setting, the false-positive
injection rate, the gate of the last recall, and the calibrated and learned values.

    python -m memrl_clients.eval.gate /tmp/gate-eval          # a matrix (--out of memrl-eval)
    python -m memrl_clients.eval.gate /tmp/gate-eval --json gate.json

Reads each `<env>-<policy>.db` under the folder (SQLite files; nothing is written to them
beyond the schema migrations opening applies). The false-positive rate is
memrl.gate_learning's: of the injected memories of reported training tasks, the share
whose task failed without using them.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

from memrl import Memory, MemoryConfig, SqliteStorage, gate_learning
from memrl.embeddings import DIM

RUN = re.compile(r"seed(?P<seed>\d+)-bank(?P<bank>[\d.]+)")


class _NoEmbedder:
    """The storage's model, for reading: nothing is embedded."""

    def __init__(self, model_id: str) -> None:
        self.model_id, self.dim = model_id, DIM

    def embed(self, texts: list[str]) -> Any:
        raise RuntimeError("reading only")

    def embed_query(self, text: str) -> Any:
        raise RuntimeError("reading only")


def read_db(path: Path) -> dict[str, Any]:
    memory = Memory(SqliteStorage(path, DIM, "reader"), _NoEmbedder("reader"), MemoryConfig())  # type: ignore[arg-type]
    try:
        rows = memory.stats(None)
        if not rows:
            return {}
        namespace = rows[0]["namespace"]
        with memory.storage.read() as r:
            tasks = r.reported_tasks(namespace, gate_learning.WINDOW)
            calibrated = r.namespace_delta(namespace)
            learned = r.learned_delta(namespace)
        evidence = gate_learning.learn(tasks, calibrated, memory.config)
        last = memory.ledger_page(namespace, limit=1).tasks
    finally:
        memory.close()
    return {
        "false_positive_rate": evidence.false_positive_rate,
        "injected_memories": evidence.injected_memories,
        "tasks_empty_pool": evidence.empty_pool,
        "delta_calibrated": calibrated,
        "delta_learned": learned,
        "delta_last_recall": last[0].delta if last else None,
    }


def collect(folder: Path) -> list[dict[str, Any]]:
    rows = []
    for db in sorted(folder.rglob("*.db")):
        env, _, policy = db.stem.partition("-")
        match = RUN.search(str(db.parent))
        seed, bank = (int(match["seed"]), float(match["bank"])) if match else (None, None)
        rows.append({"env": env, "policy": policy, "seed": seed, "bank": bank, **read_db(db)})
    return rows


def _mean(values: list[float | None], digits: int = 3) -> str:
    got = [v for v in values if v is not None]
    if not got:
        return "-"
    if len(got) == 1:
        return f"{got[0]:.{digits}f}"
    return f"{statistics.mean(got):.{digits}f} ± {statistics.stdev(got):.{digits}f}"


def table(rows: list[dict[str, Any]]) -> str:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["env"], r["bank"], r["policy"]), []).append(r)
    lines = [
        "| env | bank | policy | seeds | false-positive injection rate | injected | "
        "delta calibrated | delta learned | delta at the last recall |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (env, bank, policy), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0, kv[0][2])):
        lines.append(
            f"| {env} | {bank} | {policy} | {len(rs)} | "
            f"{_mean([r.get('false_positive_rate') for r in rs])} | "
            f"{_mean([r.get('injected_memories') for r in rs], 0)} | "
            f"{_mean([r.get('delta_calibrated') for r in rs])} | "
            f"{_mean([r.get('delta_learned') for r in rs])} | "
            f"{_mean([r.get('delta_last_recall') for r in rs])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m memrl_clients.eval.gate", description=__doc__.split("\n")[0])
    p.add_argument("folder", type=Path, help="the --out folder of a memrl-eval run")
    p.add_argument("--json", type=Path, help="write the per-database rows here")
    args = p.parse_args(argv)
    rows = collect(args.folder)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
