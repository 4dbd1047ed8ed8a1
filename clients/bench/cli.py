"""`memrl-bench`: recall latency, baselines, throughput, cold start and memory in one run.

    memrl-bench                      10k (real model), 100k, 1M, 1M over 100 namespaces
    memrl-bench --quick              10k and 3k real sentences (about a minute; used in CI)
    memrl-bench --json out.json      also write every figure as JSON
    memrl-bench --hooks              `memrl hook` latency only (first and warm calls)
    memrl-bench --concurrency        concurrent recalls only: 1, 4, 16 MCP sessions on one
                                     `memrl serve --http`, query batching on and off
    memrl-bench --embed-contention   the query embedding's p50/p95 by ONNX threads and
                                     spinning, idle and beside a busy core
    memrl-bench --tiers none --curve none --no-mcp --realtext 100000
                                     the real-text tier alone, at 100k real sentences

The 10k tier goes through the real model end to end (store_many, then recall). The bulk
tiers hold clustered vectors scattered around those real embeddings, inserted through
the store's write path; they are cached in --workdir (default: <tmp>/memrl-bench).
Baselines run in the same process on the same vectors: plain sqlite-vec float KNN and
exact numpy search; recall@k of the index is measured against exact search.
The real-text tier (`realtext_tier`) stores real sentences (docstrings, comments and
reference text of the installed packages) and measures the index's recall@k against exact
search on them; their embeddings are cached in --realtext-cache.
Benchmarks print figures; nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from memrl import Memory, MemoryConfig, SqliteStorage, load_embedder
from memrl.storage.sqlite.connection import connect
from memrl.storage.sqlite.kernels import blobs_matrix

from . import build, concurrency, data, measure, page_cache, pg_report, realtext, realtext_tier
from . import postgres as pg_tier

TIERS = {
    "10k": (None, 1),  # the real-model tier (size from --n-real)
    "100k": (100_000, 1),
    "1m": (1_000_000, 1),
    "1m-100ns": (1_000_000, 100),
}
# full recall p50 targets (ms), per tier
TARGET_RECALL_P50_MS = {"10k": 5.0, "100k": 10.0, "1m": 40.0}
TARGET_RECALL_AT_K = 0.95
TARGET_UPDATES_PER_S = 5_000.0
TARGET_RSS_MB = 300.0
# Recall at the model's floor: what is not the query embedding, at 10k memories.
TARGET_RECALL_MINUS_EMBEDDING_MS = 1.0
TARGET_CONCURRENCY_16_OVER_1 = 3.0
TARGET_COLD_TOOLS_LIST_S = 0.5
TARGET_COLD_FIRST_RECALL_S = 1.0
# Real-text tier: stored sentences in a full run (the corpus caps it: ~100k distinct
# sentences) and in --quick (the "small" corpus: a few seconds to extract, and the same
# sentences as the default test run, so CI finds their embeddings cached).
REALTEXT_FULL = 100_000
REALTEXT_QUICK = 2_900


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="memrl-bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="10k tier and a small real-text tier, fewer repetitions (CI)")
    p.add_argument("--json", type=Path, help="write the figures to this JSON file")
    p.add_argument("--tiers", help=f"comma list of {', '.join(TIERS)}, or none (default: all; "
                   "--quick: 10k); none also skips the cost curve and cold start")
    p.add_argument("--n-real", type=int, default=10_000, help="size of the real-model tier")
    p.add_argument("--queries", type=int, help="queries per measurement (default 200; quick 100)")
    p.add_argument("--budget", type=float, help="seconds per measurement before stopping early")
    p.add_argument("--cold-runs", type=int, help="server spawns for the cold-start median")
    p.add_argument("--report-tasks", type=int, help="tasks reported for the outcome-update rate")
    p.add_argument("--batch", type=int, default=256, help="store_many batch size")
    p.add_argument("--curve", help="comma list of sizes for the cost curve (default: 1k..1M; "
                   "quick: none; 'none' to skip)")
    p.add_argument("--no-mcp", action="store_true", help="skip everything that spawns the server")
    p.add_argument("--workdir", type=Path, default=None, help="where bench databases are cached")
    p.add_argument("--model-dir", help="embedding model directory (as memrl serve --model-dir)")
    p.add_argument("--markdown", type=Path, help="also write the tables as Markdown to this file")
    p.add_argument("--realtext", type=int, help="real sentences stored in the real-text tier "
                   f"(default {REALTEXT_FULL:,}, capped by the corpus; --quick: {REALTEXT_QUICK:,}; "
                   "0 skips the tier)")
    p.add_argument("--realtext-scope", choices=realtext.SCOPES,
                   help="real-text corpus: small (standard library, Python reference, HumanEval) "
                   "or full (plus every package memrl[test,eval] installs); default full, "
                   "--quick: small")
    p.add_argument("--realtext-cache", type=Path, help="where the real-text corpus and its "
                   "embeddings are cached (default: <workdir default>/realtext-cache, shared by "
                   "every run and by the tests whatever --workdir is)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.add_argument("--hooks", action="store_true", help="measure `memrl hook` latency only")
    p.add_argument("--concurrency", action="store_true",
                   help="the concurrency tier only: a --n-real database on `memrl serve --http`, "
                   "N concurrent MCP sessions recalling, query batching on and off (full runs "
                   "and --quick include it unless --no-mcp)")
    p.add_argument("--clients", default=None,
                   help="comma list of concurrent sessions for the concurrency tier "
                   "(default 1,4,16)")
    p.add_argument("--concurrency-seconds", type=float, default=None,
                   help="seconds each row of the concurrency tier runs (default 5; quick 1.5)")
    p.add_argument("--embed-contention", action="store_true",
                   help="only the query embedding under contention (clients/bench/contention.py)")
    pg_tier.add_arguments(p)
    args = p.parse_args(argv)
    args.clients = [int(x) for x in (args.clients or "1,4,16").split(",")]
    args.concurrency_seconds = args.concurrency_seconds or (1.5 if args.quick else 5.0)
    quick = args.quick
    tiers = args.tiers or ("10k" if quick else ",".join(TIERS))
    args.tiers = [] if tiers == "none" else [t.strip() for t in tiers.split(",")]
    for t in args.tiers:
        if t not in TIERS:
            p.error(f"unknown tier {t!r}; choose from {', '.join(TIERS)}")
    args.queries = args.queries or (100 if quick else 200)
    args.budget = args.budget or (8.0 if quick else 30.0)
    args.cold_runs = args.cold_runs or (2 if quick else 5)
    args.report_tasks = args.report_tasks or (500 if quick else 2000)
    args.workdir = args.workdir or build.workdir_default()
    curve = args.curve or ("none" if quick else "1000,3000,10000,30000,100000,300000,1000000")
    args.curve = [] if curve == "none" else [int(float(x)) for x in curve.split(",")]
    pg_tier.finish_arguments(args)
    if args.realtext is None:
        args.realtext = REALTEXT_QUICK if quick else REALTEXT_FULL
    args.realtext_scope = args.realtext_scope or ("small" if quick else "full")
    args.realtext_cache = args.realtext_cache or realtext_tier.default_cache_dir()
    return args


def query_texts(stored: list[str], n: int) -> list[str]:
    """n task texts that are not stored (the bench's recall queries)."""
    taken = set(stored)
    out = [t for t in data.task_texts(min(len(stored) + 4 * n, 96_000), seed=1) if t not in taken]
    return out[:n]


def read_vectors(path: Path, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(intent ids, vectors) of every stored intent in insertion order."""
    conn = connect(path)
    try:
        rows = conn.execute("SELECT intent_id, embedding FROM intent_vectors ORDER BY seq").fetchall()
    finally:
        conn.close()
    ids = np.asarray([r[0] for r in rows], dtype=np.int64)
    vecs = blobs_matrix([r[1] for r in rows], dim)
    return ids, vecs


def run(args: argparse.Namespace, argv: list[str] | None = None) -> dict[str, Any]:
    say = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    if args.model_dir:
        os.environ["MEMRL_MODEL_DIR"] = args.model_dir  # the spawned servers inherit it
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    config = MemoryConfig()
    out: dict[str, Any] = {
        "meta": {
            "command": " ".join(["memrl-bench", *(sys.argv[1:] if argv is None else argv)]),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_start": _loadavg(),
            "numpy": np.__version__,
            "k1": config.k1,
            "k2": config.k2,
            "queries": args.queries,
        },
        "tiers": {},
    }

    t0 = time.perf_counter()
    # no query cache: every timed recall must pay for its embedding, even of a text that
    # an earlier measurement already embedded
    embedder = load_embedder(args.model_dir, query_cache=0)
    out["meta"]["model_load_s"] = round(time.perf_counter() - t0, 3)
    out["meta"]["model_id"] = embedder.model_id
    if args.concurrency:
        out["concurrency"] = _concurrency_alone(args, embedder, say)
        out["meta"]["load_average_at_end"] = _loadavg()
        out["meta"]["seconds"] = round(time.perf_counter() - t0, 1)
        out["targets"] = {}
        return out
    if args.tiers:
        _memory_tiers(args, out, embedder, config, say)
    if args.realtext > 0:
        out["realtext"] = realtext_tier.run(
            embedder, args.realtext, args.queries, args.realtext_scope, workdir,
            args.realtext_cache, args.budget, say,
        )
    out["targets"] = targets(out)
    out["meta"]["load_average_at_end"] = _loadavg()
    out["meta"]["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def _memory_tiers(
    args: argparse.Namespace, out: dict[str, Any], embedder: Any, config: MemoryConfig, say: Any
) -> None:
    """The memory tiers, the cost curve and cold start (figures added to `out`)."""
    workdir: Path = args.workdir
    dim = embedder.dim
    # -- the real-model tier: store throughput on the way ---------------------------------------
    texts = data.task_texts(args.n_real, seed=0)
    qtexts = query_texts(texts, args.queries)
    say(f"embedding + storing {len(texts)} memories with the real model ...")
    real_path = workdir / f"real-{args.n_real}-{os.getpid()}.db"
    build.fresh(real_path)
    store = SqliteStorage(real_path, dim, embedder.model_id)
    memory = Memory(store, embedder, config)
    try:
        out["store_throughput"] = {
            k: round(v, 1) for k, v in
            build.build_real_tier(memory, texts, "bench", args.batch, say).items()
        }
    finally:
        store.close()
    ids, vecs = read_vectors(real_path, dim)
    real = build.Tier(
        name="10k", n=len(ids), namespaces=["bench"], path=real_path, real=True,
        vectors=vecs, ids=ids, ns_of=np.zeros(len(ids), dtype=np.int64),
    )
    qvecs = embedder.embed(qtexts)

    for name in args.tiers:
        size, n_ns = TIERS[name]
        if size is None:
            tier = real
        else:
            names = ["bench"] if n_ns == 1 else [f"bench-{j:03d}" for j in range(n_ns)]
            tier = build.Tier(
                name=name, n=size, namespaces=names,
                path=workdir / f"bulk-{name}-{build.schema_key(dim)}.db",
            )
            say(f"[{name}] building or reusing {tier.path} ...")
            build.build_bulk_tier(tier, vecs, texts, embedder.model_id, workdir, config, say)
        say(f"[{name}] measuring ({tier.n} memories, {len(tier.namespaces)} namespaces)")
        out["tiers"][name] = measure_tier(tier, memory_args=(embedder, config), qtexts=qtexts,
                                          qvecs=qvecs, args=args, say=say,
                                          report=(tier is real))
        if tier is not real:
            tier.vectors = None
        if args.json:  # a long run leaves its figures so far behind if it is interrupted
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({**out, "partial": True}, indent=2, default=float))

    if args.postgres:
        out["postgres"] = pg_tier.run(args, embedder, vecs, texts, qtexts, qvecs, config, say)
    if args.curve:
        say("cost curve (index tables only, one namespace) ...")
        anchors_n = max(args.curve)
        curve_vecs, _ = build.bulk_vectors(vecs, anchors_n, seed=99)
        out["curve"] = measure.cost_curve(
            curve_vecs, qvecs, args.curve, workdir, min(args.budget, 10.0), say
        )
        del curve_vecs
    if not args.no_mcp:
        say(f"concurrent recalls over HTTP ({len(texts)} memories) ...")
        out["concurrency"] = concurrency.run(
            real_path, "bench", concurrency.texts_for(_concurrency_calls(args), texts),
            args.clients, args.concurrency_seconds, workdir / "server.log", say,
            embedder=embedder,
        )
        say("cold start: spawning the server ...")
        out["cold_start"] = measure.cold_start(
            real_path, qtexts[0], "bench", args.cold_runs, workdir / "server.log"
        )
    build.fresh(real_path)


def _concurrency_calls(args: argparse.Namespace) -> int:
    """Distinct task texts the concurrency tier may need (each recall sends a new one):
    up to 400 recalls/s per row, which is more than 2 cores deliver."""
    rows = 2 * len(args.clients)
    return min(80_000, int(rows * args.concurrency_seconds * 400) + 100)


def _concurrency_alone(args: argparse.Namespace, embedder: Any, say: Any) -> dict[str, Any]:
    texts = data.task_texts(args.n_real, seed=0)
    path = args.workdir / f"concurrency-{args.n_real}-{os.getpid()}.db"
    concurrency.build_db(path, texts, embedder, args.workdir / "embed-cache", "bench", say)
    try:
        say(f"concurrent recalls over HTTP ({len(texts)} memories) ...")
        return concurrency.run(
            path, "bench", concurrency.texts_for(_concurrency_calls(args), texts),
            args.clients, args.concurrency_seconds, args.workdir / "server.log", say,
            embedder=embedder,
        )
    finally:
        build.fresh(path)


def measure_tier(
    tier: build.Tier, memory_args: tuple[Any, MemoryConfig], qtexts: list[str], qvecs: np.ndarray,
    args: argparse.Namespace, say: Any, report: bool,
) -> dict[str, Any]:
    embedder, config = memory_args
    n_ns = len(tier.namespaces)
    qns = np.arange(len(qvecs)) % n_ns
    ns_names = [tier.namespaces[j] for j in qns]
    truth = measure.Truth(tier)
    truth10 = [truth.search(qvecs[i], int(qns[i]), 10) for i in range(len(qvecs))]
    res: dict[str, Any] = {
        "memories": tier.n,
        "namespaces": n_ns,
        "cached_build": tier.cached,
        "build_s": round(tier.build_seconds, 1),
        "db_mb": round(build.db_bytes(tier.path) / 2**20, 1),
    }
    res["bytes_per_memory"] = round(build.db_bytes(tier.path) / max(tier.n, 1), 1)
    say("  index alone ...")
    res["index"] = measure.index_search(tier, qvecs, qns, truth10, args.budget)
    say("  sqlite-vec float KNN baseline ...")
    vec0_path = args.workdir / f"vec0-{tier.name}-{tier.n}.db"
    if tier.real:
        vec0_path = Path(str(tier.path) + ".vec0")
    key = json.dumps({"n": tier.n, "ns": n_ns, "ids": int(tier.ids.sum()),  # type: ignore[union-attr]
                      "v": float(np.float64(tier.vectors[:: max(1, tier.n // 1000)].sum()))})  # type: ignore[index]
    t0 = time.perf_counter()
    reused = build.build_vec0_baseline(
        vec0_path, tier.vectors, tier.ids, tier.namespaces, tier.ns_of, key  # type: ignore[arg-type]
    )
    page_cache.prime(vec0_path)  # the baseline is measured warm, like the index's k5
    res["sqlite_vec"] = measure.vec0_search(vec0_path, tier, qvecs, qns, truth10, args.budget)
    res["sqlite_vec"]["build_s"] = None if reused else round(time.perf_counter() - t0, 1)
    res["sqlite_vec"]["db_mb"] = round(build.db_bytes(vec0_path) / 2**20, 1)
    if tier.real:
        build.fresh(vec0_path)
    say("  numpy exact baseline ...")
    res["numpy"] = measure.numpy_search(truth, qvecs, qns, args.budget)
    del truth
    say("  full recall in-process, cold page cache ...")
    # the last queries, so the warm measurements below time texts not recalled before
    res["recall_cold"] = measure.cold_recall(
        tier.path, embedder, config, qtexts[::-1], ns_names[::-1], args.budget
    )
    say("  full recall in-process ...")
    page_cache.prime(tier.path)
    store = SqliteStorage(tier.path, embedder.dim, embedder.model_id)
    try:
        memory = Memory(store, embedder, config)
        res["recall_inprocess"], task_ids = measure.inprocess_recall(
            memory, qtexts, ns_names, args.budget
        )
        if report:
            extra = args.report_tasks - len(task_ids)
            for i in range(max(0, extra)):
                task = memory.recall(qtexts[i % len(qtexts)], ns_names[i % len(ns_names)]).task_id
                assert task is not None  # not a dry run: every recall opens a task
                task_ids.append(task)
            say(f"  outcome updates ({len(task_ids)} reports) ...")
            res["outcome_updates"] = measure.outcome_updates(memory, task_ids)
    finally:
        store.close()
    if not args.no_mcp:
        say("  full recall over MCP stdio ...")
        page_cache.prime(tier.path)
        res["recall_mcp"] = measure.mcp_recall(
            tier.path, qtexts, ns_names, args.budget, args.workdir / "server.log"
        )
    idx, base = res["index"]["k5"]["p50_ms"], res["sqlite_vec"]["k5"]["p50_ms"]
    res["ratios"] = {
        "sqlite_vec_over_index_p50": round(base / idx, 1) if idx else None,
        "numpy_over_index_p50": round(res["numpy"]["k5"]["p50_ms"] / idx, 2) if idx else None,
        "numpy_one_thread_over_index_p50": (
            round(res["numpy"]["k5_one_thread"]["p50_ms"] / idx, 2) if idx else None
        ),
        "index_share_of_recall_p50": round(idx / res["recall_inprocess"]["p50_ms"], 2),
    }
    if "recall_mcp" in res:
        res["ratios"]["mcp_over_inprocess_p50"] = round(
            res["recall_mcp"]["recall"]["p50_ms"] / res["recall_inprocess"]["p50_ms"], 2
        )
    return res


def targets(out: dict[str, Any]) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    for name, limit in TARGET_RECALL_P50_MS.items():
        if name in out["tiers"]:
            got = out["tiers"][name]["recall_inprocess"]["p50_ms"]
            checks[f"recall_p50_{name}"] = {"target_ms": limit, "got_ms": got, "met": got <= limit}
    for name, tier in out["tiers"].items():
        for k in (5, 10):
            got = tier["index"][f"recall_at_{k}"]
            checks[f"recall_at_{k}_{name}"] = {
                "target": TARGET_RECALL_AT_K, "got": got, "met": got >= TARGET_RECALL_AT_K
            }
    rt = out.get("realtext")
    if rt:
        for k in realtext_tier.KS:
            got = rt["recall"][f"k{k}"]["all"]
            checks[f"recall_at_{k}_realtext"] = {
                "target": TARGET_RECALL_AT_K, "got": got, "met": got >= TARGET_RECALL_AT_K
            }
    if "10k" in out["tiers"]:
        ri = out["tiers"]["10k"]["recall_inprocess"]
        got = ri["minus_embedding_ms"]
        checks["recall_minus_embedding_10k"] = {
            "target_ms": TARGET_RECALL_MINUS_EMBEDDING_MS, "got_ms": got,
            "met": got <= TARGET_RECALL_MINUS_EMBEDDING_MS,
        }
        back_to_back = (ri.get("without_embedding_back_to_back") or {}).get("p50_ms")
        if back_to_back is not None:
            checks["recall_minus_embedding_10k"]["no_model_run_between_ms"] = back_to_back
    for name, tier in out["tiers"].items():
        got, base = tier["index"]["k5"]["p50_ms"], tier["numpy"]["k5"]["p50_ms"]
        checks[f"search_vs_numpy_{name}"] = {"target_ms": base, "got_ms": got, "met": got <= base}
    conc = out.get("concurrency")
    if conc and "16" in conc["ratios"]:
        got = conc["ratios"]["16"]["batching_over_its_1_client"]
        checks["recalls_per_s_16_over_1"] = {
            "target": TARGET_CONCURRENCY_16_OVER_1, "got": got,
            "met": got is not None and got >= TARGET_CONCURRENCY_16_OVER_1,
        }
        if conc.get("model_bound"):
            checks["recalls_per_s_16_over_1"]["model_bound"] = conc["model_bound"]["ratio_bound"]
    cold = out.get("cold_start")
    if cold:
        for key, limit in (("spawn_to_tools_list_s", TARGET_COLD_TOOLS_LIST_S),
                           ("spawn_to_first_recall_s", TARGET_COLD_FIRST_RECALL_S)):
            checks[f"cold_{key}"] = {"target_s": limit, "got_s": cold[key], "met": cold[key] <= limit}
    for tier in out["tiers"].values():
        if "outcome_updates" in tier:
            got = tier["outcome_updates"]["reports_per_s"]
            checks["outcome_updates_per_s"] = {
                "target": TARGET_UPDATES_PER_S, "got": got, "met": got >= TARGET_UPDATES_PER_S
            }
    first: dict[str, Any] = next(iter(out["tiers"].values()), {})
    mem = (first.get("recall_mcp") or {}).get("server_memory")
    if mem:
        checks["server_rss_mb"] = {
            "target": TARGET_RSS_MB, "got": mem["rss_mb"], "met": mem["rss_mb"] <= TARGET_RSS_MB
        }
    return checks


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _cold_cells(t: dict[str, Any]) -> dict[str, str]:
    """A tier's cold-page-cache figures, formatted (the text and Markdown tables share them)."""
    idx, rc = t["index"], t.get("recall_cold") or {}
    kc = idx.get("k5_cold") or {}
    return {
        "first_search": f"{idx['first_search_ms']:,.0f}",
        "index_p50": _fmt(kc.get("p50_ms"), 2),
        "index_p95": _fmt(kc.get("p95_ms"), 2),
        "first_recall": _fmt(rc.get("first_recall_ms"), 0),
        "recall_p50": _fmt(rc.get("p50_ms"), 1),
        "recall_p95": _fmt(rc.get("p95_ms"), 1),
        "prime_s": _fmt(idx.get("prime_s"), 1),
    }


def _render_tier_tables(out: dict[str, Any]) -> list[str]:
    """The memory tiers' table, ratios and cold figures."""
    lines = []
    head = (
        f"{'tier':<9} {'N':>9} {'ns':>4} {'DB MB':>7} | {'index p50/p95':>13} {'r@5':>5} {'r@10':>5} | "
        f"{'sqlite-vec p50/p95':>18} {'r@10':>5} | {'numpy p50':>9} | {'recall() p50/p95':>16} | "
        f"{'MCP p50/p95':>13} | {'x vec':>5}"
    )
    lines += [head, "-" * len(head)]
    for name, t in out["tiers"].items():
        mcp = (t.get("recall_mcp") or {}).get("recall") or {}
        lines.append(
            f"{name:<9} {t['memories']:>9} {t['namespaces']:>4} {t['db_mb']:>7.0f} | "
            f"{_fmt(t['index']['k5']['p50_ms'], 2):>6}/{_fmt(t['index']['k5']['p95_ms'], 2):<6} "
            f"{t['index']['recall_at_5']:>5.3f} {t['index']['recall_at_10']:>5.3f} | "
            f"{_fmt(t['sqlite_vec']['k5']['p50_ms']):>8}/{_fmt(t['sqlite_vec']['k5']['p95_ms']):<9} "
            f"{t['sqlite_vec']['recall_at_10']:>5.3f} | {_fmt(t['numpy']['k5']['p50_ms'], 2):>9} | "
            f"{_fmt(t['recall_inprocess']['p50_ms'], 2):>7}/{_fmt(t['recall_inprocess']['p95_ms'], 2):<8} | "
            f"{_fmt(mcp.get('p50_ms'), 1):>6}/{_fmt(mcp.get('p95_ms'), 1):<6} | "
            f"{_fmt(t['ratios']['sqlite_vec_over_index_p50']):>5}"
        )
    lines.append("")
    lines.append(
        "index = memrl VectorIndex search (k=5); recall() = Memory.recall end to end (query "
        "embedding, both phases, ledger write);"
    )
    lines.append(
        "MCP = recall_experience round trip over stdio; x vec = sqlite-vec float KNN p50 / index p50; "
        "times in ms."
    )
    for name, t in out["tiers"].items():
        r = t["ratios"]
        ri = t["recall_inprocess"]
        emb = ri["embed_query"]["p50_ms"]
        rest = (ri.get("without_embedding") or {}).get("p50_ms", float("nan"))
        lines.append(
            f"  {name}: index is {_fmt(r['sqlite_vec_over_index_p50'])}x faster than sqlite-vec, "
            f"{_fmt(r['numpy_over_index_p50'], 2)}x numpy exact "
            f"({_fmt(r.get('numpy_one_thread_over_index_p50'), 2)}x numpy on one thread; CPU per "
            f"search: index {_fmt(t['index']['k5'].get('cpu_ms'), 3)} ms, numpy "
            f"{_fmt(t['numpy']['k5'].get('cpu_ms'), 3)} ms, one thread "
            f"{_fmt((t['numpy'].get('k5_one_thread') or {}).get('cpu_ms'), 3)} ms); "
            f"index = {r['index_share_of_recall_p50']:.0%} "
            f"of recall() p50 (query embedding {emb:.2f} ms, measured beside it: recall() p50 minus "
            f"embedding p50 {_fmt(ri.get('minus_embedding_ms'), 2)} ms, paired "
            f"{_fmt((ri.get('paired_minus_embedding') or {}).get('p50_ms'), 2)} ms; recall() with "
            f"the vector given {rest:.2f} ms p50, "
            f"{_fmt((ri.get('without_embedding') or {}).get('cpu_ms'), 3)} ms CPU, "
            f"{_fmt((ri.get('without_embedding_back_to_back') or {}).get('p50_ms'), 2)} ms p50 when "
            "no model run came between it and the recall before); index again on the same queries "
            f"(rows in page cache) {_fmt((t['index'].get('k5_repeat') or {}).get('p50_ms'), 2)} ms; "
            f"first search after open "
            f"{t['index']['first_search_ms']:.0f} ms"
            + (f"; MCP/in-process {r['mcp_over_inprocess_p50']}x" if "mcp_over_inprocess_p50" in r else "")
        )
    lines.append("")
    lines.append(
        "cold page cache (the database file evicted first: a restart on a machine that dropped "
        "the file's pages):"
    )
    for name, t in out["tiers"].items():
        c = _cold_cells(t)
        lines.append(
            f"  {name}: first search {c['first_search']} ms, then index p50/p95 "
            f"{c['index_p50']}/{c['index_p95']} ms; first recall() {c['first_recall']} ms, then "
            f"recall() p50/p95 {c['recall_p50']}/{c['recall_p95']} ms "
            f"(reading the whole file once: {c['prime_s']} s)"
        )
    return lines


def render(out: dict[str, Any]) -> str:
    lines = _render_tier_tables(out) if out["tiers"] else []
    lines.append("")
    st = out.get("store_throughput")
    if st:
        lines.append(
            f"store throughput (real model, batches of store_many): {st['items_per_s']:.0f} memories/s "
            f"(embedding alone {st['embed_items_per_s']:.0f}/s)"
        )
    for t in out["tiers"].values():
        if "outcome_updates" in t:
            o = t["outcome_updates"]
            lines.append(
                f"outcome updates: {o['reports_per_s']:.0f} reports/s, {o['q_updates_per_s']:.0f} Q updates/s "
                f"({o['reports']} reports in {o['seconds']:.2f} s)"
            )
    if out.get("concurrency"):
        lines += concurrency.render(out["concurrency"])
    cs = out.get("cold_start")
    if cs:
        lines.append(
            f"cold start (median of {cs['runs']}): spawn -> tools/list {cs['spawn_to_tools_list_s']:.2f} s, "
            f"spawn -> first recall {cs['spawn_to_first_recall_s']:.2f} s"
        )
    for name, t in out["tiers"].items():
        mem = (t.get("recall_mcp") or {}).get("server_memory")
        if mem:
            lines.append(
                f"server memory at {name}: RSS {_fmt(mem['rss_mb'], 0)} MB = {_fmt(mem.get('anon_mb'), 0)} private "
                f"+ {_fmt(mem.get('file_mb'), 0)} mapped files (peak {_fmt(mem['peak_rss_mb'], 0)} MB); "
                f"spawn -> first recall {t['recall_mcp']['spawn_to_first_recall_s']:.2f} s"
            )
    if out.get("curve"):
        lines.append("")
        lines.append("cost curve, one namespace, search k=5 (ms p50) and bytes per row of the vector tables:")
        lines.append(f"  {'N':>9} | {'index':>7} {'p95':>7} | {'sqlite-vec':>10} | {'numpy':>7} | "
                     f"{'index B/row':>11} {'vec0 B/row':>10}  (index = all VectorIndex tables)")
        for pt in out["curve"]:
            lines.append(
                f"  {pt['n']:>9} | {pt['index']['p50_ms']:>7.2f} {pt['index']['p95_ms']:>7.2f} | "
                f"{pt['sqlite_vec']['p50_ms']:>10.2f} | {pt['numpy']['p50_ms']:>7.2f} | "
                f"{pt['index_bytes_per_row']:>11.0f} {pt['sqlite_vec_bytes_per_row']:>10.0f}"
            )
    if out.get("postgres"):
        lines += pg_report.render(out["postgres"], out["tiers"])
    if out.get("realtext"):
        lines.append("")
        lines += realtext_tier.render(out["realtext"])
    lines.append("")
    lines.append("targets:")
    for key, c in out.get("targets", {}).items():
        want = next((c[k] for k in ("target_ms", "target_s", "target") if k in c), None)
        got = next((c[k] for k in ("got_ms", "got_s", "got") if k in c), None)
        lines.append(
            f"  {key:<32} target {_fmt(want, 3):<8} got {_fmt(got, 3):<10} "
            f"{'met' if c['met'] else 'MISSED'}"
            + (f" (the model alone allows at most {c['model_bound']:.2f} here)" if "model_bound" in c else "")
            + (
                f" (the same work with no model run between recalls: "
                f"{c['no_model_run_between_ms']:.2f} ms)" if "no_model_run_between_ms" in c else ""
            )
        )
    return "\n".join(lines)


def _markdown_tier_tables(out: dict[str, Any]) -> list[str]:
    rows = [
        "| tier | memories | namespaces | DB MB | index p50 / p95 | recall@5 / @10 | sqlite-vec p50 / p95 "
        "| numpy p50 | recall() p50 / p95 | without embedding p50 | MCP p50 / p95 | sqlite-vec / index |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, t in out["tiers"].items():
        mcp = (t.get("recall_mcp") or {}).get("recall") or {}
        nomodel = t["recall_inprocess"].get("without_embedding") or {}
        rows.append(
            f"| {name} | {t['memories']:,} | {t['namespaces']} | {t['db_mb']:,.0f} | "
            f"{t['index']['k5']['p50_ms']:.2f} / {t['index']['k5']['p95_ms']:.2f} | "
            f"{t['index']['recall_at_5']:.3f} / {t['index']['recall_at_10']:.3f} | "
            f"{t['sqlite_vec']['k5']['p50_ms']:.1f} / {t['sqlite_vec']['k5']['p95_ms']:.1f} | "
            f"{t['numpy']['k5']['p50_ms']:.2f} | "
            f"{t['recall_inprocess']['p50_ms']:.1f} / {t['recall_inprocess']['p95_ms']:.1f} | "
            f"{_fmt(nomodel.get('p50_ms'), 2)} | "
            f"{_fmt(mcp.get('p50_ms'), 1)} / {_fmt(mcp.get('p95_ms'), 1)} | "
            f"{_fmt(t['ratios']['sqlite_vec_over_index_p50'])}x |"
        )
    rows += [
        "",
        "| tier | cold: first search | cold: index p50 / p95 | cold: first recall() "
        "| cold: recall() p50 / p95 | reading the file once |",
        "|---|---|---|---|---|---|",
    ]
    for name, t in out["tiers"].items():
        c = _cold_cells(t)
        rows.append(
            f"| {name} | {c['first_search']} ms | {c['index_p50']} / {c['index_p95']} | "
            f"{c['first_recall']} ms | {c['recall_p50']} / {c['recall_p95']} | {c['prime_s']} s |"
        )
    return rows


def render_markdown(out: dict[str, Any]) -> str:
    """The main table, the cost curve and the other figures as Markdown (for docs)."""
    rows = _markdown_tier_tables(out) if out["tiers"] else []
    if out.get("concurrency"):
        rows += ["", *concurrency.render_markdown(out["concurrency"])]
    if out.get("realtext"):
        rows += ["", *realtext_tier.render_markdown(out["realtext"])]
    if out.get("curve"):
        rows += ["", "| N (one namespace) | index p50 / p95 ms | sqlite-vec p50 ms | numpy p50 ms "
                 "| index tables B/row | plain vec0 B/row |", "|---|---|---|---|---|---|"]
        for pt in out["curve"]:
            rows.append(
                f"| {pt['n']:,} | {pt['index']['p50_ms']:.2f} / {pt['index']['p95_ms']:.2f} | "
                f"{pt['sqlite_vec']['p50_ms']:.2f} | {pt['numpy']['p50_ms']:.2f} | "
                f"{pt['index_bytes_per_row']:,.0f} | {pt['sqlite_vec_bytes_per_row']:,.0f} |"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.embed_contention:
        from . import contention

        out = contention.run(quick=args.quick, say=None if args.quiet else print)
        print(contention.render(out))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(out, indent=2, default=float))
        return 0
    if args.hooks:
        from .hooks import render_hooks, run_hooks_bench

        n = 5 if args.quick else 20
        out = run_hooks_bench(first_runs=max(2, n // 4), warm_runs=n, quiet=args.quiet)
        print(render_hooks(out))
    else:
        out = run(args, argv)
        print(render(out))
    if args.markdown and not args.hooks:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(render_markdown(out) + "\n")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2, default=float))
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
