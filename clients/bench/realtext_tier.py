"""The real-text tier: the index's recall and speed on real sentences, against exact search.

The other tiers' texts are templated (and the bulk tiers' vectors are those embeddings plus
Gaussian noise): well-separated clusters, the easiest case for one-bit sign codes. Here the
first `queries` sentences of the real-text corpus (`realtext`) are the queries and the next
`n` are stored, all in one namespace, through `VectorIndex.add_many` (rows keyed by intent
id, 1..n) on a fresh SQLite file whose schema the migrations created: only the index's
tables are filled (no intents or memories behind the rows; the index tables have no foreign
key to them). The queries are never stored.

Figures, at the index's default candidate budgets:

- recall@k (k = 5, 10) against exact numpy cosine search: overall, and restricted to the
  exact neighbours whose similarity is above a gate, since phase A drops the rest anyway:
  0.35 (the product's gate while a namespace is too small to calibrate) and the 80th
  percentile of pairwise similarity over 1,000 stored sentences (what calibration computes;
  the product then applies a floor of 0.2). A returned row counts as a true neighbour when
  its exact cosine reaches the k-th exact cosine less 1e-6, so a tie at the cut-off
  is not a miss.
- the largest gap between a returned similarity and the exact cosine of that row;
- search p50 / p95 of the index, of exact numpy (one thread, the vectors in RAM) and of
  `VectorIndex.search_vec0`: sqlite-vec's exact vec0 KNN over the same rows (the index's
  table of record) as the index runs it for small namespaces, k + 16 (`TIE_MARGIN`)
  neighbours from vec0 rescored by exact cosine from the stored float vectors; in wall
  clock and in CPU time of the process (the second survives a machine shared with other
  jobs far better);
- recall again with a quarter of the default candidate budgets: the headroom left.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from memrl.calibration import pairwise_quantile
from memrl.config import MemoryConfig
from memrl.storage.sqlite.connection import connect, write_transaction
from memrl.storage.sqlite.index import COARSE_FACTOR, VectorIndex
from memrl.storage.sqlite.migrations import apply_migrations

from . import build, embed_cache, realtext
from .measure import summary, timed

NAMESPACE = "realtext"
TIE_EPS = 1e-6
GATE_SAMPLE = 1_000
KS = (5, 10)
# The headroom check: the index again with a quarter of its default candidate budgets
# (rescore max(50, 10 k), coarse max(250, 5 rescore)), recall only.
QUARTER_BUDGETS = {"oversample": 10, "min_rescore": 50, "min_coarse": 250}


def exact_topk(vectors: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(row indices, cosines) of the k rows nearest to q, best first, ties by row. One
    thread, like the index (einsum, not BLAS): its CPU time is then its cost, where BLAS
    threads spinning on a busy machine made a 2,900-row search cost 7.6 ms of CPU."""
    sims = np.einsum("ij,j->i", vectors, q)
    k = min(k, len(sims))
    top = np.argpartition(-sims, k - 1)[:k]
    top = top[np.lexsort((top, -sims[top]))]
    return top, sims[top]


def query_recall(
    got: list[tuple[int, float]], truth_sims: np.ndarray, gate: float | None = None
) -> tuple[int, int]:
    """(true neighbours found, true neighbours wanted) for one query; with a gate, only
    the exact neighbours above it are wanted (and only returned rows above it count)."""
    cut = float(truth_sims[-1]) - TIE_EPS
    wanted = len(truth_sims) if gate is None else int(np.sum(truth_sims > gate))
    found = sum(1 for _, s in got if s >= cut and (gate is None or s > gate))
    return min(found, wanted), wanted


def build_index_db(path: Path, vectors: np.ndarray) -> VectorIndex:
    """A fresh database (schema by the migrations) whose index tables hold rows 1..n in
    one namespace (intent ids = row + 1); no intents or memories rows are written."""
    build.fresh(path)
    # the code index on every size: the exact scan of small namespaces would make recall 1
    index = VectorIndex(vectors.shape[1], exact_max_rows=0)
    conn = connect(path)
    try:
        apply_migrations(conn, index.dim)
        for start in range(0, len(vectors), 20_000):
            end = min(len(vectors), start + 20_000)
            with write_transaction(conn):
                index.add_many(conn, [(i + 1, NAMESPACE, vectors[i]) for i in range(start, end)])
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return index


def gates(vectors: np.ndarray, config: MemoryConfig) -> dict[str, float]:
    rng = np.random.default_rng(7)
    sample = vectors[rng.choice(len(vectors), min(GATE_SAMPLE, len(vectors)), replace=False)]
    return {"small": config.delta_small, "p80": round(pairwise_quantile(sample, 0.8), 4)}


def budgets(index: VectorIndex, n: int, k: int) -> dict[str, Any]:
    """The candidates the index keeps at this size, and which path searches (see
    `VectorIndex.search`: a namespace no larger than `rescore` goes to exact vec0 KNN,
    whose neighbours are rescored like the code path's)."""
    rescore = min(index.max_rescore, max(index.min_rescore, index.oversample * k), n)
    return {
        "rescore": rescore,
        "coarse": min(n, max(index.min_coarse, COARSE_FACTOR * rescore)),
        "path": "codes" if n > rescore else "vec0 (exact)",
    }


def default_cache_dir() -> Path:
    """Shared by every bench run and the tests (embedding is the slow part)."""
    return build.workdir_default() / "realtext-cache"


def embed_prefix(
    embedder: Any, corpus: realtext.Corpus, n: int, cache: Path,
    say: Callable[[str], None] | None = None,
) -> embed_cache.Embedded:
    """Vectors of the corpus's first n sentences. Whole cache chunks are embedded (the
    prefix rounded up to a multiple of `embed_cache.CHUNK`), so runs with different query
    and corpus counts share every chunk."""
    whole = min(len(corpus), -(-n // embed_cache.CHUNK) * embed_cache.CHUNK)
    emb = embed_cache.embed_cached(embedder, corpus.texts[:whole], cache, say)
    emb.vectors = emb.vectors[:n]
    return emb


def queries_and_stored(
    embedder: Any, corpus: realtext.Corpus, n: int, n_queries: int, cache: Path,
    say: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, embed_cache.Embedded]:
    """The tier's split of the corpus: its first `n_queries` sentences' vectors as queries
    (never stored), the next `n` stored; and the embedding's record."""
    emb = embed_prefix(embedder, corpus, n_queries + n, cache, say)
    return emb.vectors[:n_queries], emb.vectors[n_queries:], emb


def run(
    embedder: Any, n: int, n_queries: int, scope: str, workdir: Path, cache: Path,
    budget_s: float, say: Callable[[str], None],
) -> dict[str, Any]:
    """Embed (or reuse), store, search; returns the tier's figures."""
    t0 = time.perf_counter()
    corpus = realtext.load_corpus(scope, cache)
    corpus_s = time.perf_counter() - t0
    n = min(n, len(corpus) - n_queries)
    if n <= 0:
        raise ValueError(
            f"the {scope} real-text corpus has {len(corpus)} sentences: too few for "
            f"{n_queries} queries; lower --queries or choose --realtext-scope full"
        )
    say(f"[realtext] {len(corpus)} distinct sentences ({scope}); embedding {n_queries} + {n} ...")
    qvecs, vecs, emb = queries_and_stored(embedder, corpus, n, n_queries, cache, say)
    path = workdir / f"realtext-{n}.db"
    t0 = time.perf_counter()
    index = build_index_db(path, vecs)
    out: dict[str, Any] = {
        "stored": n, "queries": n_queries, "build_s": round(time.perf_counter() - t0, 2),
        "corpus": {
            "scope": scope, "distinct_sentences": len(corpus), "digest": corpus.digest,
            "load_s": round(corpus_s, 1), "used": corpus.composition(n_queries + n),
        },
        "embedding": {
            "embedded": emb.embedded, "cached": emb.cached,
            "seconds": round(emb.embed_seconds, 1),
            "texts_per_s": None if emb.texts_per_s is None else round(emb.texts_per_s, 1),
        },
        "gates": gates(vecs, MemoryConfig()),
        "budgets": {f"k{k}": budgets(index, n, k) for k in KS},
    }
    say(f"[realtext] searching {n_queries} queries over {n} sentences ...")
    try:
        out.update(_measure(index, path, vecs, qvecs, out["gates"], budget_s))
    finally:
        build.fresh(path)
    return out


def _measure(
    index: VectorIndex, path: Path, vecs: np.ndarray, qvecs: np.ndarray, gate: dict[str, float],
    budget_s: float,
) -> dict[str, Any]:
    conn = connect(path)
    res: dict[str, Any] = {"recall": {}, "index": {}}
    try:
        index.search(conn, qvecs[0], NAMESPACE, 5)  # loads the namespace's codes
        for k in KS:
            # every query is searched (recall needs them all); the time budget only applies
            # to the repeated timing below
            got = [index.search(conn, q, NAMESPACE, k) for q in qvecs]
            res["recall"][f"k{k}"] = _recall(got, vecs, qvecs, k, gate)
            res["index"].update(_timed(f"k{k}", partial(_search, index, conn, qvecs, k),
                                       len(qvecs), budget_s))
        res["sqlite_vec"] = _timed(
            "k5", lambda i: index.search_vec0(conn, qvecs[i], NAMESPACE, 5), len(qvecs),
            budget_s, min_n=5,
        )
        quarter = VectorIndex(vecs.shape[1], exact_max_rows=0, **QUARTER_BUDGETS)
        res["recall_quarter_budgets"] = {
            f"k{k}": _recall([quarter.search(conn, q, NAMESPACE, k) for q in qvecs], vecs, qvecs,
                             k, gate)
            for k in KS
        }
    finally:
        conn.close()
    res["numpy"] = _timed("k5", lambda i: exact_topk(vecs, qvecs[i], 5), len(qvecs), budget_s)
    for what in ("k5", "k5_cpu"):
        idx = res["index"][what]["p50_ms"]
        res[f"numpy_over_index_p50{what[2:]}"] = (
            round(res["numpy"][what]["p50_ms"] / idx, 2) if idx else None
        )
    return res


def _timed(
    name: str, fn: Callable[[int], Any], n: int, budget_s: float, min_n: int = 10
) -> dict[str, dict[str, float]]:
    """Wall-clock and CPU time per call (`name` and `name`_cpu summaries). The CPU time is
    the process's (every thread: numpy's BLAS threads count), what a call costs when the
    cores are not shared; on a busy machine the wall clock mostly measures the waiting."""
    cpu: list[float] = []

    def one(i: int) -> Any:
        c0 = time.process_time()
        out = fn(i)
        cpu.append(time.process_time() - c0)
        return out

    wall, _ = timed(one, n, budget_s, min_n)
    return {name: summary(wall), f"{name}_cpu": summary(cpu)}


def _search(
    index: VectorIndex, conn: Any, qvecs: np.ndarray, k: int, i: int
) -> list[tuple[int, float]]:
    return index.search(conn, qvecs[i], NAMESPACE, k)


def _recall(
    got: list[list[tuple[int, float]]], vecs: np.ndarray, qvecs: np.ndarray, k: int,
    gate: dict[str, float],
) -> dict[str, Any]:
    counts = {"all": [0, 0], **{name: [0, 0] for name in gate}}
    max_gap = 0.0
    for hits, q in zip(got, qvecs):
        _, truth_sims = exact_topk(vecs, q, k)
        exact = vecs[[m - 1 for m, _ in hits]] @ q
        max_gap = max(max_gap, float(np.max(np.abs(exact - [s for _, s in hits]), initial=0.0)))
        for name in counts:
            f, w = query_recall(hits, truth_sims, None if name == "all" else gate[name])
            counts[name][0] += f
            counts[name][1] += w
    out: dict[str, Any] = {"max_similarity_error": float(f"{max_gap:.3g}")}
    for name, (found, wanted) in counts.items():
        out[name] = round(found / wanted, 4) if wanted else None
        out[f"{name}_neighbours"] = wanted
    return out


def render(rt: dict[str, Any]) -> list[str]:
    """Text lines for the bench's printout."""
    c, g = rt["corpus"], rt["gates"]
    lines = [
        f"real text: {rt['stored']:,} stored sentences, {rt['queries']} held-out queries "
        f"(corpus {c['scope']}: {c['distinct_sentences']:,} distinct sentences, {c['digest']}); "
        f"gates 0.35 and p80 = {g['p80']:.3f}",
    ]
    for k in KS:
        r, t = rt["recall"][f"k{k}"], rt["index"][f"k{k}"]
        lines.append(
            f"  k={k:<2} recall {_r(r['all'])} | above 0.35 {_r(r['small'])} "
            f"({r['small_neighbours']} neighbours) | above p80 {_r(r['p80'])} | "
            f"index p50/p95 {t['p50_ms']:.2f}/{t['p95_ms']:.2f} ms | "
            f"max sim error {r['max_similarity_error']:.1e}"
        )
    quarter = rt.get("recall_quarter_budgets") or {}
    if quarter:
        lines.append(
            "  a quarter of the default candidate budgets: recall "
            + ", ".join(f"k={k} {_r(quarter[f'k{k}']['all'])} (above 0.35 "
                        f"{_r(quarter[f'k{k}']['small'])})" for k in KS)
        )
    e = rt["embedding"]
    p50 = {w: {c: rt[w][c]["p50_ms"] for c in ("k5", "k5_cpu")} for w in ("index", "numpy", "sqlite_vec")}
    lines.append(
        f"  k=5 p50 wall (CPU): index {p50['index']['k5']:.2f} ({p50['index']['k5_cpu']:.2f}) ms, "
        f"numpy exact {p50['numpy']['k5']:.2f} ({p50['numpy']['k5_cpu']:.2f}) ms, "
        f"sqlite-vec {p50['sqlite_vec']['k5']:.2f} ({p50['sqlite_vec']['k5_cpu']:.2f}) ms; "
        f"embedded {e['embedded']} ({_r(e['texts_per_s'], 0)} texts/s), {e['cached']} from cache"
    )
    return lines


def render_markdown(rt: dict[str, Any]) -> list[str]:
    rows = [
        "| stored | k | recall@k | above 0.35 | above p80 | quarter budgets "
        "| index p50 ms, wall / CPU | numpy exact (k=5) | sqlite-vec (k=5) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    quarter = rt.get("recall_quarter_budgets") or {}

    def p50(what: str, k: int) -> str:
        return f"{rt[what][f'k{k}']['p50_ms']:.2f} / {rt[what][f'k{k}_cpu']['p50_ms']:.2f}"

    for k in KS:
        r = rt["recall"][f"k{k}"]
        rows.append(
            f"| {rt['stored']:,} | {k} | {_r(r['all'])} | {_r(r['small'])} | {_r(r['p80'])} | "
            f"{_r((quarter.get(f'k{k}') or {}).get('all'))} | {p50('index', k)} | "
            f"{p50('numpy', 5)} | {p50('sqlite_vec', 5)} |"
        )
    return rows


def _r(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"
