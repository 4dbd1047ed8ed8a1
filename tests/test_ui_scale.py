"""The inspection page at 100k memories: server time and browser time of every view.

Slow (`pytest -m slow tests/test_ui_scale.py -s`): builds a namespace of 100,000 memories
(vectors scattered around real-model embeddings of 2,000 task texts, inserted through the
storage's write path with Q, updates and kinds spread out) and a ledger of real recalls
and outcomes (real model), then loads each view in headless Chromium and over plain HTTP.
It prints the figures (docs/UI.md reports them); it asserts what each page shows, never a
time: the machine is shared and timings are noisy.

With MEMRL_UI_SCALE_DB=postgresql://... the same is built in a fresh schema `ui_scale` of
that database (dropped and created again by each run; MEMRL_UI_SCALE_REUSE=1 measures the
one a previous run left) and the page reads PostgreSQL. The intents' HNSW index is built
after the load, as for a bulk import (the bench does the same), and the tables are
vacuumed after the build (autovacuum's work, done at a known time).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import pytest
from backends import admin
from memrl_clients.bench.build import bulk_vectors
from memrl_clients.bench.data import experience_text, task_texts
from selenium.webdriver.common.by import By
from ui_helpers import need_browser, start_browser, start_ui, stop

from memrl import Memory, MemoryConfig, Storage, open_storage
from memrl.memory import content_hash
from memrl.retrieval import intent_key
from memrl.storage import NewMemory

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

NS = "github.com/acme/big"
N = int(os.environ.get("MEMRL_UI_SCALE_N", "100000"))
TASKS = int(os.environ.get("MEMRL_UI_SCALE_TASKS", "3000"))
PG_URL = os.environ.get("MEMRL_UI_SCALE_DB", "")
REUSE = bool(PG_URL) and os.environ.get("MEMRL_UI_SCALE_REUSE") == "1"
NAVIGATION = """
const e = performance.getEntriesByType('navigation')[0];
const app = (e.serverTiming || []).find(t => t.name === 'app');
return {ttfb: e.responseStart - e.requestStart, dom: e.domContentLoadedEventEnd - e.startTime,
        load: e.loadEventEnd - e.startTime, server: app ? app.duration : null,
        bytes: e.encodedBodySize};
"""


def _memories(texts: list[str], vectors: np.ndarray, lab: np.ndarray, start: int, stop_: int, rng: Any) -> list[NewMemory]:
    now = time.time()
    rows = []
    for i in range(start, stop_):
        intent = f"{texts[lab[i]]} (case {i})"
        experience = experience_text(intent, i)
        updates = int(rng.integers(0, 30))
        rows.append(
            NewMemory(
                namespace=NS, intent=intent, intent_key=intent_key(intent), experience=experience,
                kind=("success", "success", "failure", "note")[i % 4],
                content_hash=content_hash(intent, experience), metadata="{}", vector=vectors[i],
                q=float(np.tanh(rng.normal(0, 0.6))) if updates else 0.0, n_updates=updates,
                created_at=now - (N - i) * 30.0, updated_at=now,
            )
        )
    return rows


def _target(folder: Path) -> str:
    """A fresh SQLite file, or a fresh schema of the PostgreSQL database MEMRL_UI_SCALE_DB."""
    if not PG_URL:
        return str(folder / "big.db")
    from memrl_clients.pgschema import fresh_schema, schema_url

    return schema_url(PG_URL, "ui_scale") if REUSE else fresh_schema(PG_URL, "ui_scale")


def _postgres_index(storage: Storage, build: bool) -> None:
    """Drop the intents' HNSW index before the load, build it after (PostgreSQL only)."""
    if not PG_URL:
        return
    with storage.write() as tx:
        conn = tx.conn  # type: ignore[attr-defined]
        if not build:
            conn.execute("DROP INDEX intents_embedding")
            return
        conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
        conn.execute(
            "CREATE INDEX intents_embedding ON intents USING hnsw (embedding vector_cosine_ops) "
            "WITH (m = 16, ef_construction = 64)"
        )
        conn.execute("ANALYZE")


def build(target: str, model: Any) -> dict[str, float]:
    """The 100k namespace, then TASKS real recalls and outcomes; returns build times."""
    rng = np.random.default_rng(3)
    texts = task_texts(2000, seed=3)
    vectors, lab = bulk_vectors(model.embed(texts), N, seed=4)
    storage = open_storage(target, model.dim, model.model_id)
    config = MemoryConfig()
    t0 = time.perf_counter()
    _postgres_index(storage, build=False)
    for start in range(0, N, 20_000):
        with storage.write() as tx:
            tx.insert_memories(_memories(texts, vectors, lab, start, min(N, start + 20_000), rng), config)
    _postgres_index(storage, build=True)
    inserted = time.perf_counter() - t0
    memory = Memory(storage, model, config)
    t0 = time.perf_counter()
    for i, task in enumerate(task_texts(TASKS, seed=5)):
        recalled = memory.recall(task, NS)
        if i < TASKS - 50:  # the newest stay unreported
            memory.report(recalled.task_id or "", success=bool(rng.random() < 0.3 + 0.5 * i / TASKS))
    ledger = time.perf_counter() - t0
    memory.close()
    if PG_URL:  # what autovacuum does in its own time: the figures should not depend on when
        with admin(target) as conn:
            conn.execute("VACUUM ANALYZE")
    return {"insert_s": inserted, "ledger_s": ledger}


def views(memory_id: int) -> dict[str, str]:
    return {
        "memories, by Q": f"/ui/memories?ns={NS}",
        "memories, by created": f"/ui/memories?ns={NS}&sort=created&order=asc",
        "memories, by updates": f"/ui/memories?ns={NS}&sort=updates",
        "memories, middle page": f"/ui/memories?ns={NS}&after=0.0:50000",
        "memories, kind + Q range": f"/ui/memories?ns={NS}&kind=failure&q_min=0.5&q_max=0.9",
        "memories, text search": f"/ui/memories?ns={NS}&text=websocket",
        "a memory": f"/ui/memory/{memory_id}",
        "ledger": f"/ui/ledger?ns={NS}",
        "ledger, gate empty": f"/ui/ledger?ns={NS}&gate=empty",
        "ledger, failures": f"/ui/ledger?ns={NS}&outcome=failure",
        "is it learning?": f"/ui/learning?ns={NS}",
        "try a recall": f"/ui/recall?ns={NS}&task=fix+the+websocket+server+when+the+network+times+out",
        "namespaces": "/ui/namespaces",
    }


def _http(url: str, repeat: int = 5) -> tuple[float, float]:
    """Median server time (Server-Timing) and wall time of `repeat` GETs, in ms."""
    server, wall = [], []
    with httpx2.Client(timeout=120) as c:
        for _ in range(repeat):
            t0 = time.perf_counter()
            r = c.get(url)
            wall.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200, (url, r.status_code, r.text[:300])
            server.append(float(r.headers["server-timing"].split("dur=")[1]))
    return statistics.median(server), statistics.median(wall)


def test_page_loads_at_100k_memories(tmp_path_factory: pytest.TempPathFactory, real_model: Any):
    need_browser()
    db = _target(tmp_path_factory.mktemp("scale"))
    built = {"insert_s": 0.0, "ledger_s": 0.0} if REUSE else build(db, real_model)
    memory = Memory(open_storage(db, real_model.dim, real_model.model_id), real_model)
    [stats] = memory.stats(NS)
    pools = [c.memory_id for t in memory.ledger_page(NS, limit=500).tasks for c in t.pool]
    busiest = max(set(pools), key=pools.count)  # the memory with the longest history
    memory.close()
    assert stats["memories"] == N and stats["tasks"] == TASKS
    proc, port = start_ui(db, NS)  # type: ignore[arg-type]
    driver = start_browser()
    rows = []
    try:
        base = f"http://127.0.0.1:{port}"
        for name, path in views(busiest).items():
            _http(base + path, repeat=1)  # warm: the first read of those pages from disk
            server, wall = _http(base + path)
            driver.get(base + path)
            nav = driver.execute_script(NAVIGATION)
            if name.startswith("memories, by"):
                assert len(driver.find_elements(By.CSS_SELECTOR, "tr.memory")) == 50
            rows.append((name, server, wall, nav))
    finally:
        driver.quit()
        stop(proc)
    print(f"\n[ui scale] {'PostgreSQL' if PG_URL else 'SQLite'}: {N:,} memories, {TASKS:,} tasks; built in {built['insert_s']:.0f} s "
          f"(memories) + {built['ledger_s']:.0f} s (ledger); load {os.getloadavg()[0]:.1f}")
    print("| view | server ms (median of 5) | HTTP round trip ms | browser: server ms | TTFB ms | DOM ready ms | load ms | KB |")
    print("|---|---|---|---|---|---|---|---|")
    for name, server, wall, nav in rows:
        print(
            f"| {name} | {server:.1f} | {wall:.1f} | {nav['server'] or 0:.1f} | {nav['ttfb']:.1f} | "
            f"{nav['dom']:.1f} | {nav['load']:.1f} | {nav['bytes'] / 1024:.0f} |"
        )
