"""The vectors of record are in a sqlite-vec vec0 table, and its namespace-filtered KNN agrees
with the accelerated search of large namespaces."""

from __future__ import annotations

import numpy as np

from memrl.storage.sqlite.connection import connect, write_transaction
from memrl.storage.sqlite.index import VEC0_TABLE, VectorIndex
from memrl.storage.sqlite.migrations import apply_migrations


def _unit(rng: np.random.Generator, n: int, dim: int = 384) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_vec0_holds_every_vector_and_filters_by_namespace(tmp_path):
    index = VectorIndex(384, min_rescore=50, oversample=5, exact_max_rows=0)
    conn = connect(tmp_path / "v.db")
    apply_migrations(conn, 384)
    rng = np.random.default_rng(3)
    a, b = _unit(rng, 400), _unit(rng, 30)
    with write_transaction(conn):
        index.add_many(conn, [(i + 1, "a", v) for i, v in enumerate(a)])
        index.add_many(conn, [(1000 + i, "b", v) for i, v in enumerate(b)])
    assert conn.execute(f"SELECT count(*) FROM {VEC0_TABLE}").fetchone()[0] == 430
    ddl = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (VEC0_TABLE,)).fetchone()[0]
    assert "USING vec0" in ddl and "partition key" in ddl.lower() and "cosine" in ddl
    q = a[7] + 0.1 * _unit(rng, 1)[0]
    q /= np.linalg.norm(q)
    exact_sims = np.sort(a @ q)[::-1][:10]
    via_vec0 = index.search_vec0(conn, q, "a", 10)
    assert via_vec0[0][0] == 8
    assert np.allclose([s for _, s in via_vec0], exact_sims, atol=1e-5)
    for mid, sim in via_vec0:
        assert abs(sim - float(a[mid - 1] @ q)) < 1e-5
    # the large namespace goes through the accelerated path (approximate candidates, exact
    # similarities; its recall is measured in test_vector_index.py on clustered data)
    fast = index.search(conn, q, "a", 10)
    assert fast[0][0] == 8
    for mid, sim in fast:
        assert abs(sim - float(a[mid - 1] @ q)) < 1e-5
    # the small namespace is searched by vec0 and never returns the other namespace's rows
    small = index.search(conn, q, "b", 5)
    assert all(1000 <= m < 1030 for m, _ in small) and len(small) == 5
    with write_transaction(conn):
        index.delete(conn, [1000, 1001])
    assert conn.execute(f"SELECT count(*) FROM {VEC0_TABLE}").fetchone()[0] == 428
    assert {m for m, _ in index.search(conn, q, "b", 30)} == set(range(1002, 1030))
    conn.close()
