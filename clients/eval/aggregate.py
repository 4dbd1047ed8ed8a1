"""Mean and spread over runs: per environment x policy x bank setting, over seeds.

Input: the JSON documents of single runs (`memrl-eval --json`, or the per-run files a
`--seeds/--banks` matrix writes). Output: for every metric, the mean, min, max, sample
standard deviation (None with one run) and the per-seed values, so a difference between
policies can be read against the spread between seeds.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

METRICS = ("last", "csr", "forgetting", "transfer_sr", "fp_injection", "recover")
LATE_METRICS = (("last", ("last",)), ("csr", ("csr",)),
                ("reach_injected", ("reachability", "injected")),
                ("reach_reused", ("reachability", "reused")),
                ("full_injected", ("pool_full", "injected")),
                ("open_injected", ("pool_open", "injected")))


def stats(values: Sequence[float | None]) -> dict[str, Any]:
    """mean, min, max, sample std over the defined values (None where a run had none)."""
    xs = [v for v in values if v is not None]
    if not xs:
        return {"n": 0, "mean": None, "min": None, "max": None, "std": None, "values": list(values)}
    return {"n": len(xs), "mean": statistics.fmean(xs), "min": min(xs), "max": max(xs),
            "std": statistics.stdev(xs) if len(xs) > 1 else None, "values": list(values)}


def bank_key(bank: float) -> str:
    return f"{bank:g}"


def _dig(summary: Mapping[str, Any], path: Sequence[str]) -> Any:
    value: Any = summary
    for part in path:
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _group(docs: Iterable[Mapping[str, Any]], section: str) -> dict[tuple[str, str, str], list[tuple[int, Mapping[str, Any]]]]:
    """(env, policy, bank) -> [(seed, summary)] for one section of the run documents."""
    groups: dict[tuple[str, str, str], list[tuple[int, Mapping[str, Any]]]] = {}
    for doc in docs:
        meta = doc["meta"]
        envs = doc.get(section) or {}
        if section == "late_discovery":
            envs = {"late": envs} if envs else {}
        for env, policies in envs.items():
            for policy, summary in policies.items():
                key = (env, policy, bank_key(meta["bank"]))
                groups.setdefault(key, []).append((meta["seed"], summary))
    return groups


def aggregate(docs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The aggregate document: `results[env][policy][bank][metric]` and the same for the
    late-discovery scenario under `late_discovery[policy][bank][metric]`."""
    results: dict[str, Any] = {}
    for (env, policy, bank), runs in sorted(_group(docs, "results").items()):
        runs.sort(key=lambda r: r[0])
        cell: dict[str, Any] = {m: stats([s.get(m) for _, s in runs]) for m in METRICS}
        cell["seeds"] = [seed for seed, _ in runs]
        results.setdefault(env, {}).setdefault(policy, {})[bank] = cell
    late: dict[str, Any] = {}
    for (_, policy, bank), runs in sorted(_group(docs, "late_discovery").items()):
        runs.sort(key=lambda r: r[0])
        late_cell: dict[str, Any] = {name: stats([_dig(s, path) for _, s in runs])
                                     for name, path in LATE_METRICS}
        late_cell["seeds"] = [seed for seed, _ in runs]
        late.setdefault(policy, {})[bank] = late_cell
    metas = [d["meta"] for d in docs]
    meta = {"runs": len(docs), "seeds": sorted({m["seed"] for m in metas}),
            "banks": sorted({m["bank"] for m in metas}),
            "client_commits": sorted({str(m.get("client_commit")) for m in metas}),
            "server_commits": sorted({str(m.get("server_commit")) for m in metas})}
    return {"meta": meta, "results": results, "late_discovery": late}


def load(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Run documents from files; a clear error names a file that is not one."""
    docs = []
    for path in paths:
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise SystemExit(f"memrl-eval: cannot read {path} as a run's JSON: {e}") from e
        meta = doc.get("meta") if isinstance(doc, dict) else None
        if not isinstance(meta, dict) or "seed" not in meta or "results" not in doc:
            raise SystemExit(f"memrl-eval: {path} is not the JSON of a single run (written by "
                             "`memrl-eval --json`, or eval.json in a matrix run's folder)")
        docs.append(doc)
    return docs
