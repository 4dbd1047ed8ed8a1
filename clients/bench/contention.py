"""The query embedding under contention: ONNX Runtime's intra-op threads and spinning.

    memrl-bench --embed-contention [--quick] [--json out.json]
    python -m memrl_clients.bench.contention [--queries 200] [--rounds 3]

For each setting (intra-op threads 1, 2 and ONNX Runtime's default, one per core; idle
threads spinning or not: session option `session.intra_op.allow_spinning` 1/0) a model is
loaded and the bench's query texts are embedded one at a time (no query cache), `rounds`
times in each of two conditions, alternating: *idle* (nothing started by the bench) and
*busy core* (a `python -c 'while True: pass'` process started by the bench for the
duration, i.e. one of the two cores taken). Reported: p50 and p95 per setting and
condition, and the machine's load average, since other jobs may share the cores. The
settings are measured one after the other, so a change of load during the run moves them
apart; the rounds alternate the conditions to keep the idle/busy comparison fair.
Benchmarks print figures; nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .measure import summary

# (label, threads, spinning); threads None is ONNX Runtime's default
SETTINGS: tuple[tuple[str, int | None, bool], ...] = (
    ("threads 1, spinning", 1, True),
    ("threads 1, no spinning", 1, False),
    ("threads 2, spinning", 2, True),
    ("threads 2, no spinning", 2, False),
    ("default threads, spinning", None, True),
    ("default threads, no spinning", None, False),
)
CONDITIONS = ("idle", "busy core")


@contextmanager
def busy_core() -> Iterator[None]:
    """One process spinning on a core for the duration of the block."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)  # scheduled and spinning before timing starts
        yield
    finally:
        proc.terminate()
        proc.wait(10)


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def run(
    queries: int | None = None,
    rounds: int | None = None,
    quick: bool = False,
    settings: Sequence[tuple[str, int | None, bool]] = SETTINGS,
    say: Callable[[str], None] | None = None,
    model_dir: str | None = None,
) -> dict[str, Any]:
    from memrl.embeddings import load_embedder

    from . import data

    queries = queries or (40 if quick else 100)
    rounds = rounds or (2 if quick else 3)
    texts = data.task_texts(queries, seed=3)
    rows: list[dict[str, Any]] = []
    out: dict[str, Any] = {
        "command": "memrl-bench --embed-contention" + (" --quick" if quick else ""),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cpus": os.cpu_count(),
        "queries_per_round": queries,
        "rounds": rounds,
        "load_average_at_start": _loadavg(),
        "rows": rows,
    }
    for label, threads, spinning in settings:
        model = load_embedder(model_dir, threads=threads, query_cache=0, spinning=spinning)
        for t in texts[:5]:  # warm-up
            model.embed_query(t)
        times: dict[str, list[float]] = {c: [] for c in CONDITIONS}
        cpu: dict[str, float] = dict.fromkeys(CONDITIONS, 0.0)
        for r in range(rounds):
            order = CONDITIONS if r % 2 == 0 else CONDITIONS[::-1]
            for condition in order:
                with busy_core() if condition == "busy core" else _nothing():
                    c0 = time.process_time()
                    for text in texts:
                        t0 = time.perf_counter()
                        model.embed_query(text)
                        times[condition].append(time.perf_counter() - t0)
                    cpu[condition] += time.process_time() - c0
        row: dict[str, Any] = {"setting": label, "threads": threads, "spinning": spinning,
                               "load_average": _loadavg()}
        for condition in CONDITIONS:
            row[condition] = summary(times[condition])
            row[condition]["cpu_ms_per_query"] = round(cpu[condition] / len(times[condition]) * 1e3, 2)
        rows.append(row)
        if say:
            say(f"  {label:<30} idle p50/p95 {row['idle']['p50_ms']:.2f}/{row['idle']['p95_ms']:.2f} ms, "
                f"busy core {row['busy core']['p50_ms']:.2f}/{row['busy core']['p95_ms']:.2f} ms "
                f"(load {row['load_average']})")
        del model
        gc.collect()
    out["load_average_at_end"] = _loadavg()
    best = min(rows, key=lambda r: r["busy core"]["p95_ms"])
    out["lowest_p95_busy_core"] = best["setting"]
    return out


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def render(out: dict[str, Any]) -> str:
    lines = [
        f"query embedding by ONNX Runtime setting ({out['queries_per_round']} queries x "
        f"{out['rounds']} rounds per condition; {out['cpus']} cores; load average "
        f"{out['load_average_at_start']} -> {out['load_average_at_end']}):",
        f"  {'setting':<30} | {'idle p50':>8} {'p95':>7} {'CPU':>6} | {'busy core p50':>13} "
        f"{'p95':>7} {'CPU':>6} | load",
    ]
    for r in out["rows"]:
        i, b = r["idle"], r["busy core"]
        lines.append(
            f"  {r['setting']:<30} | {i['p50_ms']:>8.2f} {i['p95_ms']:>7.2f} {i['cpu_ms_per_query']:>6.2f} | "
            f"{b['p50_ms']:>13.2f} {b['p95_ms']:>7.2f} {b['cpu_ms_per_query']:>6.2f} | {r['load_average']}"
        )
    lines.append(f"  lowest p95 beside a busy core: {out['lowest_p95_busy_core']} "
                 "(times in ms; CPU = the process's CPU time per query, all threads)")
    return "\n".join(lines)


def render_markdown(out: dict[str, Any]) -> str:
    rows = ["| setting | idle p50 / p95 ms | idle CPU ms | busy core p50 / p95 ms | busy core CPU ms "
            "| load average after |", "|---|---|---|---|---|---|"]
    for r in out["rows"]:
        i, b = r["idle"], r["busy core"]
        rows.append(
            f"| {r['setting']} | {i['p50_ms']:.2f} / {i['p95_ms']:.2f} | {i['cpu_ms_per_query']:.2f} | "
            f"{b['p50_ms']:.2f} / {b['p95_ms']:.2f} | {b['cpu_ms_per_query']:.2f} | "
            f"{(r['load_average'] or ['-'])[0]} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--queries", type=int, help="queries per round and condition (default 100)")
    p.add_argument("--rounds", type=int, help="rounds per condition (default 3)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", type=Path)
    p.add_argument("--markdown", type=Path)
    args = p.parse_args(argv)
    out = run(args.queries, args.rounds, args.quick, say=print)
    print(render(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    if args.markdown:
        args.markdown.write_text(render_markdown(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
