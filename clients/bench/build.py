"""Bench databases: the real-model tier (texts embedded end to end) and bulk tiers.

Bulk tiers (100k, 1M) hold clustered vectors around real-model embeddings of task texts,
inserted through `SqliteStorage.insert` (the store's own write path, without the model), and
are cached under the work directory: building 1M rows takes minutes, so a second run
reuses the file. The cache key covers the schema, the tier parameters and the model id.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memrl import Experience, Memory, MemoryConfig, SqliteStorage
from memrl.memory import content_hash
from memrl.retrieval import intent_key
from memrl.storage import NewMemory
from memrl.storage.sqlite import migrations
from memrl.storage.sqlite.connection import connect, write_transaction
from memrl.storage.sqlite.kernels import vector_blob

from . import data

BULK_FORMAT = 3  # bump when the way bulk tiers are generated changes


@dataclass
class Tier:
    """One database to measure: all memories of `namespaces` (equal shares)."""

    name: str
    n: int
    namespaces: list[str]
    path: Path
    real: bool = False  # texts embedded by the real model (else bulk vectors)
    vectors: np.ndarray | None = None  # (n, dim) stored vectors, row i = memory of seq i
    ids: np.ndarray | None = None  # memory ids, aligned with vectors
    ns_of: np.ndarray | None = None  # namespace index per row
    build_seconds: float = 0.0
    cached: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def fresh(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(path) + suffix)
        if p.exists():
            p.unlink()


def db_bytes(path: Path, checkpoint: bool = True) -> int:
    """Size of the database file (after moving the WAL into it) plus any WAL left."""
    if checkpoint and path.exists():
        conn = connect(path)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
    return sum(
        Path(str(path) + s).stat().st_size for s in ("", "-wal") if Path(str(path) + s).exists()
    )


def schema_key(dim: int) -> str:
    h = hashlib.sha256()
    h.update(inspect.getsource(migrations).encode())
    h.update(str(dim).encode())
    h.update(str(BULK_FORMAT).encode())
    return h.hexdigest()[:10]


def build_real_tier(
    memory: Memory,
    texts: Sequence[str],
    namespace: str,
    batch: int,
    progress: Callable[[str], None],
) -> dict[str, float]:
    """Store `texts` through Memory.store_many (real model) in batches; returns throughput."""
    embed_s = 0.0
    total_s = 0.0
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        t0 = time.perf_counter()
        memory.store_many(
            Experience(intent=t, experience=data.experience_text(t, start + i), namespace=namespace)
            for i, t in enumerate(chunk)
        )
        total_s += time.perf_counter() - t0
        if (start // batch) % 10 == 0:
            progress(f"  stored {start + len(chunk)}/{len(texts)}")
    # the embedding share of that time, measured on a sample of the same texts
    sample = list(texts[: min(len(texts), 1024)])
    t0 = time.perf_counter()
    memory.embedder.embed(sample)
    embed_s = (time.perf_counter() - t0) * len(texts) / len(sample)
    return {
        "items": float(len(texts)),
        "seconds": total_s,
        "items_per_s": len(texts) / total_s,
        "embed_items_per_s": len(texts) / embed_s,
    }


def bulk_vectors(anchors: np.ndarray, n: int, seed: int, spread: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """n unit vectors scattered around real-model anchors; also the anchor index of each."""
    rng = np.random.default_rng(seed)
    dim = anchors.shape[1]
    out = np.empty((n, dim), dtype=np.float32)
    lab = rng.integers(0, len(anchors), size=n)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        scale = (spread * rng.uniform(0.6, 1.6, size=(m, 1)) / np.sqrt(dim)).astype(np.float32)
        x = anchors[lab[start : start + m]] + rng.standard_normal((m, dim)).astype(np.float32) * scale
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start : start + m] = x
    return out, lab


def build_bulk_tier(
    tier: Tier,
    anchors: np.ndarray,
    anchor_texts: Sequence[str],
    model_id: str,
    workdir: Path,
    config: MemoryConfig,
    progress: Callable[[str], None],
    seed: int = 11,
) -> None:
    """Fill (or reuse) the tier's database; sets tier.vectors/ids/ns_of."""
    vecs, lab = bulk_vectors(anchors, tier.n, seed=seed + tier.n + len(tier.namespaces))
    n_ns = len(tier.namespaces)
    ns_of = np.arange(tier.n) % n_ns
    tier.vectors, tier.ns_of = vecs, ns_of
    stamp = Path(str(tier.path) + ".json")
    want = {
        "n": tier.n, "namespaces": n_ns, "model_id": model_id, "schema": schema_key(anchors.shape[1]),
        "anchors": hashlib.sha256(anchors.tobytes()).hexdigest()[:16],
    }
    if stamp.exists() and tier.path.exists():
        try:
            have = json.loads(stamp.read_text())
        except ValueError:
            have = {}
        if {k: have.get(k) for k in want} == want:
            tier.ids = np.asarray(np.load(str(tier.path) + ".ids.npy"))
            tier.cached = True
            tier.build_seconds = float(have.get("build_seconds", 0.0))
            _reset_ledger(tier.path)
            return
    fresh(tier.path)
    stamp.unlink(missing_ok=True)
    t0 = time.perf_counter()
    store = SqliteStorage(tier.path, anchors.shape[1], model_id)
    ids = np.empty(tier.n, dtype=np.int64)
    chunk = 20_000
    now = time.time()
    try:
        for start in range(0, tier.n, chunk):
            rows = []
            for i in range(start, min(tier.n, start + chunk)):
                intent = f"{anchor_texts[lab[i]]} (case {i})"
                experience = data.experience_text(intent, i)
                rows.append(
                    NewMemory(
                        namespace=tier.namespaces[ns_of[i]], intent=intent,
                        intent_key=intent_key(intent), experience=experience,
                        kind="success" if i % 8 else "failure",
                        content_hash=content_hash(intent, experience), metadata="{}",
                        vector=vecs[i], q=config.q_init, created_at=now, updated_at=now,
                    )
                )
            with store.write() as tx:
                got = tx.insert_memories(rows, config)
                by_id = tx.get([mid for mid, _ in got])
            # the index searches intents: each bulk memory has an intent of its own
            ids[start : start + len(rows)] = [by_id[mid].intent_id for mid, _ in got]
            if (start // chunk) % 5 == 0:
                progress(f"  {tier.name}: inserted {start + len(rows)}/{tier.n}")
    finally:
        store.close()
    tier.ids = ids
    tier.build_seconds = time.perf_counter() - t0
    np.save(str(tier.path) + ".ids.npy", ids)
    stamp.write_text(json.dumps({**want, "build_seconds": tier.build_seconds}))


# Every memory back to how the bench loaded it: Q 0, no outcome, no evidence (the credited
# successes and failures, and change detection's fast EMA at Q). Both backends' tiers.
RESET_LEARNING = (
    "UPDATE memories SET q = 0, n_updates = 0, last_reward = NULL, successes = 0, "
    "failures = 0, q_recent = 0"
)
LEARNED = (
    "q != 0 OR n_updates != 0 OR successes != 0 OR failures != 0 OR q_recent != 0 "
    "OR last_reward IS NOT NULL"
)


def _reset_ledger(path: Path) -> None:
    """A cached bulk database starts each run as built: an empty task ledger, and the
    memories the last run's reports credited back to Q 0 with no outcome and no evidence
    (as the PostgreSQL tier's `reset_learning`); only those rows are written."""
    conn = connect(path)
    try:
        with write_transaction(conn):
            conn.execute("DELETE FROM memory_feedback")
            conn.execute("DELETE FROM task_candidates")
            conn.execute("DELETE FROM tasks")
            conn.execute(f"{RESET_LEARNING} WHERE {LEARNED}")
    finally:
        conn.close()


def build_vec0_baseline(
    path: Path, vectors: np.ndarray, ids: np.ndarray, ns_names: Sequence[str], ns_of: np.ndarray,
    key: str,
) -> bool:
    """A plain sqlite-vec float KNN table over the same vectors (cached by `key`); True if reused."""
    stamp = Path(str(path) + ".json")
    if stamp.exists() and path.exists() and stamp.read_text() == key:
        return True
    fresh(path)
    conn = connect(path)
    try:
        dim = vectors.shape[1]
        conn.execute(
            "CREATE VIRTUAL TABLE v USING vec0(id INTEGER PRIMARY KEY, namespace TEXT PARTITION KEY, "
            f"embedding float[{dim}] distance_metric=cosine)"
        )
        for start in range(0, len(vectors), 10_000):
            with write_transaction(conn):
                conn.executemany(
                    "INSERT INTO v(id, namespace, embedding) VALUES (?, ?, ?)",
                    [
                        (int(ids[i]), ns_names[ns_of[i]], vector_blob(vectors[i]))
                        for i in range(start, min(len(vectors), start + 10_000))
                    ],
                )
    finally:
        conn.close()
    stamp.write_text(key)
    return False


def copy_db(src: Path, dst: Path) -> None:
    fresh(dst)
    shutil.copyfile(src, dst)
    wal = Path(str(src) + "-wal")
    if wal.exists():
        shutil.copyfile(wal, Path(str(dst) + "-wal"))


def workdir_default() -> Path:
    return Path(os.environ.get("MEMRL_BENCH_DIR") or Path(tempfile.gettempdir()) / "memrl-bench")
