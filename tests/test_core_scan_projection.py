"""The exact scan's first pass over a projection (memrl/storage/sqlite/projection.py) gives
the plain scan's answer: the same rows, similarities and order as `rank_exact` over every
row, on data where the projection prunes, where it barely does, with ties, zero rows and
rows that are not unit length, and on the real model's vectors."""

from __future__ import annotations

import numpy as np
import pytest

from memrl.storage.sqlite.floats import PROJECT_MIN_ROWS, FloatEntry, FloatRows, scan_exact
from memrl.storage.sqlite.kernels import rank_exact
from memrl.storage.sqlite.projection import Projection, scan_projected


def low_rank(n: int, dim: int, rank: int, noise: float, seed: int) -> np.ndarray:
    """Unit rows near a `rank`-dimensional subspace: what a namespace of similar texts is."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, dim))
    x += noise * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def rows_of(vecs: np.ndarray) -> FloatRows:
    n = vecs.shape[0]
    return FloatRows.build(np.arange(1, n + 1), np.arange(100, 100 + n), vecs)


def check_same(rows: FloatRows, queries: np.ndarray, ks: tuple[int, ...] = (1, 5, 10, 40)) -> None:
    for q in queries:
        q = (q / np.linalg.norm(q)).astype(np.float32)
        for k in ks:
            assert scan_exact(rows, q, k) == rank_exact(rows.ids, rows.vecs, q, k)


def test_the_projection_prunes_low_rank_data_and_keeps_the_exact_answer() -> None:
    vecs = low_rank(3000, 64, rank=6, noise=0.05, seed=1)
    proj = Projection.fit(vecs)
    assert proj is not None and proj.d <= 16
    rows = rows_of(vecs).projected(proj)
    queries = np.concatenate([low_rank(60, 64, 6, 0.05, seed=2), vecs[:20]])
    check_same(rows, queries)


def test_ties_zero_rows_and_rows_that_are_not_unit_length() -> None:
    vecs = low_rank(2500, 48, rank=5, noise=0.02, seed=3)
    vecs[10:40] = vecs[5]  # thirty copies of one row: every k cuts through a tie
    vecs[50] = 0.0
    vecs[60:200] *= np.linspace(0.2, 3.0, 140, dtype=np.float32)[:, None]
    proj = Projection.fit(vecs)
    assert proj is not None
    rows = rows_of(vecs).projected(proj)
    check_same(rows, np.concatenate([vecs[[5, 50, 61, 199]] + 1e-3, low_rank(20, 48, 5, 0.02, 4)]),
               ks=(1, 5, 29, 30, 31, 100))


def test_isotropic_data_gets_no_projection() -> None:
    rng = np.random.default_rng(5)
    vecs = rng.standard_normal((3000, 64)).astype(np.float32)
    assert Projection.fit(vecs) is None


def part(rows: FloatRows, start: int, stop: int | None = None) -> FloatRows:
    return FloatRows(rows.seqs[start:stop], rows.ids[start:stop], rows.vecs[start:stop],
                     rows.inv_norms[start:stop])


def test_a_cached_entry_fits_once_it_is_large_and_keeps_appended_rows_in_its_projection() -> None:
    dim = 64
    vecs = low_rank(PROJECT_MIN_ROWS + 700, dim, rank=6, noise=0.05, seed=6)
    all_rows = rows_of(vecs)
    first, second = PROJECT_MIN_ROWS - 300, PROJECT_MIN_ROWS + 200
    entry = FloatEntry(dim, 0, part(all_rows, 0, first))
    assert entry.view().projection is None  # too few rows yet
    entry.append(part(all_rows, first, second))
    view = entry.view()
    assert view.projection is not None and view.heads is not None
    rest = part(all_rows, second)
    inside = FloatRows.concat(view, rest)  # the rows of an open transaction, for one search
    entry.append(rest)
    heads, rests = view.projection.project(vecs)
    for got in (entry.view(), inside):
        assert got.n == vecs.shape[0] and got.projection is view.projection
        assert np.array_equal(got.heads, heads) and np.array_equal(got.rests, rests)
        check_same(got, low_rank(15, dim, 6, 0.05, seed=7), ks=(1, 5))


@pytest.fixture(scope="module")
def real_vectors():
    from memrl_clients.bench import data

    from memrl import load_embedder

    embedder = load_embedder(query_cache=0)
    texts = data.task_texts(2600, seed=41)
    return embedder.embed(texts[:2500]), embedder.embed(texts[2500:])


def test_on_the_real_model_the_projection_prunes_and_answers_exactly(real_vectors) -> None:
    stored, queries = real_vectors
    proj = Projection.fit(stored)
    assert proj is not None and proj.d < stored.shape[1] // 2
    rows = rows_of(stored).projected(proj)
    check_same(rows, queries, ks=(1, 5, 10))
    # and it prunes: the rows the first pass leaves for exact ranking are few
    q = queries[0] / np.linalg.norm(queries[0])
    seen = []
    import memrl.storage.sqlite.projection as module

    original = module.rank_exact
    module.rank_exact = lambda ids, mat, q, k: seen.append(len(ids)) or original(ids, mat, q, k)
    try:
        scan_projected(rows.ids, rows.vecs, rows.inv_norms, rows.heads, rows.rests, proj, q, 5)
    finally:
        module.rank_exact = original
    assert seen and seen[0] < stored.shape[0] // 10


def test_the_probe_answers_alone_only_when_no_other_row_can_reach_the_top_k(monkeypatch) -> None:
    """Both ways out of the first pass give the plain scan's answer: the probe rows' own
    top k (no row outside them has a bound reaching its k-th cosine) and the ranking of
    every row whose bound reaches it (thirty equal rows: ties beyond the probe)."""
    import memrl.storage.sqlite.projection as module

    vecs = low_rank(2500, 48, rank=5, noise=0.02, seed=8)
    vecs[100:130] = vecs[99]
    proj = Projection.fit(vecs)
    assert proj is not None
    rows = rows_of(vecs).projected(proj)
    calls: list[int] = []
    original = module.rank_exact

    def counted(ids, mat, q, k):
        calls.append(len(ids))
        return original(ids, mat, q, k)

    ways = set()
    for q in np.concatenate([vecs[[99, 5, 700]] + 1e-3, low_rank(10, 48, 5, 0.02, 9)]):
        q = (q / np.linalg.norm(q)).astype(np.float32)
        for k in (1, 5, 20):
            calls.clear()
            monkeypatch.setattr(module, "rank_exact", counted)
            got = scan_exact(rows, q, k)
            monkeypatch.setattr(module, "rank_exact", original)
            assert got == rank_exact(rows.ids, rows.vecs, q, k)
            ways.add(len(calls))
    assert ways == {1, 2}
