"""What the inspection schema (PostgreSQL migration m002) costs the outcome path.

    python -m memrl_clients.bench.pg_inspect postgresql://... [--memories 100000]

m002 indexes memories by (namespace, q, id) and (namespace, n_updates, id) so the memory
list of `memrl ui` reads a page, not a namespace. An index covering q makes the Q update of
an outcome a non-HOT update: every index of the row gets a new entry. This measures
`Memory.report` (k credited memories per report) on three schemas holding the same rows:
one as migrated, one without the n_updates index, one without both (the Q updates then
HOT, as before m002).
The runs alternate between the schemas in rounds, so a change of the machine's load hits
both alike. Each schema is created for the run and dropped after it; the rows are loaded
by SQL, without the intents' HNSW index (a report reads and writes no intent).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import numpy as np

from memrl import Memory, MemoryConfig
from memrl.storage.postgres import PostgresStorage

from ..pgschema import fresh_schema

DIM = 8
MODEL = "bench-inspect"
NS = "bench"
# schema -> the m002 indexes it drops
VARIANTS = {
    "m002": (),
    "q_only": ("memories_by_updates",),
    "no_q_index": ("memories_by_q", "memories_by_updates"),
}
LABELS = {
    "m002": "m002 (Q and n_updates indexed)",
    "q_only": "m002 without the n_updates index",
    "no_q_index": "m002 without both (Q updates HOT)",
}


class _NoEmbedder:
    """Reports embed nothing; Memory wants an embedder all the same."""

    model_id, dim = MODEL, DIM

    def embed(self, texts: list[str]) -> np.ndarray:
        raise AssertionError("a report does not embed")

    def embed_query(self, text: str) -> np.ndarray:
        raise AssertionError("a report does not embed")


def _admin(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True)


def build(url: str, memories: int, tasks: int, k: int) -> None:
    """`memories` memories (one intent each) and `tasks` recalled tasks, each with k
    injected memories spread over the namespace, loaded by SQL."""
    PostgresStorage(url, DIM, MODEL).close()  # migrate
    now = time.time()
    with _admin(url) as conn:
        conn.execute("DROP INDEX intents_embedding")  # no search here; a report never writes intents
        conn.execute("INSERT INTO namespaces(namespace, model_id) VALUES (%s, %s)", (NS, MODEL))
        conn.execute(
            "INSERT INTO intents(namespace, key, text, created_at, embedding) SELECT %s, "
            "'intent ' || g, 'intent ' || g, %s, array_fill(1.0 + g %% 7, ARRAY[%s])::vector "
            "FROM generate_series(1, %s) g",
            (NS, now, DIM, memories),
        )
        conn.execute(
            "INSERT INTO memories(namespace, intent_id, intent, experience, kind, q, n_updates, "
            "created_at, updated_at, content_hash, model_id) SELECT namespace, id, text, "
            "'Task: ' || text || '. Steps: 1) reproduce; 2) read the failing path; 3) fix.', "
            "(ARRAY['success', 'failure', 'note'])[1 + id %% 3], tanh(random() - 0.5), "
            "(random() * 30)::int, created_at + id, created_at, md5(text), %s FROM intents",
            (MODEL,),
        )
        conn.execute(
            "INSERT INTO tasks(task_id, namespace, query, model_id, created_at, k1, k2, lam, "
            "delta, epsilon) SELECT 'b-' || g, %s, 'query ' || g, %s, %s + g, 3, %s, 0.5, 0, 0 "
            "FROM generate_series(1, %s) g",
            (NS, MODEL, now, k, tasks),
        )
        conn.execute(
            "INSERT INTO task_candidates(task_id, memory_id, rank, similarity, q, score, injected) "
            "SELECT 'b-' || g, 1 + ((g::bigint * 7919 + j * 104729) %% %s), j, 0.5, 0, 0, true "
            "FROM generate_series(1, %s) g, generate_series(0, %s) j",
            (memories, tasks, k - 1),
        )
        conn.execute("VACUUM ANALYZE")


def _hot(url: str) -> tuple[int, int]:
    with _admin(url) as conn:
        row = conn.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
            "WHERE relname = 'memories' AND schemaname = current_schema()"
        ).fetchone()
    return int(row[0]), int(row[1])


def run(dsn: str, memories: int, reports: int, rounds: int, k: int) -> dict[str, Any]:
    tasks = reports * rounds
    urls = {}
    for name, dropped in VARIANTS.items():
        schema = f"bench_inspect_{name}"
        urls[name] = fresh_schema(dsn, schema)
        t0 = time.perf_counter()
        build(urls[name], memories, tasks, k)
        with _admin(urls[name]) as conn:
            for index in dropped:
                conn.execute(f"DROP INDEX {index}")
        print(f"  built {schema} in {time.perf_counter() - t0:.0f} s", flush=True)
    stores = {n: Memory(PostgresStorage(u, DIM, MODEL), _NoEmbedder(), MemoryConfig(alpha=0.3))
              for n, u in urls.items()}
    times: dict[str, list[float]] = {n: [] for n in urls}
    hot0 = {n: _hot(u) for n, u in urls.items()}
    try:
        names = list(stores)
        for r in range(rounds):
            order = names[r % len(names):] + names[: r % len(names)]  # each goes first in turn
            for name, memory in ((n, stores[n]) for n in order):
                for i in range(r * reports + 1, (r + 1) * reports + 1):
                    t0 = time.perf_counter()
                    memory.report(f"b-{i}", success=i % 3 != 0)
                    times[name].append(time.perf_counter() - t0)
            print(f"  round {r + 1}/{rounds} done", flush=True)
    finally:
        for memory in stores.values():
            memory.close()
    time.sleep(1.5)  # cumulative statistics are flushed at most once a second
    out: dict[str, Any] = {"memories": memories, "reports": tasks, "k": k,
                           "load": os.getloadavg()[0]}
    for name, url in urls.items():
        upd, hot = (a - b for a, b in zip(_hot(url), hot0[name]))
        ms = sorted(t * 1000 for t in times[name])
        out[name] = {
            "p50_ms": statistics.median(ms),
            "p95_ms": ms[int(0.95 * (len(ms) - 1))],
            "reports_per_s": len(ms) / (sum(ms) / 1000),
            "hot_share": hot / upd if upd else None,
        }
    for url in urls.values():
        schema = url.split("search_path%3D", 1)[1].split("%2C", 1)[0]
        with _admin(dsn) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dsn", help="a postgresql:// URL of a database with pgvector")
    p.add_argument("--memories", type=int, default=100_000)
    p.add_argument("--reports", type=int, default=500, help="reports per schema per round")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--k", type=int, default=3, help="credited memories per report")
    args = p.parse_args()
    out = run(args.dsn, args.memories, args.reports, args.rounds, args.k)
    print(f"\n{out['memories']:,} memories, {out['reports']:,} reports per schema, "
          f"{out['k']} credited each; load {out['load']:.1f}")
    print("| schema | report p50 ms | p95 ms | reports/s | HOT share of Q updates |")
    print("|---|---|---|---|---|")
    for name, label in LABELS.items():
        o = out[name]
        hot = "n/a" if o["hot_share"] is None else f"{o['hot_share']:.2f}"
        print(f"| {label} | {o['p50_ms']:.2f} | {o['p95_ms']:.2f} | {o['reports_per_s']:.0f} | {hot} |")


if __name__ == "__main__":
    main()
