"""Timings: the index alone, its baselines, full recall in-process and over MCP stdio,
outcome updates, cold start and the server's resident memory."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from memrl import Memory, MemoryConfig, SqliteStorage
from memrl.storage.sqlite.connection import connect
from memrl.storage.sqlite.index import VectorIndex
from memrl.storage.sqlite.kernels import vector_blob
from memrl.storage.sqlite.migrations import apply_migrations

from . import page_cache
from .build import Tier

# Fresh queries timed with the database out of the page cache (each may read ~200 pages
# from disk, so fewer than the warm measurements).
COLD_QUERIES = 50


def summary(seconds: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.size == 0:
        return {"n": 0, "p50_ms": float("nan"), "p95_ms": float("nan"), "mean_ms": float("nan")}
    return {
        "n": int(ms.size),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
        "mean_ms": round(float(ms.mean()), 3),
    }


def timed(
    fn: Callable[[int], Any], n: int, budget_s: float | None = None, min_n: int = 10
) -> tuple[list[float], list[Any]]:
    """Call fn(i) for i < n (stopping early after budget_s once min_n calls ran)."""
    times: list[float] = []
    outs: list[Any] = []
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        outs.append(fn(i))
        times.append(time.perf_counter() - t0)
        if budget_s is not None and i + 1 >= min_n and time.perf_counter() - start > budget_s:
            break
    return times, outs


class Truth:
    """Exact top-k per query by numpy over the tier's vectors (grouped by namespace)."""

    def __init__(self, tier: Tier) -> None:
        assert tier.vectors is not None and tier.ids is not None and tier.ns_of is not None
        self.groups: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for j in range(len(tier.namespaces)):
            rows = np.flatnonzero(tier.ns_of == j)
            self.groups[j] = (np.ascontiguousarray(tier.vectors[rows]), tier.ids[rows])

    def search(self, q: np.ndarray, ns: int, k: int, one_thread: bool = False) -> list[int]:
        mat, ids = self.groups[ns]
        sims = np.einsum("ij,j->i", mat, q) if one_thread else mat @ q
        top = np.argpartition(-sims, min(k, len(sims) - 1))[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        return ids[top].tolist()


def recall_at(got: Sequence[Sequence[int]], truth: Sequence[Sequence[int]], k: int) -> float:
    hits = sum(len(set(g[:k]) & set(t[:k])) for g, t in zip(got, truth))
    return round(hits / (k * len(truth)), 4)


def index_search(
    tier: Tier, qvecs: np.ndarray, qns: np.ndarray, truth10: list[list[int]], budget_s: float
) -> dict[str, Any]:
    """The memrl VectorIndex alone: the first search and fresh queries with the file out of
    the page cache (cold), then steady state with it cached (warm), recall@5/10."""
    evicted = page_cache.evict(tier.path)
    conn = connect(tier.path)
    try:
        index = VectorIndex(qvecs.shape[1])
        t0 = time.perf_counter()
        index.search(conn, qvecs[0], tier.namespaces[qns[0]], 5)
        first = time.perf_counter() - t0
        if len(tier.namespaces) > 1:  # load every namespace as a long-running server would
            for name in tier.namespaces:
                index.search(conn, qvecs[0], name, 5)
        cold, _ = timed(
            lambda i: index.search(conn, qvecs[i], tier.namespaces[qns[i]], 5),
            min(len(qvecs), COLD_QUERIES), budget_s,
        )
        primed_s = page_cache.prime(tier.path)
        c0 = time.process_time()
        t5, got5 = timed(
            lambda i: [m for m, _ in index.search(conn, qvecs[i], tier.namespaces[qns[i]], 5)],
            len(qvecs), budget_s,
        )
        cpu5 = (time.process_time() - c0) / len(t5)
        t10, got10 = timed(
            lambda i: [m for m, _ in index.search(conn, qvecs[i], tier.namespaces[qns[i]], 10)],
            len(qvecs), budget_s,
        )
        # the same k=5 queries again: the rows they touch are now certainly cached (also in
        # SQLite's own page cache), so the difference to k5 is what remains of reads
        again, _ = timed(
            lambda i: index.search(conn, qvecs[i], tier.namespaces[qns[i]], 5), len(t5), budget_s
        )
    finally:
        conn.close()
    return {
        "first_search_ms": round(first * 1e3, 2),
        "evicted_first": evicted,
        "k5_cold": summary(cold),
        "prime_s": round(primed_s, 2),
        "k5": {**summary(t5), "cpu_ms": round(cpu5 * 1e3, 3)},
        "k5_repeat": summary(again),
        "k10": summary(t10),
        "recall_at_5": recall_at(got5, truth10[: len(got5)], 5),
        "recall_at_10": recall_at(got10, truth10[: len(got10)], 10),
    }


def vec0_search(
    path: Path, tier: Tier, qvecs: np.ndarray, qns: np.ndarray, truth10: list[list[int]],
    budget_s: float,
) -> dict[str, Any]:
    """Baseline: plain sqlite-vec float KNN (vec0, cosine, namespace partition key)."""
    conn = connect(path)
    try:
        sql = "SELECT id FROM v WHERE embedding MATCH ? AND k = ? AND namespace = ? ORDER BY distance"

        def run(i: int, k: int) -> list[int]:
            rows = conn.execute(sql, (vector_blob(qvecs[i]), k, tier.namespaces[qns[i]])).fetchall()
            return [int(r[0]) for r in rows]

        run(0, 5)
        t5, got5 = timed(lambda i: run(i, 5), len(qvecs), budget_s)
        t10, got10 = timed(lambda i: run(i, 10), len(qvecs), budget_s)
    finally:
        conn.close()
    return {
        "k5": summary(t5),
        "k10": summary(t10),
        "recall_at_5": recall_at(got5, truth10[: len(got5)], 5),
        "recall_at_10": recall_at(got10, truth10[: len(got10)], 10),
    }


def numpy_search(truth: Truth, qvecs: np.ndarray, qns: np.ndarray, budget_s: float) -> dict[str, Any]:
    """Baselines: exact search with numpy over float32 vectors held in RAM, as `vectors @ q`
    (BLAS, its default threads: two here) and as a one-thread product (`einsum`, the kernel
    of the index's exact scan), with the process's CPU time per search for each."""
    truth.search(qvecs[0], int(qns[0]), 5)
    c0 = time.process_time()
    t5, _ = timed(lambda i: truth.search(qvecs[i], int(qns[i]), 5), len(qvecs), budget_s)
    cpu5 = (time.process_time() - c0) / len(t5)
    c0 = time.process_time()
    t1, _ = timed(lambda i: truth.search(qvecs[i], int(qns[i]), 5, one_thread=True), len(qvecs), budget_s)
    cpu1 = (time.process_time() - c0) / len(t1)
    return {
        "k5": {**summary(t5), "cpu_ms": round(cpu5 * 1e3, 3)},
        "k5_one_thread": {**summary(t1), "cpu_ms": round(cpu1 * 1e3, 3)},
        "recall_at_5": 1.0, "recall_at_10": 1.0,
    }


def inprocess_recall(
    memory: Memory, texts: Sequence[str], namespaces: Sequence[str], budget_s: float
) -> tuple[dict[str, Any], list[str]]:
    """Memory.recall end to end: query embedding, both phases, the ledger write.

    Where the time goes is measured on the same texts in the same minute: for each text, in
    turn (the order rotates, so none always comes first), the full recall, the query
    embedding alone, and the recall with that text's vector computed beforehand (index,
    phase B, the ledger write, reading the memories). So `recall p50 - embedding p50`
    compares like with like, and the paired differences (full minus embedding, text by
    text) are reported too.

    `without_embedding_back_to_back`: the recall with its vector given, on another text,
    right after another such recall, with no model run between them. Every step of a
    recall that comes after the embedding finds the CPU's caches as the model's run left
    them; this figure is the same work in caches that no model run has swept, so the
    difference between the two is what the model's run costs the rest of a recall."""
    # warm as a long-running server would be: one recall per namespace (loads its codes)
    t0 = time.perf_counter()
    distinct = list(dict.fromkeys(namespaces))
    for ns in distinct:
        memory.recall(texts[0], ns)
    warm = (time.perf_counter() - t0) / len(distinct)
    precomputed = _Precomputed(memory.embedder, texts)
    no_model = Memory(memory.storage, precomputed, memory.config)
    full: list[float] = []
    emb: list[float] = []
    rest: list[float] = []
    back_to_back: list[float] = []
    rest_cpu = 0.0
    results = []
    start = time.perf_counter()
    for i, (text, ns) in enumerate(zip(texts, namespaces)):
        for step in range(3):
            which = (i + step) % 3
            t0, c0 = time.perf_counter(), time.process_time()
            if which == 0:
                results.append(memory.recall(text, ns))
                full.append(time.perf_counter() - t0)
            elif which == 1:
                memory.embedder.embed_query(text)
                emb.append(time.perf_counter() - t0)
            else:
                no_model.recall(text, ns)
                rest.append(time.perf_counter() - t0)
                rest_cpu += time.process_time() - c0
        # two more with the vector given, on other texts, the second timed: no model has
        # run since the recall before it
        no_model.recall(texts[(i + len(texts) // 3) % len(texts)], ns)
        t0 = time.perf_counter()
        no_model.recall(texts[(i + 2 * len(texts) // 3) % len(texts)], ns)
        back_to_back.append(time.perf_counter() - t0)
        if i + 1 >= 10 and time.perf_counter() - start > 3 * budget_s:
            break
    out: dict[str, Any] = dict(summary(full))
    out["without_embedding"] = {**summary(rest), "cpu_ms": round(rest_cpu / len(rest) * 1e3, 3)}
    out["without_embedding_back_to_back"] = summary(back_to_back)
    out["first_recall_per_namespace_ms"] = round(warm * 1e3, 1)
    out["embed_query"] = summary(emb)
    out["minus_embedding_ms"] = round(out["p50_ms"] - out["embed_query"]["p50_ms"], 3)
    out["paired_minus_embedding"] = summary([f - e for f, e in zip(full, emb)])
    out["mean_candidates"] = round(float(np.mean([len(r.candidates) for r in results])), 2)
    out["mean_injected"] = round(float(np.mean([len(r.injected) for r in results])), 2)
    return out, [r.task_id for r in results if r.task_id is not None]


def cold_recall(
    path: Path, embedder: Any, config: MemoryConfig, texts: Sequence[str],
    namespaces: Sequence[str], budget_s: float,
) -> dict[str, Any]:
    """Memory.recall in a freshly opened store with the file out of the page cache: the first
    recall (which also loads the namespace's codes) and fresh recalls after it."""
    evicted = page_cache.evict(path)
    store = SqliteStorage(path, embedder.dim, embedder.model_id)
    memory = Memory(store, embedder, config)
    try:
        t0 = time.perf_counter()
        memory.recall(texts[0], namespaces[0])
        first = time.perf_counter() - t0
        n = min(len(texts) - 1, COLD_QUERIES)
        times, _ = timed(lambda i: memory.recall(texts[i + 1], namespaces[i + 1]), n, budget_s)
    finally:
        store.close()
    out: dict[str, Any] = dict(summary(times))
    out["first_recall_ms"] = round(first * 1e3, 1)
    out["evicted_first"] = evicted
    return out


class _Precomputed:
    """The real model's vectors for known texts, looked up instead of computed."""

    def __init__(self, embedder: Any, texts: Sequence[str]) -> None:
        self.model_id, self.dim = embedder.model_id, embedder.dim
        unique = list(dict.fromkeys(texts))
        self._vectors = dict(zip(unique, embedder.embed(unique)))

    @classmethod
    def of(cls, embedder: Any, texts: Sequence[str], vectors: np.ndarray) -> _Precomputed:
        """Over vectors computed beforehand (e.g. read from the embedding cache)."""
        self = cls.__new__(cls)
        self.model_id, self.dim = embedder.model_id, embedder.dim
        self._vectors = dict(zip(texts, vectors))
        return self

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._vectors[t] for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self._vectors[text]


def outcome_updates(memory: Memory, task_ids: Sequence[str]) -> dict[str, Any]:
    """report() on every task (alternating success and failure), timed as a whole."""
    t0 = time.perf_counter()
    credited = 0
    for i, task_id in enumerate(task_ids):
        result = memory.report(task_id, success=bool(i % 2))
        credited += len(result.credited)
    seconds = time.perf_counter() - t0
    return {
        "reports": len(task_ids),
        "seconds": round(seconds, 3),
        "reports_per_s": round(len(task_ids) / seconds, 1),
        "q_updates": credited,
        "q_updates_per_s": round(credited / seconds, 1),
    }


# -- the server as a process ------------------------------------------------------------------


def server_command(db: Path, namespace: str) -> list[str]:
    return [sys.executable, "-m", "memrl_server", "serve", "--db", str(db), "--namespace", namespace]


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MEMRL_NAMESPACE", None)
    return env


def child_server_pids() -> list[int]:
    """Pids of memrl_server processes this process spawned (Linux /proc; else psutil)."""
    me = os.getpid()
    pids: list[int] = []
    proc = Path("/proc")
    if proc.is_dir():
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid == me and b"memrl_server" in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
        return pids
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        return []
    return [
        c.pid for c in psutil.Process(me).children()
        if "memrl_server" in " ".join(c.cmdline())
    ]


def rss_mb(pid: int) -> dict[str, float] | None:
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        fields = {}
        for line in status.read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0]) / 1024
        return {
            "rss_mb": round(fields.get("VmRSS", 0.0), 1),
            "peak_rss_mb": round(fields.get("VmHWM", 0.0), 1),
            # private memory vs pages of mapped files (the ONNX model, SQLite's mmap)
            "anon_mb": round(fields.get("RssAnon", 0.0), 1),
            "file_mb": round(fields.get("RssFile", 0.0), 1),
        }
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        return None
    info = psutil.Process(pid).memory_info()
    return {"rss_mb": round(info.rss / 2**20, 1), "peak_rss_mb": None, "anon_mb": None, "file_mb": None}


async def _call_recall(client: Any, task: str, namespace: str) -> Any:
    result = await client.call_tool("recall_experience", {"task": task, "namespace": namespace})
    if result.is_error:
        raise RuntimeError(f"recall_experience failed: {result.content}")
    return result.structured_content


async def _mcp_session(
    db: Path, texts: Sequence[str], namespaces: Sequence[str], budget_s: float, n_calls: int,
    log_path: Path,
) -> dict[str, Any]:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=sys.executable, args=server_command(db, namespaces[0])[1:], env=server_env()
    )
    with log_path.open("a") as errlog:
        return await _session(Client(stdio_client(params, errlog=errlog), cache=None),
                              texts, namespaces, budget_s, n_calls)


async def _session(
    client_cm: Any, texts: Sequence[str], namespaces: Sequence[str], budget_s: float, n_calls: int
) -> dict[str, Any]:
    t0 = time.perf_counter()
    async with client_cm as client:
        await client.list_tools()
        to_list = time.perf_counter() - t0
        # warm-up texts are not among the timed ones: the server remembers query vectors
        # by text, and a timed recall must pay for its embedding
        warm = f"{texts[0]} (warm-up)"
        await _call_recall(client, warm, namespaces[0])
        to_recall = time.perf_counter() - t0
        pids = child_server_pids()
        memory_after_first = rss_mb(pids[0]) if pids else None
        if n_calls:
            for ns in list(dict.fromkeys(namespaces))[1:]:  # warm every namespace once
                await _call_recall(client, warm, ns)
        times: list[float] = []
        start = time.perf_counter()
        for i in range(n_calls):
            c0 = time.perf_counter()
            await _call_recall(client, texts[i], namespaces[i])
            times.append(time.perf_counter() - c0)
            if i + 1 >= 10 and time.perf_counter() - start > budget_s:
                break
        memory = rss_mb(pids[0]) if pids else None
    return {
        "spawn_to_tools_list_s": round(to_list, 3),
        "spawn_to_first_recall_s": round(to_recall, 3),
        "recall": summary(times),
        "server_memory_after_first_recall": memory_after_first,
        "server_memory": memory,
    }


def mcp_recall(
    db: Path, texts: Sequence[str], namespaces: Sequence[str], budget_s: float, log_path: Path,
) -> dict[str, Any]:
    """Spawn `memrl serve` over stdio; time recall_experience round trips; read its RSS."""
    return anyio.run(_mcp_session, db, texts, namespaces, budget_s, len(texts), log_path)


def cold_start(db: Path, text: str, namespace: str, runs: int, log_path: Path) -> dict[str, Any]:
    """Process spawn -> tools/list answer, and -> first recall answer (median of `runs`)."""
    lists, recalls = [], []
    for _ in range(runs):
        out = anyio.run(_mcp_session, db, [text], [namespace], 0.0, 0, log_path)
        lists.append(out["spawn_to_tools_list_s"])
        recalls.append(out["spawn_to_first_recall_s"])
    return {
        "runs": runs,
        "spawn_to_tools_list_s": round(float(np.median(lists)), 3),
        "spawn_to_first_recall_s": round(float(np.median(recalls)), 3),
        "all_tools_list_s": lists,
        "all_first_recall_s": recalls,
    }


def _vec0_knn(vconn: Any, qvecs: np.ndarray) -> Callable[[int], Any]:
    sql = "SELECT id FROM v WHERE embedding MATCH ? AND k = 5 AND namespace = 'c'"
    return lambda i: vconn.execute(sql, (vector_blob(qvecs[i]),)).fetchall()


def _numpy_knn(vectors: np.ndarray, qvecs: np.ndarray) -> Callable[[int], Any]:
    return lambda i: vectors @ qvecs[i]


def cost_curve(
    vectors: np.ndarray, qvecs: np.ndarray, sizes: Sequence[int], workdir: Path, budget_s: float,
    say: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Index search time and bytes per row as one namespace grows (index tables only),
    next to sqlite-vec float KNN on the same rows. Rows are added in order, so each size
    is a prefix of `vectors`."""
    from .build import db_bytes, fresh

    dim = vectors.shape[1]
    path, vpath = workdir / "curve.db", workdir / "curve-vec0.db"
    fresh(path)
    fresh(vpath)
    conn, vconn = connect(path), connect(vpath)
    index = VectorIndex(dim)
    points: list[dict[str, Any]] = []
    try:
        apply_migrations(conn, dim)
        vconn.execute(
            "CREATE VIRTUAL TABLE v USING vec0(id INTEGER PRIMARY KEY, namespace TEXT PARTITION KEY, "
            f"embedding float[{dim}] distance_metric=cosine)"
        )
        have = 0
        for n in sorted(sizes):
            n = min(n, len(vectors))
            for start in range(have, n, 20_000):
                end = min(n, start + 20_000)
                conn.execute("BEGIN IMMEDIATE")
                index.add_many(conn, [(i + 1, "c", vectors[i]) for i in range(start, end)])
                conn.execute("COMMIT")
                vconn.execute("BEGIN IMMEDIATE")
                vconn.executemany(
                    "INSERT INTO v(id, namespace, embedding) VALUES (?, 'c', ?)",
                    [(i + 1, vector_blob(vectors[i])) for i in range(start, end)],
                )
                vconn.execute("COMMIT")
            have = n
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            vconn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            index.search(conn, qvecs[0], "c", 5)
            t, _ = timed(lambda i: index.search(conn, qvecs[i], "c", 5), len(qvecs), budget_s)
            tv, _ = timed(_vec0_knn(vconn, qvecs), len(qvecs), budget_s / 2, min_n=5)
            sims_t, _ = timed(_numpy_knn(vectors[:n], qvecs), len(qvecs), budget_s / 2, min_n=5)
            point: dict[str, Any] = {
                "n": n,
                "index": summary(t),
                "sqlite_vec": summary(tv),
                "numpy": summary(sims_t),
                "index_bytes_per_row": round(db_bytes(path, checkpoint=False) / n, 1),
                "sqlite_vec_bytes_per_row": round(db_bytes(vpath, checkpoint=False) / n, 1),
            }
            points.append(point)
            say(f"  curve n={n}: index p50 {point['index']['p50_ms']} ms, "
                f"sqlite-vec p50 {point['sqlite_vec']['p50_ms']} ms")
    finally:
        conn.close()
        vconn.close()
        fresh(path)
        fresh(vpath)
    return points
