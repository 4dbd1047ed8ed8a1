"""The PostgreSQL tier of `memrl-bench` (`--postgres URL`): the same measurements as the
SQLite tiers of the run, on a database of the team backend, plus its design choices.

    memrl-bench --postgres postgresql://...            100k tier, design choices, 64 agents x 60 s
    memrl-bench --quick --postgres postgresql://...    10k tier, 16 agents x 10 s (CI)
    memrl-bench --postgres ... --pg-tiers 100k,1m      1M too (slow: the HNSW build takes long)

Each tier lives in a schema of its own (`bench_<size>`), kept between runs and reused when
it holds the same data. Memories are bulk-loaded with COPY (vectors scattered around the
real model's embeddings, as the SQLite bulk tiers) and the HNSW index is built after the
load, the way an operator would load a large import. Recall, outcome updates and the
agents then go through `Memory` and the backend's own code.

Design measurements (`--pg-design`, on by default outside --quick):
- phase A as the protocol's two calls (`nearest_intents` then `members`) against one SQL
  statement (a CTE for the k1 intents, a LATERAL join for their members);
- `hnsw.ef_search` against recall@10 and latency;
- `hnsw.iterative_scan` off / relaxed_order / strict_order on small namespaces sharing the
  table (rows returned, recall, latency);
- with `--pg-hnsw`, the index built with other m / ef_construction (rebuilds: slow).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from memrl import Memory, MemoryConfig, retrieval
from memrl.storage.postgres import PostgresStorage
from memrl.storage.postgres.backend import PostgresTx

from ..pgschema import fresh_schema, schema_url
from . import agents as agent_run
from . import build, measure

SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}
SMALL_NAMESPACES = 10  # the filter test: namespaces of 1k intents sharing the table
SMALL_SIZE = 1_000
MAIN = "bench"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--postgres", default=os.environ.get("MEMRL_BENCH_POSTGRES"),
                   help="a postgresql:// URL: also measure the PostgreSQL backend there "
                   "(env MEMRL_BENCH_POSTGRES)")
    p.add_argument("--pg-tiers", help="comma list of 10k, 100k, 1m (default 100k; --quick 10k)")
    p.add_argument("--agents", type=int, help="concurrent agents (default 64; --quick 16)")
    p.add_argument("--agent-seconds", type=float, help="how long they report (default 60; --quick 10)")
    p.add_argument("--pg-design", action=argparse.BooleanOptionalAction, default=None,
                   help="the design measurements (default: on, off with --quick)")
    p.add_argument("--pg-hnsw", action="store_true", help="also rebuild the index with other m / ef_construction")


def finish_arguments(args: argparse.Namespace) -> None:
    args.pg_tiers = [t.strip() for t in (args.pg_tiers or ("10k" if args.quick else "100k")).split(",")]
    for t in args.pg_tiers:
        if t not in SIZES:
            raise SystemExit(f"memrl-bench: unknown --pg-tiers entry {t!r}; choose from {', '.join(SIZES)}")
    args.agents = args.agents or (16 if args.quick else 64)
    args.agent_seconds = args.agent_seconds or (10.0 if args.quick else 60.0)
    if args.pg_design is None:
        args.pg_design = not args.quick


def _admin(dsn: str) -> Any:
    import psycopg

    return psycopg.connect(dsn, autocommit=True)


# -- building a tier --------------------------------------------------------------------------


class PgTier:
    """A bulk-loaded tier: `n` intents (one memory each) in namespace `bench`, and
    SMALL_NAMESPACES namespaces of SMALL_SIZE beside it."""

    def __init__(self, name: str, n: int, dsn: str) -> None:
        self.name, self.n, self.dsn = name, n, dsn
        self.schema = f"bench_{name}"
        self.url = schema_url(dsn, self.schema)
        self.vectors: np.ndarray = np.zeros((0, 0), dtype=np.float32)
        self.ns_of: np.ndarray = np.zeros(0, dtype=np.int64)  # 0 = main, 1.. = small
        self.ids: np.ndarray = np.zeros(0, dtype=np.int64)
        self.build: dict[str, Any] = {}


def build_tier(tier: PgTier, anchors: np.ndarray, anchor_texts: Sequence[str], model_id: str,
               say: Callable[[str], None]) -> None:
    total = tier.n + SMALL_NAMESPACES * SMALL_SIZE
    vecs, lab = build.bulk_vectors(anchors, total, seed=23 + tier.n)
    ns_of = np.zeros(total, dtype=np.int64)
    ns_of[tier.n:] = 1 + np.arange(SMALL_NAMESPACES * SMALL_SIZE) // SMALL_SIZE
    tier.vectors, tier.ns_of = vecs, ns_of
    stamp = f"{total}:{model_id}:{float(vecs[::997].sum()):.6f}"
    if _stamp(tier) == stamp:
        tier.ids = _intent_ids(tier)
        tier.build = {"cached": True}
        say(f"  reusing schema {tier.schema}")
        return
    url = fresh_schema(tier.dsn, tier.schema)
    PostgresStorage(url, anchors.shape[1], model_id).close()  # migrate
    t0 = time.perf_counter()
    with _admin(url) as conn:
        from pgvector.psycopg import register_vector

        register_vector(conn)
        conn.execute("DROP INDEX intents_embedding")
        _copy_rows(conn, vecs, lab, ns_of, anchor_texts, model_id, say)
        load_s = time.perf_counter() - t0
        say(f"  building the HNSW index over {total} vectors ...")
        t1 = time.perf_counter()
        _create_index(conn, 16, 64)
        index_s = time.perf_counter() - t1
        conn.execute("ANALYZE")
        conn.execute("INSERT INTO memrl_meta(key, value) VALUES ('bench_stamp', %s)", (stamp,))
    tier.ids = _intent_ids(tier)
    tier.build = {"cached": False, "copy_s": round(load_s, 1), "hnsw_build_s": round(index_s, 1)}


def _namespace(j: int) -> str:
    return MAIN if j == 0 else f"bench-small-{j - 1:02d}"


def _copy_rows(conn: Any, vecs: np.ndarray, lab: np.ndarray, ns_of: np.ndarray,
               anchor_texts: Sequence[str], model_id: str, say: Callable[[str], None]) -> None:
    now = time.time()
    namespaces = sorted({_namespace(int(j)) for j in np.unique(ns_of)})
    for ns in namespaces:
        conn.execute("INSERT INTO namespaces(namespace, model_id) VALUES (%s, %s)", (ns, model_id))
    with conn.cursor().copy(
        "COPY intents (namespace, key, text, created_at, embedding) FROM STDIN"
    ) as copy:
        for i in range(len(vecs)):
            text = f"{anchor_texts[lab[i]]} (case {i})"
            copy.write_row((_namespace(int(ns_of[i])), retrieval.intent_key(text), text, now, vecs[i]))
            if i % 200_000 == 0:
                say(f"  copied {i}/{len(vecs)} intents")
    conn.execute(
        "INSERT INTO memories(namespace, intent_id, intent, experience, kind, q, created_at, "
        "updated_at, content_hash, model_id) SELECT namespace, id, text, "
        "'Task: ' || text || '. Steps: 1) reproduce; 2) read the failing path; 3) fix; 4) test.', "
        "CASE WHEN id %% 8 = 0 THEN 'failure' ELSE 'success' END, 0, created_at, created_at, "
        "md5(text), %s FROM intents ORDER BY id",
        (model_id,),
    )


def _create_index(conn: Any, m: int, ef_construction: int) -> None:
    conn.execute("SET maintenance_work_mem = '512MB'")
    conn.execute(
        "CREATE INDEX intents_embedding ON intents USING hnsw (embedding vector_cosine_ops) "
        f"WITH (m = {int(m)}, ef_construction = {int(ef_construction)})"
    )


def _stamp(tier: PgTier) -> str | None:
    try:
        with _admin(tier.url) as conn:
            row = conn.execute("SELECT value FROM memrl_meta WHERE key = 'bench_stamp'").fetchone()
    except Exception:  # noqa: BLE001 - no schema yet: build it
        return None
    return None if row is None else str(row[0])


def _intent_ids(tier: PgTier) -> np.ndarray:
    with _admin(tier.url) as conn:
        rows = conn.execute("SELECT id FROM intents ORDER BY id").fetchall()
    return np.asarray([r[0] for r in rows], dtype=np.int64)


# -- measurements -------------------------------------------------------------------------------


def exact_top(tier: PgTier, qvecs: np.ndarray, ns: int, k: int) -> list[list[int]]:
    rows = np.flatnonzero(tier.ns_of == ns)
    mat, ids = tier.vectors[rows], tier.ids[rows]
    out = []
    for q in qvecs:
        sims = mat @ (q / np.linalg.norm(q))
        top = np.argsort(-sims, kind="stable")[:k]
        out.append(ids[top].tolist())
    return out


@contextmanager
def session(storage: Any, **settings: Any) -> Any:
    """A read transaction of the backend with session settings changed for its duration."""
    with storage.read() as tx, tx.conn.transaction():
        for name, value in settings.items():
            tx.conn.execute(f"SET LOCAL {name} = {value}")
        yield tx


def search_quality(storage: Any, tier: PgTier, qvecs: np.ndarray, ns: int,
                   budget: float, **settings: Any) -> dict[str, Any]:
    """nearest_intents (k = 10) latency, rows returned and recall@5/@10 against exact."""
    truth = exact_top(tier, qvecs, ns, 10)
    name = _namespace(ns)
    with session(storage, **settings) as tx:
        times, got = measure.timed(lambda i: tx.nearest_intents(qvecs[i], name, 10), len(qvecs), budget)
    ids = [[iid for iid, _ in g] for g in got]
    return {
        **measure.summary(times),
        "mean_rows": round(float(np.mean([len(g) for g in got])), 2),
        "recall_at_5": measure.recall_at(ids, truth[: len(ids)], 5),
        "recall_at_10": measure.recall_at(ids, truth[: len(ids)], 10),
    }


ONE_STATEMENT = """
WITH near AS (
    SELECT id, embedding <=> %(q)s AS d FROM intents WHERE namespace = %(ns)s
    ORDER BY embedding <=> %(q)s LIMIT %(k)s
), top AS (
    SELECT id, 1 - d AS sim FROM near WHERE 1 - d > %(gate)s ORDER BY d, id DESC LIMIT %(k1)s
)
SELECT top.id, top.sim, m.id, m.q FROM top CROSS JOIN LATERAL (
    SELECT id, namespace, intent_id, intent, experience, kind, q, n_updates, last_reward,
           created_at, updated_at, content_hash, metadata, model_id, source_task_id
    FROM memories WHERE intent_id = top.id ORDER BY q DESC, id DESC LIMIT %(cap)s
) m
"""


def phase_a_ways(storage: PostgresStorage, qvecs: np.ndarray, budget: float,
                 config: MemoryConfig) -> dict[str, Any]:
    """Phase A (k1 intents above the gate, their members) both ways, on the same queries."""
    k1, cap, gate = config.k1, retrieval.PER_INTENT, -1.0

    def two_calls(tx: PostgresTx, q: np.ndarray) -> list[int]:
        intents = retrieval.phase_a(tx.nearest_intents(q, MAIN, k1), gate, k1)
        return sorted(m.id for m in tx.members([i for i, _ in intents], cap))

    def one_statement(tx: PostgresTx, q: np.ndarray) -> list[int]:
        unit = (q / np.linalg.norm(q)).astype(np.float32)
        rows = tx.conn.execute(ONE_STATEMENT, {"q": unit, "ns": MAIN, "k": k1 + 16, "gate": gate,
                                               "k1": k1, "cap": cap}, binary=True).fetchall()
        return sorted(int(r[2]) for r in rows)

    out: dict[str, Any] = {}
    pools: dict[str, list[list[int]]] = {}
    ways: dict[str, Callable[[PostgresTx, np.ndarray], list[int]]] = {
        "two_calls": two_calls, "one_statement": one_statement,
    }
    for label, fn in ways.items():
        with storage.read() as tx:
            fn(tx, qvecs[0])  # warm

            def call(i: int, fn: Any = fn, tx: PostgresTx = tx) -> list[int]:
                return list(fn(tx, qvecs[i]))

            times, got = measure.timed(call, len(qvecs), budget)
        out[label] = measure.summary(times)
        pools[label] = got
    n = min(len(pools["two_calls"]), len(pools["one_statement"]))
    out["same_pool"] = round(
        sum(a == b for a, b in zip(pools["two_calls"][:n], pools["one_statement"][:n])) / n, 3
    )
    return out


def design(storage: PostgresStorage, tier: PgTier, qvecs: np.ndarray, budget: float,
           config: MemoryConfig, hnsw: bool, say: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    say("  phase A: two calls against one statement ...")
    out["phase_a"] = phase_a_ways(storage, qvecs, budget, config)
    say("  hnsw.ef_search ...")
    out["ef_search"] = {
        str(ef): search_quality(storage, tier, qvecs, 0, budget / 2, **{"hnsw.ef_search": ef})
        for ef in (40, 100, 200)
    }
    say("  hnsw.iterative_scan on small namespaces ...")
    out["iterative_scan"] = scan_modes(storage, tier, qvecs, budget)
    out["iterative_scan"]["plan"] = _plan(storage, qvecs[0], _namespace(1))
    say("  hnsw.iterative_scan with the HNSW index forced on small namespaces ...")
    out["iterative_scan_forced"] = forced_scan_modes(storage, tier, qvecs, budget)
    if hnsw:
        out["hnsw_params"] = hnsw_params(storage, tier, qvecs, budget, say)
    return out


def scan_modes(storage: Any, tier: PgTier, qvecs: np.ndarray,
               budget: float) -> dict[str, Any]:
    """Each iterative_scan mode over the small namespaces (rows returned, recall, p50)."""
    small = 1 + np.arange(len(qvecs)) % SMALL_NAMESPACES
    out: dict[str, Any] = {}
    for mode in ("off", "relaxed_order", "strict_order"):
        per_ns = [
            search_quality(storage, tier, qvecs[small == j][:20], int(j), budget / 10,
                           **{"hnsw.iterative_scan": mode})
            for j in range(1, SMALL_NAMESPACES + 1)
        ]
        out[mode] = {
            "p50_ms": round(float(np.median([r["p50_ms"] for r in per_ns])), 3),
            "mean_rows": round(float(np.mean([r["mean_rows"] for r in per_ns])), 2),
            "recall_at_10": round(float(np.mean([r["recall_at_10"] for r in per_ns])), 4),
        }
    return out


def forced_scan_modes(storage: PostgresStorage, tier: PgTier, qvecs: np.ndarray,
                      budget: float) -> dict[str, Any]:
    """scan_modes with the namespace's btree paths dropped inside a transaction that is
    rolled back: the planner must search a 1k-intent namespace through the HNSW index, as
    it may for a namespace whose share of the table it misjudges."""
    import psycopg

    with storage.read() as tx:
        out: dict[str, Any] = {}
        try:
            with tx.conn.transaction():
                tx.conn.execute("ALTER TABLE intents DROP CONSTRAINT intents_namespace_key_key")
                tx.conn.execute("DROP INDEX intents_namespace")
                out = scan_modes(storage_on(storage, tx.conn), tier, qvecs, budget)
                out["plan"] = _plan(storage_on(storage, tx.conn), qvecs[0], _namespace(1))
                raise psycopg.Rollback()
        except psycopg.Rollback:
            pass
    return out


class storage_on:  # noqa: N801 - a PostgresStorage whose reads use one given connection
    def __init__(self, storage: PostgresStorage, conn: Any) -> None:
        self._s, self._conn = storage, conn

    @contextmanager
    def read(self) -> Any:
        yield PostgresTx(self._s, self._conn, writing=False)


def _plan(storage: Any, q: np.ndarray, ns: str) -> str:
    """The scan PostgreSQL picks for a small namespace's search (index name)."""
    with storage.read() as tx:
        rows = tx.conn.execute(
            "EXPLAIN SELECT id FROM intents WHERE namespace = %s ORDER BY embedding <=> %s LIMIT 26",
            (ns, (q / np.linalg.norm(q)).astype(np.float32)),
        ).fetchall()
    return " | ".join(r[0].strip() for r in rows if "Scan" in r[0])


def hnsw_params(storage: PostgresStorage, tier: PgTier, qvecs: np.ndarray, budget: float,
                say: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m, efc in ((16, 64), (32, 128), (8, 32)):
        say(f"    rebuilding the index with m={m}, ef_construction={efc} ...")
        with _admin(tier.url) as conn:
            conn.execute("DROP INDEX intents_embedding")
            t0 = time.perf_counter()
            _create_index(conn, m, efc)
            built = time.perf_counter() - t0
        res = search_quality(storage, tier, qvecs, 0, budget / 2)
        out[f"m{m}_efc{efc}"] = {"build_s": round(built, 1), **res}
    with _admin(tier.url) as conn:  # leave the tier with the shipped parameters
        conn.execute("DROP INDEX intents_embedding")
        _create_index(conn, 16, 64)
    return out


def reset_learning(conn: Any) -> None:
    """A reused tier starts each run as loaded: no ledger, and every memory back to Q 0
    with no outcome and no evidence (the credited successes and failures, and the fast EMA
    of change detection at Q), so the run's learning starts where the last one's did."""
    conn.execute("TRUNCATE memory_feedback, task_candidates, tasks")
    conn.execute(build.RESET_LEARNING)


def measure_tier(tier: PgTier, embedder: Any, config: MemoryConfig, qtexts: list[str],
                 qvecs: np.ndarray, args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    storage = PostgresStorage(tier.url, embedder.dim, embedder.model_id)
    try:
        with _admin(tier.url) as conn:
            reset_learning(conn)
            size = conn.execute("SELECT pg_total_relation_size('intents') + "
                                "pg_total_relation_size('memories')").fetchone()[0]
        res: dict[str, Any] = {"memories": int(len(tier.ids)), "main_namespace": tier.n,
                               "db_mb": round(size / 2**20, 1), **tier.build}
        say(f"[pg-{tier.name}] index alone ...")
        res["index"] = search_quality(storage, tier, qvecs, 0, args.budget)
        say(f"[pg-{tier.name}] full recall in-process ...")
        memory = Memory(storage, embedder, config)
        res["recall_inprocess"], task_ids = measure.inprocess_recall(
            memory, qtexts, [MAIN] * len(qtexts), args.budget
        )
        for i in range(max(0, args.report_tasks - len(task_ids))):
            task_ids.append(str(memory.recall(qtexts[i % len(qtexts)], MAIN).task_id))
        say(f"[pg-{tier.name}] outcome updates ({len(task_ids)} reports) ...")
        res["outcome_updates"] = measure.outcome_updates(memory, task_ids)
        if args.pg_design:
            res["design"] = design(storage, tier, qvecs, args.budget, config, args.pg_hnsw, say)
    finally:
        storage.close()
    return res


def agents_both(args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    """The same agents workload on PostgreSQL and on a SQLite file, each checked by replay."""
    out: dict[str, Any] = {}
    url = fresh_schema(args.postgres, "bench_agents")
    say(f"{args.agents} agents x {args.agent_seconds:.0f} s on PostgreSQL ...")
    out["postgres"] = agent_run.run_agents(url, args.agents, args.agent_seconds)
    path = args.workdir / f"agents-{os.getpid()}.db"
    build.fresh(path)
    say(f"{args.agents} agents x {args.agent_seconds:.0f} s on SQLite ...")
    try:
        out["sqlite"] = agent_run.run_agents(str(path), args.agents, args.agent_seconds)
    finally:
        build.fresh(path)
    return out


def run(args: argparse.Namespace, embedder: Any, anchors: np.ndarray, anchor_texts: Sequence[str],
        qtexts: list[str], qvecs: np.ndarray, config: MemoryConfig,
        say: Callable[[str], None]) -> dict[str, Any]:
    """Every PostgreSQL measurement of the run."""
    out: dict[str, Any] = {"tiers": {}}
    with _admin(args.postgres) as conn:
        out["server"] = conn.execute("SELECT version()").fetchone()[0].split(",")[0]
        out["pgvector"] = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    for name in args.pg_tiers:
        tier = PgTier(name, SIZES[name], args.postgres)
        say(f"[pg-{name}] building or reusing schema {tier.schema} ...")
        build_tier(tier, anchors, anchor_texts, embedder.model_id, say)
        out["tiers"][name] = measure_tier(tier, embedder, config, qtexts, qvecs, args, say)
    out["agents"] = agents_both(args, say)
    return out


