"""Numpy kernels of the vector index: sign codes, Hamming distance, exact cosine ranking.

Pure functions of arrays, no storage: the index (`index.py`) decides what to feed them.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

# Row-wise float64 work over a whole namespace goes in chunks of this many rows (1.5 MB of
# float64 at 384 dimensions): a copy of it all would be fresh memory on every load, and
# on these machines first touches of pages cost more than the arithmetic (docs/PERFORMANCE.md,
# "Cold start: less work before the first recall").
ROWS_PER_CHUNK = 512


def vector_blob(vec: np.ndarray) -> bytes:
    """A float32 little-endian BLOB (the on-disk format of a vector)."""
    return np.ascontiguousarray(vec, dtype="<f4").tobytes()


def blobs_matrix(blobs: Iterable[bytes], dim: int, n: int | None = None) -> np.ndarray:
    """(m, dim) float32 array from float32 BLOBs (the on-disk format of `vector_blob`); a
    BLOB of another size (another dimension) is refused. With `n` (at most that many, m is
    how many came) each BLOB is copied into the array as it comes, so a cursor is read
    without keeping its rows (10k rows: 28-39 -> 22 ms); without, `blobs` is taken whole."""
    width = dim * 4
    if n is None:  # a list in hand: one join is faster (200 rows: 9 against 32 us)
        blobs = list(blobs)
        joined = b"".join(blobs)
        if len(joined) != len(blobs) * width:  # (per BLOB, this check costs as much again)
            for blob in blobs:
                _check_size(blob, width, dim)
        flat = np.frombuffer(joined, dtype="<f4").reshape(len(blobs), dim)
        return flat.astype(np.float32, copy=False)  # native order: a no-op on little-endian
    out = np.empty((n, dim), "<f4")
    into = out.data.cast("B")
    m = 0
    for blob in blobs:
        if m == n:
            raise ValueError(f"more than the {n} vectors expected")
        _check_size(blob, width, dim)
        into[m * width : (m + 1) * width] = blob
        m += 1
    return out[:m].astype(np.float32, copy=False)


def _check_size(blob: bytes, width: int, dim: int) -> None:
    if len(blob) != width:
        raise ValueError(
            f"a stored vector has {len(blob)} bytes where {dim} dimensions take {width} "
            "(dimension mismatch?)"
        )


def sign_codes(vectors: np.ndarray) -> np.ndarray:
    """One bit per dimension (1 where the component is > 0), packed: (n, ceil(dim/64)*8) uint8."""
    bits = np.packbits(np.asarray(vectors) > 0, axis=1)
    pad = (-bits.shape[1]) % 8
    if pad:
        bits = np.pad(bits, ((0, 0), (0, pad)))
    return np.ascontiguousarray(bits)


_M1, _M2, _M4 = (np.uint64(v) for v in (0x5555555555555555, 0x3333333333333333, 0x0F0F0F0F0F0F0F0F))
_H01 = np.uint64(0x0101010101010101)


def popcount_swar(x: np.ndarray) -> np.ndarray:
    """Bits set per uint64 (uint8 result), for numpy < 2.0 which lacks np.bitwise_count."""
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return ((x * _H01) >> np.uint64(56)).astype(np.uint8)


_popcount = getattr(np, "bitwise_count", popcount_swar)


def matvec(mat: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """mat @ vec without BLAS threads: for a few thousand rows, a multi-threaded BLAS gemv
    gains nothing and can stall for milliseconds when the cores are busy. Row i's result
    depends on row i alone, so a row scores the same whatever rows come with it."""
    return np.einsum("ij,j->i", mat, vec)


def nearest_hamming(words: np.ndarray, qwords: np.ndarray, m: int) -> np.ndarray:
    """Indices of (at least m, about m) columns of `words` nearest to `qwords` in Hamming distance."""
    n = words.shape[1]
    dist = np.zeros(n, dtype=np.uint16)
    buf = np.empty(n, dtype=np.uint64)
    for j in range(words.shape[0]):
        np.bitwise_xor(words[j], qwords[j], out=buf)
        dist += _popcount(buf)
    # Distances are small integers: a histogram finds the cut-off in one pass, far faster
    # than a partial sort of n values.
    hist = np.bincount(dist, minlength=words.shape[0] * 64 + 1)
    cut = int(np.searchsorted(np.cumsum(hist), m))
    below = np.flatnonzero(dist < cut)
    ties = np.flatnonzero(dist == cut)[: m - below.shape[0]]
    return np.concatenate([below, ties])


def asymmetric_scores(words: np.ndarray, idx: np.ndarray, q: np.ndarray, dim: int) -> np.ndarray:
    """q . b over the sign bits b in {0, 1} of columns `idx`: ranking by it is ranking by
    q . (2b - 1), the float query against the +-1 code (far more precise than Hamming)."""
    cand_words = words[:, idx].T  # (m, W) uint64
    bits = np.unpackbits(np.ascontiguousarray(cand_words).view(np.uint8), axis=1)
    return matvec(bits[:, :dim].astype(np.float32), q)


def rank_exact(
    ids: np.ndarray, mat: np.ndarray, q: np.ndarray, k: int
) -> list[tuple[int, float]]:
    """The k rows nearest to the unit vector q by exact cosine, as (id, similarity), best
    first, ties to the larger (newer) id. Every search path ends here, so the same rows
    always get the same similarities and the same order.

    A float32 dot product's last bits depend on how SIMD lanes split the sum, which
    depends on the buffer's alignment and the batch: the same row scored 0.73590726 in
    one batch and 0.73590720 in another. Summing in float64 and rounding to float32 makes
    a row's similarity a function of the row and the query alone."""
    if ids.shape[0] == 0:
        return []
    mat64 = mat.astype(np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", mat64, mat64))
    norms[norms == 0] = 1.0
    sims = (matvec(mat64, q.astype(np.float64)) / norms).astype(np.float32)
    order = np.lexsort((-ids, -sims))[:k]
    return [(int(ids[i]), float(sims[i])) for i in order]
