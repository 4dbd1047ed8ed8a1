"""The per-process cache of float vectors of small namespaces, searched by an exact scan.

Below a measured size (`index.EXACT_MAX_ROWS`, see docs/PERFORMANCE.md) a scan of a
namespace's float32 vectors held in memory is faster than the code index, and exact. An
entry holds a namespace's rows in seq order (seqs, ids, vectors, inverse norms) and is
kept coherent with the database exactly as the code cache (codes.py) is: rows committed
later (larger seqs) are appended, a delete (the namespace's delete counter moved) makes
the next search reload it.

Memory is bounded by a total row budget. A namespace enters the cache only if it fits in
what is left of the budget; nothing is evicted to make room, so namespaces that do not fit
are searched by the code index instead of reloading each other's vectors on every search.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .codes import Key, KeyedCache
from .kernels import ROWS_PER_CHUNK, matvec, rank_exact
from .projection import Projection, scan_projected

# A namespace's rows get a projection (projection.py: a first pass over a few main
# directions) from this many rows on; below it the plain scan reads little.
PROJECT_MIN_ROWS = 2048


@dataclass
class FloatRows:
    """Float vectors of some rows of one namespace, in seq order; with a projection, each
    row's head and rest length in it (projection.py)."""

    seqs: np.ndarray  # int64 (n,)
    ids: np.ndarray  # int64 (n,)
    vecs: np.ndarray  # float32 (n, dim), row-major
    inv_norms: np.ndarray  # float32 (n,): 1 / |row| (1 for a zero row)
    projection: Projection | None = None
    heads: np.ndarray | None = None  # float32 (n, d)
    rests: np.ndarray | None = None  # float32 (n,)

    @property
    def n(self) -> int:
        return int(self.seqs.shape[0])

    def prefix(self, n: int) -> FloatRows:
        if self.projection is None or self.heads is None or self.rests is None:
            return FloatRows(self.seqs[:n], self.ids[:n], self.vecs[:n], self.inv_norms[:n])
        return FloatRows(
            self.seqs[:n], self.ids[:n], self.vecs[:n], self.inv_norms[:n],
            self.projection, self.heads[:n], self.rests[:n],
        )

    def projected(self, projection: Projection | None) -> FloatRows:
        """These rows with their heads and rest lengths in `projection` (None: without)."""
        if projection is None:
            return FloatRows(self.seqs, self.ids, self.vecs, self.inv_norms)
        if projection is self.projection:
            return self
        heads, rests = projection.project(self.vecs)
        return FloatRows(self.seqs, self.ids, self.vecs, self.inv_norms, projection, heads, rests)

    @classmethod
    def build(cls, seqs: np.ndarray, ids: np.ndarray, vecs: np.ndarray) -> FloatRows:
        norms = np.empty(vecs.shape[0], np.float64)
        for start in range(0, vecs.shape[0], ROWS_PER_CHUNK):  # no float64 copy of it all
            mat64 = vecs[start : start + ROWS_PER_CHUNK].astype(np.float64)
            norms[start : start + ROWS_PER_CHUNK] = np.sqrt(np.einsum("ij,ij->i", mat64, mat64))
        norms[norms == 0] = 1.0
        return cls(seqs, ids, vecs, (1.0 / norms).astype(np.float32))

    @classmethod
    def empty(cls, dim: int) -> FloatRows:
        return cls(
            np.empty(0, np.int64), np.empty(0, np.int64),
            np.empty((0, dim), np.float32), np.empty(0, np.float32),
        )

    @classmethod
    def concat(cls, a: FloatRows, b: FloatRows) -> FloatRows:
        """a's rows then b's, in a's projection."""
        if b.n == 0:
            return a
        b = b.projected(a.projection)
        if a.projection is None or a.heads is None or a.rests is None:
            return cls(
                np.concatenate([a.seqs, b.seqs]),
                np.concatenate([a.ids, b.ids]),
                np.concatenate([a.vecs, b.vecs]),
                np.concatenate([a.inv_norms, b.inv_norms]),
            )
        assert b.heads is not None and b.rests is not None
        return cls(
            np.concatenate([a.seqs, b.seqs]),
            np.concatenate([a.ids, b.ids]),
            np.concatenate([a.vecs, b.vecs]),
            np.concatenate([a.inv_norms, b.inv_norms]),
            a.projection,
            np.concatenate([a.heads, b.heads]),
            np.concatenate([a.rests, b.rests]),
        )


def scan_margin(dim: int) -> float:
    """A bound on twice the error of a float32 cosine against `rank_exact`'s.

    A float32 dot product of n terms is within n * 2**-24 * |q| |v| of the exact one
    (summation in any order); dividing by a float32 norm and rounding the exact value to
    float32 add a few units of 2**-24. Twice that, with room: 8 * dim * 2**-24 (1.8e-4 at
    384 dimensions)."""
    return 8.0 * dim * 2.0**-24


def scan_exact(rows: FloatRows, q: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The k rows nearest to the unit vector q, exactly as `rank_exact` over all rows ranks
    them (same similarities, ties to the newer id).

    A float32 scan of every row picks the candidates: every row whose float32 cosine is
    within `scan_margin` of the k-th best. A row of the exact top k has a float32 cosine
    at least the exact k-th cosine less the error, and the exact k-th cosine is at least
    the float32 k-th less the error, so the candidates hold the exact top k (with its
    ties); `rank_exact` then ranks only them."""
    n = rows.n
    if n == 0 or k <= 0:
        return []
    if n <= k:
        return rank_exact(rows.ids, rows.vecs, q, k)
    if rows.projection is not None and rows.heads is not None and rows.rests is not None:
        return scan_projected(
            rows.ids, rows.vecs, rows.inv_norms, rows.heads, rows.rests, rows.projection, q, k
        )
    sims = matvec(rows.vecs, q)
    sims *= rows.inv_norms
    kth = float(np.partition(sims, n - k)[n - k])
    cand = np.flatnonzero(sims >= kth - scan_margin(rows.vecs.shape[1]))
    return rank_exact(rows.ids[cand], rows.vecs[cand], q, k)


class FloatEntry:
    """A growable cache of one namespace's float rows (append-only between reloads). From
    PROJECT_MIN_ROWS rows on, it fits a projection (projection.py) on its rows, once, and
    keeps every row's head and rest length in it; a fit that finds none is tried again when
    the rows have doubled."""

    def __init__(self, dim: int, deletes: int, rows: FloatRows, fit_later: bool = False) -> None:
        self.deletes = deletes
        self.dim = dim
        self.n = 0
        self.max_seq = 0
        self._rows = FloatRows.empty(dim)
        self._fit_at = 0  # rows when a fit last found no projection
        # the fit is left to `FloatCache.fit_pending` (a server's first recall need not wait
        # for it); until then the rows are scanned without a projection
        self.fit_pending = fit_later
        self.append(rows)

    def append(self, part: FloatRows, max_cap: int | None = None) -> None:
        m = part.n
        if m == 0:
            return
        need = self.n + m
        cap = self._rows.n
        projection = self._rows.projection
        if projection is None and not self.fit_pending and need >= max(PROJECT_MIN_ROWS, 2 * self._fit_at):
            old = self._rows.prefix(self.n)
            projection = Projection.fit(old.vecs, part.vecs)
            if projection is None:
                self._fit_at = need
            else:
                cap = 0  # reallocate below, with room for the heads
        if need > cap:
            # Grow by a quarter, not a doubling: a vector is 1.5 KB per row.
            cap = max(need, self._rows.n + self._rows.n // 4) if self.n else need
            if max_cap is not None:
                cap = max(need, min(cap, max_cap))
            grown = FloatRows(
                np.empty(cap, np.int64), np.empty(cap, np.int64),
                np.empty((cap, self.dim), np.float32), np.empty(cap, np.float32),
            )
            if projection is not None:
                grown.projection = projection
                grown.heads = np.empty((cap, projection.d), np.float32)
                grown.rests = np.empty(cap, np.float32)
            old = self._rows.prefix(self.n)
            grown.seqs[: self.n] = old.seqs
            grown.ids[: self.n] = old.ids
            grown.vecs[: self.n] = old.vecs
            grown.inv_norms[: self.n] = old.inv_norms
            if grown.heads is not None and grown.rests is not None and self.n:
                kept = old.projected(projection)
                grown.heads[: self.n] = kept.heads
                grown.rests[: self.n] = kept.rests
            self._rows = grown
        r = self._rows
        r.seqs[self.n : need] = part.seqs
        r.ids[self.n : need] = part.ids
        r.vecs[self.n : need] = part.vecs
        r.inv_norms[self.n : need] = part.inv_norms
        if r.heads is not None and r.rests is not None:
            added = part.projected(r.projection)
            r.heads[self.n : need] = added.heads
            r.rests[self.n : need] = added.rests
        self.n = need
        self.max_seq = int(part.seqs[-1])

    def adopt(self, projection: Projection | None, m: int, heads: np.ndarray | None,
              rests: np.ndarray | None) -> None:
        """Take a projection fitted (and its heads and rest lengths computed) elsewhere on
        this entry's first m rows; rows appended since are projected here."""
        self.fit_pending = False
        if projection is None or heads is None or rests is None:
            self._fit_at = m if m >= PROJECT_MIN_ROWS else 0  # else no fit was tried
            return
        r = self._rows
        all_heads = np.empty((r.n, projection.d), np.float32)
        all_rests = np.empty(r.n, np.float32)
        all_heads[:m], all_rests[:m] = heads, rests
        if self.n > m:
            all_heads[m : self.n], all_rests[m : self.n] = projection.project(r.vecs[m : self.n])
        # a new object: views taken before keep scanning without the projection
        self._rows = FloatRows(r.seqs, r.ids, r.vecs, r.inv_norms, projection, all_heads, all_rests)

    @property
    def capacity(self) -> int:
        return self._rows.n

    def view(self) -> FloatRows:
        # Views stay valid while later appends write past n or reallocate.
        return self._rows.prefix(self.n)


class FloatCache(KeyedCache[FloatEntry]):
    """Entries by key within `max_rows` rows (of allocated capacity) in all."""

    def lookup(self, key: Key, deletes: int) -> tuple[FloatEntry | None, FloatRows | None, int]:
        """(entry, its view, its newest seq) if cached and no delete happened since."""
        with self.lock:
            entry = self._entries.get(key)
            if entry is None:
                return None, None, 0
            if entry.deletes != deletes:
                return entry, None, 0
            return entry, entry.view(), entry.max_seq

    def room(self, key: Key) -> int:
        """Rows a (re)load of `key` may hold within the budget."""
        with self.lock:
            used = sum(e.capacity for k, e in self._entries.items() if k != key)
        return self.max_rows - used

    def put(
        self, key: Key, dim: int, deletes: int, rows: FloatRows, fit_later: bool = False
    ) -> FloatRows | None:
        """Cache `rows` as the namespace's entry if they fit in the budget; their view.
        With `fit_later` the entry's projection is left to `fit_pending`."""
        # built before taking the lock: an entry of PROJECT_MIN_ROWS rows or more fits its
        # projection (tens of ms), which must not hold up other namespaces' lookups
        fresh = FloatEntry(dim, deletes, rows, fit_later)
        with self.lock:
            self._entries.pop(key, None)
            used = sum(e.capacity for e in self._entries.values())
            if used + rows.n > self.max_rows:
                return None
            self._entries[key] = fresh
            return fresh.view()

    def extend(self, key: Key, entry: FloatEntry, seen_max: int, part: FloatRows) -> FloatRows | None:
        """Append `part` to `entry` if it is still the cached one at `seen_max` and the
        budget allows; its view. None when the entry was dropped or replaced."""
        with self.lock:
            if entry is not self._entries.get(key) or entry.max_seq != seen_max:
                return None
            limit = self.max_rows - sum(
                e.capacity for k, e in self._entries.items() if k != key
            )
            if entry.n + part.n > limit:
                del self._entries[key]
                return None
            entry.append(part, limit)
            return entry.view()

    def fit_pending(self) -> int:
        """Fit the projections left for later (`put(..., fit_later=True)`), without holding
        the lock while fitting: searches go on meanwhile, scanning without one. How many
        entries took one."""
        with self.lock:
            pending = [(k, e, e.view()) for k, e in self._entries.items() if e.fit_pending]
        fitted = 0
        for key, entry, rows in pending:
            projection = Projection.fit(rows.vecs) if rows.n >= PROJECT_MIN_ROWS else None
            heads, rests = projection.project(rows.vecs) if projection is not None else (None, None)
            with self.lock:
                # dropped or reloaded since (a reload fits when it is built): nothing to do
                if self._entries.get(key) is entry:
                    entry.adopt(projection, rows.n, heads, rests)
                    fitted += projection is not None
        return fitted
