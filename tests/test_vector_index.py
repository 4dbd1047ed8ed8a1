"""The vector index: exact where it promises to be, high recall where it approximates,
namespaces isolated, deletes honoured, and its per-process cache never stale."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memrl.storage.sqlite.connection import connect, write_transaction
from memrl.storage.sqlite.index import VectorIndex
from memrl.storage.sqlite.kernels import popcount_swar, rank_exact, sign_codes
from memrl.storage.sqlite.migrations import apply_migrations
from memrl.storage.sqlite.snapshots import SNAPSHOT_TABLE

DIM = 384


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def clustered(n: int, n_clusters: int, seed: int, spread: float = 1.0) -> np.ndarray:
    """Unit vectors around random centroids with a shared offset (like sentence embeddings)."""
    rng = np.random.default_rng(seed)
    common = unit(rng.standard_normal(DIM))
    cents = unit(unit(rng.standard_normal((n_clusters, DIM))) + 0.6 * common)
    lab = rng.integers(0, n_clusters, size=n)
    noise = rng.standard_normal((n, DIM)) * (spread * rng.uniform(0.6, 1.6, (n, 1)) / np.sqrt(DIM))
    return unit(cents[lab] + noise)


def near(base: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = base[rng.integers(0, len(base), size=n)]
    return unit(picks + rng.standard_normal(picks.shape) * (0.6 / np.sqrt(DIM)))


def exact_topk(data: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    sims = data @ q
    order = np.lexsort((-ids, -sims))[:k]  # ties to the newer (larger) id, as the index
    return [int(ids[i]) for i in order]


def open_db(path: Path, index: VectorIndex, create: bool = True) -> Any:
    conn = connect(path)
    if create:
        apply_migrations(conn, index.dim)
    return conn


def add(conn: Any, index: VectorIndex, start_id: int, namespace: str, vecs: np.ndarray) -> list[int]:
    ids = list(range(start_id, start_id + len(vecs)))
    with write_transaction(conn):
        index.add_many(conn, [(i, namespace, v) for i, v in zip(ids, vecs)])
    return ids


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[Any, VectorIndex, Path]]:
    index = VectorIndex(DIM)
    path = tmp_path / "vi.db"
    conn = open_db(path, index)
    yield conn, index, path
    conn.close()


def test_small_namespace_is_exact_and_matches_numpy(db: tuple[Any, VectorIndex, Path]) -> None:
    conn, index, _ = db
    data = clustered(150, 10, seed=1)
    ids = np.array(add(conn, index, 1, "ns", data))
    for q in near(data, 20, seed=2):
        for k in (1, 5, 10, 150, 500):
            got = index.search(conn, q, "ns", k)
            assert [m for m, _ in got] == exact_topk(data, ids, q, k)
            want = {int(i): float(s) for i, s in zip(ids, data @ q)}
            for m, sim in got:
                assert sim == pytest.approx(want[m], abs=1e-5)
            assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)


def test_similarities_are_exact_cosines_even_for_unnormalized_input(
    db: tuple[Any, VectorIndex, Path],
) -> None:
    conn, index, _ = db
    rng = np.random.default_rng(3)
    raw = rng.standard_normal((40, DIM)).astype(np.float32) * rng.uniform(0.5, 3.0, (40, 1))
    raw = raw.astype(np.float32)
    ids = add(conn, index, 1, "ns", raw)
    q = rng.standard_normal(DIM).astype(np.float32) * 7
    got = dict(index.search(conn, q, "ns", 40))
    cos = unit(raw) @ unit(q)
    for i, c in zip(ids, cos):
        assert got[i] == pytest.approx(float(c), abs=1e-5)


def recall_at(index: VectorIndex, conn: Any, data: np.ndarray, ids: np.ndarray,
              queries: np.ndarray, k: int, namespace: str = "ns") -> float:
    hits = 0
    for q in queries:
        got = index.search(conn, q, namespace, k)
        assert len(got) == k
        truth = exact_topk(data, ids, q, k)
        # the reported similarity of every hit is its exact cosine
        sims = dict(zip(ids.tolist(), (data @ q).tolist()))
        for m, s in got:
            assert s == pytest.approx(sims[m], abs=1e-5)
        hits += len({m for m, _ in got} & set(truth))
    return hits / (k * len(queries))


@pytest.mark.parametrize("k", [5, 10])
def test_approximate_path_recall_on_clustered_data(tmp_path: Path, k: int) -> None:
    # Small budgets force the coarse + refine path on a few thousand rows.
    index = VectorIndex(DIM, oversample=6, min_rescore=30, min_coarse=150, exact_max_rows=0)
    conn = open_db(tmp_path / "small-budget.db", index)
    data = clustered(4000, 60, seed=5)
    ids = np.array(add(conn, index, 1, "ns", data))
    assert recall_at(index, conn, data, ids, near(data, 60, seed=6), k) >= 0.95
    conn.close()


def test_default_budgets_recall_on_30k_clustered_rows(db: tuple[Any, VectorIndex, Path]) -> None:
    conn, index, _ = db
    data = clustered(30_000, 300, seed=7)
    ids = np.array(add(conn, index, 1, "ns", data))
    assert recall_at(index, conn, data, ids, near(data, 40, seed=8), 10) >= 0.95
    assert recall_at(index, conn, data, ids, near(data, 40, seed=9), 5) >= 0.95


def test_namespaces_are_isolated(db: tuple[Any, VectorIndex, Path]) -> None:
    conn, index, _ = db
    a = clustered(300, 5, seed=10)
    b = a + 0.0  # identical vectors in another namespace
    ids_a = set(add(conn, index, 1, "a", a))
    ids_b = set(add(conn, index, 1001, "b", b))
    for q in near(a, 10, seed=11):
        assert {m for m, _ in index.search(conn, q, "a", 50)} <= ids_a
        assert {m for m, _ in index.search(conn, q, "b", 50)} <= ids_b
        assert index.search(conn, q, "c", 5) == []
    assert index.count(conn, "a") == 300


def test_delete_removes_rows_from_results(db: tuple[Any, VectorIndex, Path]) -> None:
    conn, index, _ = db
    data = clustered(2000, 20, seed=12)
    ids = np.array(add(conn, index, 1, "ns", data))
    q = data[0]
    first = index.search(conn, q, "ns", 10)  # warms the cache
    assert first[0][0] == 1
    gone = [m for m, _ in first[:5]]
    with write_transaction(conn):
        index.delete(conn, gone)
    after = index.search(conn, q, "ns", 10)
    assert not set(gone) & {m for m, _ in after}
    keep = ~np.isin(ids, gone)
    assert [m for m, _ in after] == exact_topk(data[keep], ids[keep], q, 10)
    assert index.count(conn, "ns") == 1995


def test_other_writers_are_seen_without_restart(tmp_path: Path) -> None:
    """Two index objects on two connections behave like two processes sharing the file."""
    path = tmp_path / "shared.db"
    mine, theirs = VectorIndex(DIM), VectorIndex(DIM)
    c1 = open_db(path, mine)
    c2 = open_db(path, theirs, create=False)
    data = clustered(3000, 30, seed=13)
    add(c1, mine, 1, "ns", data[:1000])
    q = data[2500]
    assert 2501 not in {m for m, _ in mine.search(c1, q, "ns", 5)}  # cache warm, row absent
    add(c2, theirs, 1001, "ns", data[1000:])  # the other process adds rows
    assert mine.search(c1, q, "ns", 1)[0][0] == 2501
    with write_transaction(c2):  # ... and deletes one
        theirs.delete(c2, [2501])
    assert 2501 not in {m for m, _ in mine.search(c1, q, "ns", 50)}
    # and the cached search still agrees with exact search afterwards
    ids = np.arange(1, 3001)
    keep = ids != 2501
    for qq in near(data, 10, seed=14):
        got = [m for m, _ in mine.search(c1, qq, "ns", 5)]
        assert got == exact_topk(data[keep], ids[keep], qq, 5)
    c1.close()
    c2.close()


def test_uncommitted_rows_are_seen_in_their_transaction_and_gone_after_rollback(
    db: tuple[Any, VectorIndex, Path],
) -> None:
    conn, index, _ = db
    data = clustered(1500, 15, seed=15)
    add(conn, index, 1, "ns", data[:1000])
    q = data[1200]
    index.search(conn, q, "ns", 5)  # cache holds the committed rows
    conn.execute("BEGIN IMMEDIATE")
    index.add_many(conn, [(5000 + i, "ns", v) for i, v in enumerate(data[1000:])])
    assert index.search(conn, q, "ns", 1)[0][0] == 5200
    index.delete(conn, [5200])
    assert 5200 not in {m for m, _ in index.search(conn, q, "ns", 20)}
    conn.execute("ROLLBACK")
    got = {m for m, _ in index.search(conn, q, "ns", 600)}
    assert not any(m >= 5000 for m in got)
    # a later commit may reuse nothing from the rolled-back rows: the cache stays exact
    add(conn, index, 7000, "ns", data[1200:1201])
    assert index.search(conn, q, "ns", 1)[0][0] == 7000


def test_two_databases_do_not_share_cache_entries(tmp_path: Path) -> None:
    index = VectorIndex(DIM)
    c1 = open_db(tmp_path / "one.db", index)
    c2 = open_db(tmp_path / "two.db", index)
    data = clustered(500, 5, seed=16)
    add(c1, index, 1, "ns", data[:250])
    add(c2, index, 1, "ns", data[250:])
    q = data[300]
    assert index.search(c1, q, "ns", 1)[0][0] != 51
    assert index.search(c2, q, "ns", 1)[0][0] == 51
    c1.close()
    c2.close()


def test_vectors_newest_first(db: tuple[Any, VectorIndex, Path]) -> None:
    conn, index, _ = db
    data = clustered(30, 3, seed=17)
    add(conn, index, 1, "ns", data)
    got = index.vectors(conn, "ns", 10)
    assert got.shape == (10, DIM)
    np.testing.assert_array_equal(got, data[::-1][:10])
    assert index.vectors(conn, "other", 10).shape == (0, DIM)


def test_bad_dimensions_are_refused(db: tuple[Any, VectorIndex, Path]) -> None:
    conn, index, _ = db
    with pytest.raises(ValueError):
        index.add_many(conn, [(1, "ns", np.ones(DIM - 1, np.float32))])
    with pytest.raises(ValueError):
        index.search(conn, np.ones(DIM + 1, np.float32), "ns", 3)
    assert index.search(conn, np.zeros(DIM, np.float32), "ns", 3) == []
    assert index.search(conn, np.ones(DIM, np.float32), "ns", 0) == []


def test_sign_codes_are_one_bit_per_dimension() -> None:
    v = np.zeros((1, DIM), np.float32)
    v[0, [0, 9, 383]] = 1.0
    code = sign_codes(v)
    assert code.shape == (1, 48)
    bits = np.unpackbits(code[0])
    assert np.flatnonzero(bits).tolist() == [0, 9, 383]


def test_portable_popcount_matches() -> None:
    x = np.random.default_rng(0).integers(0, 2**64 - 1, size=5000, dtype=np.uint64, endpoint=True)
    want = np.array([bin(int(v)).count("1") for v in x], dtype=np.uint8)
    np.testing.assert_array_equal(popcount_swar(x), want)


# -- code snapshots (fast whole-namespace loads for large namespaces) -------------------------


def snapshot_row(conn: Any) -> tuple[int, int, int] | None:
    row = conn.execute(
        f"SELECT max_seq, deletes, n FROM {SNAPSHOT_TABLE} WHERE namespace = 'ns'"
    ).fetchone()
    return None if row is None else tuple(row)


class CountingIndex(VectorIndex):
    """A VectorIndex that records how many code rows it read from the covering index."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rows_loaded = 0

    def _load(self, conn: Any, namespace: str, after: int, upto: int | None = None) -> Any:
        rows = super()._load(conn, namespace, after, upto)
        self.rows_loaded += rows.n
        return rows


def test_a_large_namespace_is_loaded_from_its_snapshot_by_the_next_process(
    tmp_path: Path,
) -> None:
    path = tmp_path / "snap.db"
    first = VectorIndex(DIM, snapshot_min_rows=500, exact_max_rows=0)
    conn = open_db(path, first)
    data = clustered(2000, 20, seed=30)
    ids = np.arange(1, 2001)
    add(conn, first, 1, "ns", data[:1500])
    first.search(conn, data[0], "ns", 5)  # the whole load writes the snapshot
    assert snapshot_row(conn) == (1500, 0, 1500)
    add(conn, first, 1501, "ns", data[1500:])  # rows after the snapshot

    later = CountingIndex(DIM, snapshot_min_rows=500, exact_max_rows=0)  # a new process
    for q in near(data, 10, seed=31):
        assert [m for m, _ in later.search(conn, q, "ns", 5)] == exact_topk(data, ids, q, 5)
    assert later.rows_loaded == 500  # only the rows the snapshot lacks
    assert snapshot_row(conn) == (2000, 0, 2000)  # 500 new > 25% stale: rewritten
    conn.close()


def snapshotted(
    tmp_path: Path, n: int, seed: int
) -> tuple[Any, VectorIndex, np.ndarray, np.ndarray]:
    """A database with n rows in "ns" whose snapshot the first search wrote."""
    index = VectorIndex(DIM, snapshot_min_rows=500, exact_max_rows=0)
    conn = open_db(tmp_path / f"snap-{seed}.db", index)
    data = clustered(n, n // 100, seed=seed)
    ids = np.arange(1, n + 1)
    add(conn, index, 1, "ns", data)
    index.search(conn, data[0], "ns", 5)
    assert snapshot_row(conn) == (n, 0, n)
    return conn, index, data, ids


def test_a_snapshot_is_ignored_after_a_delete_and_rewritten(tmp_path: Path) -> None:
    conn, first, data, ids = snapshotted(tmp_path, 1000, seed=32)
    with write_transaction(conn):
        first.delete(conn, [1, 2, 3])

    later = CountingIndex(DIM, snapshot_min_rows=500, exact_max_rows=0)
    keep = ~np.isin(ids, [1, 2, 3])
    got = [m for m, _ in later.search(conn, data[0], "ns", 10)]
    assert got == exact_topk(data[keep], ids[keep], data[0], 10)
    assert later.rows_loaded == 997  # the snapshot predates the delete: loaded row by row
    assert snapshot_row(conn) == (1000, 1, 997)
    conn.close()


def test_a_damaged_snapshot_is_ignored(tmp_path: Path) -> None:
    conn, _, data, ids = snapshotted(tmp_path, 800, seed=33)
    conn.execute(f"UPDATE {SNAPSHOT_TABLE} SET codes = substr(codes, 1, 100)")
    later = CountingIndex(DIM, snapshot_min_rows=500, exact_max_rows=0)
    for q in near(data, 5, seed=34):
        assert [m for m, _ in later.search(conn, q, "ns", 5)] == exact_topk(data, ids, q, 5)
    assert later.rows_loaded == 800
    conn.close()


def test_small_namespaces_get_no_snapshot(db: tuple[Any, VectorIndex, Path]) -> None:
    conn, index, _ = db
    data = clustered(1000, 10, seed=35)
    add(conn, index, 1, "ns", data)
    index.search(conn, data[0], "ns", 5)
    assert snapshot_row(conn) is None


# -- the exact scan of small namespaces ------------------------------------------------------

SCAN_MAX = 300  # a small crossover, so "just above" it stays quick


def with_twins(n: int, seed: int) -> np.ndarray:
    """n clustered vectors of which the last 20 repeat earlier ones: exact ties."""
    data = clustered(n - 20, max(2, n // 50), seed=seed)
    return np.concatenate([data, data[:20]])


def test_exact_scan_and_code_index_agree_below_and_just_above_the_crossover(
    tmp_path: Path,
) -> None:
    conn = open_db(tmp_path / "x.db", VectorIndex(DIM))
    scan = VectorIndex(DIM, exact_max_rows=SCAN_MAX)
    codes = VectorIndex(DIM, exact_max_rows=0)  # the code index (vec0 below 200 rows)
    exact = VectorIndex(DIM, exact_max_rows=0, min_rescore=10_000)  # vec0 + exact rescoring
    data = with_twins(SCAN_MAX + 1, seed=40)
    ids = np.array(add(conn, scan, 1, "ns", data[:SCAN_MAX]))
    queries = list(near(data, 30, seed=41)) + list(data[:5]) + list(data[-5:])

    def agree(n: int) -> None:
        for q in queries:
            for k in (1, 5, 10, 40):
                got = scan.search(conn, q, "ns", k)
                assert got == exact.search(conn, q, "ns", k)  # ids, similarities, order
                assert got == codes.search(conn, q, "ns", k)
                # every row ranked exactly (the index ranks the normalized query)
                assert got == rank_exact(ids[:n], data[:n], scan._unit(q), k)

    agree(SCAN_MAX)
    assert scan.floats.sizes() == {"ns": SCAN_MAX} and scan.cache.sizes() == {}
    ids = np.concatenate([ids, add(conn, scan, SCAN_MAX + 1, "ns", data[SCAN_MAX:])])
    agree(SCAN_MAX + 1)  # one row more: the code index takes over
    assert scan.floats.sizes() == {} and scan.cache.sizes() == {"ns": SCAN_MAX + 1}
    with write_transaction(conn):
        scan.delete(conn, [int(ids[-1])])
    agree(SCAN_MAX)  # back under the crossover: scanned again
    assert scan.floats.sizes() == {"ns": SCAN_MAX}
    conn.close()


def test_similarities_of_the_scan_are_rank_exact_ones_for_unnormalized_rows(
    db: tuple[Any, VectorIndex, Path],
) -> None:
    conn, index, _ = db
    rng = np.random.default_rng(42)
    data = clustered(400, 8, seed=42) * rng.uniform(0.1, 30.0, (400, 1)).astype(np.float32)
    data[7] = 0.0  # a zero row scores 0, as in rank_exact
    add(conn, index, 1, "ns", data)
    ref = VectorIndex(DIM, exact_max_rows=0, min_rescore=10_000)
    for q in near(unit(data[:50] + 1e-3), 20, seed=43):
        for k in (1, 10, 50):
            assert index.search(conn, q, "ns", k) == ref.search(conn, q, "ns", k)
        got = index.search(conn, q, "ns", 400)
        assert got == rank_exact(np.arange(1, 401), data, index._unit(q), 400)
        assert dict(got)[8] == 0.0
    assert index.floats.sizes() == {"ns": 400}


def test_scanned_namespace_sees_writes_deletes_and_other_processes(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    mine, theirs = VectorIndex(DIM), VectorIndex(DIM)
    c1 = open_db(path, mine)
    c2 = open_db(path, theirs, create=False)
    data = clustered(1200, 12, seed=44)
    add(c1, mine, 1, "ns", data[:1000])
    q = data[1100]
    assert 1101 not in {m for m, _ in mine.search(c1, q, "ns", 5)}
    assert mine.floats.sizes() == {} and mine.cache.sizes() == {"ns": 1000}  # first: codes
    assert 1101 not in {m for m, _ in mine.search(c1, q, "ns", 5)}
    assert mine.floats.sizes() == {"ns": 1000} and mine.cache.sizes() == {}  # then the scan
    add(c1, mine, 1101, "ns", data[1100:1101])  # my own write: seen by the next search
    assert mine.search(c1, q, "ns", 1)[0][0] == 1101
    with write_transaction(c1):  # my own delete
        mine.delete(c1, [1101])
    assert 1101 not in {m for m, _ in mine.search(c1, q, "ns", 50)}
    add(c2, theirs, 2001, "ns", data[1100:1101])  # another process writes
    assert mine.search(c1, q, "ns", 1)[0][0] == 2001
    with write_transaction(c2):  # ... and deletes
        theirs.delete(c2, [2001, 1])
    got = {m for m, _ in mine.search(c1, q, "ns", 50)}
    assert 2001 not in got and 1 not in got
    assert mine.floats.sizes() == {"ns": 999}
    ids = np.arange(2, 1001)
    for qq in near(data[:1000], 10, seed=45):
        assert [m for m, _ in mine.search(c1, qq, "ns", 5)] == exact_topk(data[1:1000], ids, qq, 5)
    # uncommitted rows are seen inside their transaction only, never cached
    c1.execute("BEGIN IMMEDIATE")
    mine.add_many(c1, [(5000, "ns", data[1150])])
    assert mine.search(c1, data[1150], "ns", 1)[0][0] == 5000
    c1.execute("ROLLBACK")
    assert 5000 not in {m for m, _ in mine.search(c1, data[1150], "ns", 20)}
    assert mine.floats.sizes() == {"ns": 999}
    c1.close()
    c2.close()


def test_scan_memory_is_bounded_and_the_rest_use_the_code_index(tmp_path: Path) -> None:
    index = VectorIndex(DIM, exact_max_rows=500, max_exact_cached_rows=700)
    conn = open_db(tmp_path / "b.db", index)
    a, b = clustered(400, 4, seed=46), clustered(400, 4, seed=47)
    ids_a, ids_b = np.array(add(conn, index, 1, "a", a)), np.array(add(conn, index, 1001, "b", b))
    assert index.preload(conn, "a") == 400 and index.floats.sizes() == {"a": 400}
    for q in near(a, 5, seed=48):
        assert [m for m, _ in index.search(conn, q, "a", 5)] == exact_topk(a, ids_a, q, 5)
    for q in near(b, 5, seed=49):  # no room left for b: the code index, no reloads
        assert [m for m, _ in index.search(conn, q, "b", 5)] == exact_topk(b, ids_b, q, 5)
    assert index.floats.sizes() == {"a": 400} and index.cache.sizes() == {"b": 400}
    assert index.preload(conn, "b") == 400 and index.floats.sizes() == {"a": 400}
    add(conn, index, 2001, "a", clustered(301, 4, seed=50))  # a outgrows the budget
    index.search(conn, a[0], "a", 5)
    assert index.floats.sizes() == {} and index.cache.sizes() == {"b": 400, "a": 701}


class DeletesAfterTheCount:
    """A connection on which another writer deletes rows right after a row count: what a
    search outside a transaction may meet between its two statements."""

    def __init__(self, conn: Any, other: Any, index: VectorIndex, ids: list[int]) -> None:
        self._conn, self._other, self._index, self._ids = conn, other, index, ids
        self.in_transaction = False

    def execute(self, sql: str, args: Any = ()) -> Any:
        found = self._conn.execute(sql, args)
        if sql.startswith("SELECT count(*)") and self._ids:
            counted = found.fetchall()
            with write_transaction(self._other):
                self._index.delete(self._other, self._ids)
            self._ids = []
            return _Rows(counted)
        return found


class _Rows:
    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def fetchone(self) -> Any:
        return self._rows[0]


def test_rows_deleted_between_the_count_and_the_read_are_not_loaded(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    index, theirs = VectorIndex(DIM), VectorIndex(DIM)
    conn, other = open_db(path, index), open_db(path, theirs, create=False)
    data = clustered(300, 6, seed=46)
    add(conn, index, 1, "ns", data)
    racing = DeletesAfterTheCount(conn, other, theirs, [7, 150, 300])
    rows = index._load_floats(racing, "ns", 0, None, 1000)
    assert rows is not None and rows.n == 297
    kept = [i for i in range(1, 301) if i not in (7, 150, 300)]
    assert rows.ids.tolist() == kept
    assert np.array_equal(rows.vecs, data[np.array(kept) - 1])
    conn.close()
    other.close()


def low_rank(n: int, rank: int, seed: int) -> np.ndarray:
    """Unit rows near a `rank`-dimensional subspace: a namespace the scan projects."""
    rng = np.random.default_rng(seed)
    return unit(rng.standard_normal((n, rank)) @ rng.standard_normal((rank, DIM))
                + 0.05 * rng.standard_normal((n, DIM)))


def test_a_preload_can_leave_the_projection_for_later_and_searches_stay_exact(
    tmp_path: Path,
) -> None:
    """`preload(fit_later=True)` (a server's start) caches the rows without the scan's
    projection; searches are exact before, during and after `fit_pending`, rows stored in
    between are projected too, and an entry reloaded meanwhile is left alone."""
    index = VectorIndex(DIM)
    conn = open_db(tmp_path / "p.db", index)
    first = low_rank(2600, 8, seed=60)
    ids = add(conn, index, 1, "ns", first)
    assert index.preload(conn, "ns", fit_later=True) == 2600
    state = index._state(conn, "ns")
    assert index._floats(conn, "ns", state).projection is None
    queries = low_rank(8, 8, seed=61)
    for q in queries:
        assert [m for m, _ in index.search(conn, q, "ns", 5)] == exact_topk(first, np.array(ids), q, 5)
    more = low_rank(300, 8, seed=62)  # stored before the fit: appended without one
    ids += add(conn, index, 5001, "ns", more)
    index.search(conn, queries[0], "ns", 5)
    everything = np.concatenate([first, more])
    assert index._floats(conn, "ns", index._state(conn, "ns")).projection is None
    assert index.fit_pending() == 1 and index.fit_pending() == 0
    rows = index._floats(conn, "ns", index._state(conn, "ns"))
    assert rows.n == 2900 and rows.projection is not None
    heads, rests = rows.projection.project(everything)
    assert np.array_equal(rows.heads, heads) and np.array_equal(rows.rests, rests)
    for q in queries:
        got = index.search(conn, q, "ns", 5)
        assert got == rank_exact(np.array(ids), everything, index._unit(q), 5)

    # an entry reloaded between the preload and the fit (a delete) fits on its own
    again = VectorIndex(DIM)
    assert again.preload(conn, "ns", fit_later=True) == 2900
    with write_transaction(conn):
        again.delete(conn, [ids[0]])
    again.search(conn, queries[0], "ns", 5)  # reloads, fitting as it does
    assert again._floats(conn, "ns", again._state(conn, "ns")).projection is not None
    assert again.fit_pending() == 0
    conn.close()


def test_one_decoder_for_stored_vectors() -> None:
    """Every read of stored vectors goes through kernels.blobs_matrix: a list and a cursor
    (an iterator with a count) give the same floats as the BLOBs hold, a short cursor gives
    the rows that came, and a BLOB of another dimension is refused with what to look at."""
    from memrl.storage.sqlite.kernels import blobs_matrix, vector_blob

    vecs = clustered(7, 2, seed=70)
    blobs = [vector_blob(v) for v in vecs]
    assert np.array_equal(blobs_matrix(blobs, DIM), vecs)
    assert np.array_equal(blobs_matrix(iter(blobs), DIM, 7), vecs)
    assert np.array_equal(blobs_matrix(iter(blobs[:4]), DIM, 7), vecs[:4])
    assert blobs_matrix(iter(blobs), DIM, 7).dtype == np.float32
    with pytest.raises(ValueError, match="dimension mismatch"):
        blobs_matrix([blobs[0], blobs[1][:-4]], DIM)
    with pytest.raises(ValueError, match="more than the 3 vectors"):
        blobs_matrix(iter(blobs), DIM, 3)
