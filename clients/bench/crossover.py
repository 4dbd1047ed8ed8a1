"""Where the exact scan stops beating the code index: search p50 by namespace size.

    python -m memrl_clients.bench.crossover --sizes 1000,3000,10000,30000,100000
    python -m memrl_clients.bench.crossover --data realtext --sizes 3000,10000,20000,30000

For each size, one namespace of clustered unit vectors (no model needed) is written
through `VectorIndex.add_many` into a fresh database, and the same queries are timed, one
after the other for each query (so a busy machine slows all three alike), by:

- *code index*: `VectorIndex.search` with the exact scan turned off (codes cached);
- *exact scan*: `VectorIndex.search` on the float vectors cached in memory (`floats.py`),
  with its coherence check against the database;
- *numpy*: a one-thread matrix-vector product (`kernels.matvec`) and a partial sort over
  the same float32 vectors in RAM (no database statement at all). Not `vectors @ q`: a
  multi-threaded BLAS leaves its threads spinning after each call, which steals the cores
  from the searches timed next (and its own calls stalled for 30-45 ms on a busy machine).

It prints the wall-clock p50s, their ratio, the mean CPU time of the process per search
(all its threads), the recall@k of the code index against the scan, and the
bytes per row the scan's cache holds. `EXACT_MAX_ROWS` in memrl/storage/sqlite/index.py
is chosen from this table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from memrl.storage.sqlite.connection import connect, write_transaction
from memrl.storage.sqlite.index import VectorIndex
from memrl.storage.sqlite.kernels import matvec
from memrl.storage.sqlite.migrations import apply_migrations


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """Unit vectors around random centroids with a shared offset (like sentence embeddings)."""
    rng = np.random.default_rng(seed)
    common = _unit(rng.standard_normal(dim))
    cents = _unit(_unit(rng.standard_normal((max(1, n // 100), dim))) + 0.6 * common)
    lab = rng.integers(0, cents.shape[0], size=n)
    noise = rng.standard_normal((n, dim)) * (rng.uniform(0.6, 1.6, (n, 1)) / np.sqrt(dim))
    return _unit(cents[lab] + noise)


def real_sentences(n: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    """The real-text tier's vectors (clients/bench/realtext_tier.py, its cache): the first
    `queries` sentences as queries, the next n stored. The scan's first pass
    (projection.py) engages on these; it does not on `clustered`'s isotropic noise."""
    from memrl import load_embedder

    from . import realtext, realtext_tier

    cache = realtext_tier.default_cache_dir()
    corpus = realtext.load_corpus("full", cache)
    if n + queries > len(corpus):
        raise SystemExit(f"the real-text corpus has {len(corpus)} sentences: at most "
                         f"{len(corpus) - queries} rows with {queries} queries")
    qs, stored, _ = realtext_tier.queries_and_stored(load_embedder(query_cache=0), corpus, n, queries, cache)
    return np.ascontiguousarray(stored, np.float32), np.ascontiguousarray(qs, np.float32)


def measure(
    n: int, dim: int, queries: int, k: int, workdir: Path, data_kind: str = "clustered"
) -> dict[str, Any]:
    if data_kind == "realtext":
        data, qs = real_sentences(n, queries)
        dim = data.shape[1]
    else:
        data = clustered(n, dim, seed=n)
        rng = np.random.default_rng(n + 1)
        qs = _unit(data[rng.integers(0, n, queries)] + rng.standard_normal((queries, dim)) * 0.04)
    path = workdir / f"crossover-{n}.db"
    conn = connect(path)
    coded = VectorIndex(dim, exact_max_rows=0)
    scan = VectorIndex(dim, exact_max_rows=n, max_exact_cached_rows=n)
    try:
        apply_migrations(conn, dim)
        for start in range(0, n, 5000):
            with write_transaction(conn):
                coded.add_many(
                    conn, [(i + 1, "ns", data[i]) for i in range(start, min(n, start + 5000))]
                )
        t0 = time.perf_counter()
        coded.search(conn, qs[0], "ns", k)
        first_code = time.perf_counter() - t0
        t0 = time.perf_counter()
        scan.preload(conn, "ns")  # what the scan's first search (the second in a process) reads
        first_scan = time.perf_counter() - t0
        assert scan.floats.sizes() == {"ns": n} and not scan.cache.sizes()
        mat = np.ascontiguousarray(data)
        t_code, t_scan, t_np = [], [], []
        c_code, c_scan, c_np = [], [], []
        hits = 0
        clock, cpu = time.perf_counter, time.process_time
        for q in qs:
            t0, u0 = clock(), cpu()
            got_code = coded.search(conn, q, "ns", k)
            t1, u1 = clock(), cpu()
            got_scan = scan.search(conn, q, "ns", k)
            t2, u2 = clock(), cpu()
            sims = matvec(mat, q)
            top = np.argpartition(-sims, k)[:k]
            top = top[np.argsort(-sims[top], kind="stable")]
            t3, u3 = clock(), cpu()
            t_code.append(t1 - t0)
            t_scan.append(t2 - t1)
            t_np.append(t3 - t2)
            c_code.append(u1 - u0)
            c_scan.append(u2 - u1)
            c_np.append(u3 - u2)
            hits += len({m for m, _ in got_code} & {m for m, _ in got_scan})
        rows = scan.floats._entries[next(iter(scan.floats._entries))]._rows
        # the arrays of every row (vectors, ids, norms, and a projection's heads and rests)
        entry_bytes = sum(a.nbytes for a in vars(rows).values() if isinstance(a, np.ndarray))
        head_d = rows.projection.d if rows.projection is not None else 0
    finally:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)

    def p50(ts: list[float]) -> float:
        return round(float(np.median(ts)) * 1e3, 3)

    return {
        "n": n,
        "code_p50_ms": p50(t_code),
        "scan_p50_ms": p50(t_scan),
        "numpy_p50_ms": p50(t_np),
        "code_over_scan": round(p50(t_code) / p50(t_scan), 2),
        "code_cpu_ms": round(float(np.mean(c_code)) * 1e3, 3),
        "scan_cpu_ms": round(float(np.mean(c_scan)) * 1e3, 3),
        "numpy_cpu_ms": round(float(np.mean(c_np)) * 1e3, 3),
        "first_code_ms": round(first_code * 1e3, 1),
        "first_scan_ms": round(first_scan * 1e3, 1),
        "recall_code_vs_scan": round(hits / (k * queries), 4),
        "scan_bytes_per_row": round(entry_bytes / n, 1),
        "scan_head_dims": head_d,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="1000,3000,10000,30000,100000")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--data", choices=("clustered", "realtext"), default="clustered",
                   help="clustered unit vectors (no model), or real sentences' vectors from "
                        "the real-text tier's cache (embedded once if missing)")
    args = p.parse_args(argv)
    print("| rows | code index p50 ms | exact scan p50 ms | numpy p50 ms | index / scan | "
          "CPU mean ms: index / scan / numpy | loading: codes / vectors ms | "
          "recall@k index vs scan | scan B/row | scan's first pass: d |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="memrl-crossover-") as tmp:
        for n in (int(float(x)) for x in args.sizes.split(",")):
            r = measure(n, args.dim, args.queries, args.k, Path(tmp), args.data)
            print(f"| {n:,} | {r['code_p50_ms']} | {r['scan_p50_ms']} | {r['numpy_p50_ms']} | "
                  f"{r['code_over_scan']} | {r['code_cpu_ms']} / {r['scan_cpu_ms']} / "
                  f"{r['numpy_cpu_ms']} | {r['first_code_ms']} / {r['first_scan_ms']} | "
                  f"{r['recall_code_vs_scan']} | {r['scan_bytes_per_row']} | "
                  f"{r['scan_head_dims'] or 'none'} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
