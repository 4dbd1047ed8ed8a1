"""An exact first pass for the scan of a namespace's float vectors: most of each vector's
length lies in few directions, so a bound on every cosine costs a fraction of the scan.

Sentence embeddings of one namespace are far from isotropic: in the main directions of
its vectors (the eigenvectors of their second moment) the first 96 of 384 coordinates hold
~94% of the squared length of the bench's task texts and the first 192 ~92% of real
sentences (docs/PERFORMANCE.md). Rotating every vector and the query into that basis keeps
each dot product (the basis is orthonormal), and splits it into a head, the first `d`
coordinates, and the rest:

    q . v = q_head . v_head + q_rest . v_rest <= q_head . v_head + |q_rest| |v_rest|

So a pass over the heads alone (d floats a row instead of 384) gives an upper bound on
every row's cosine. The exact cosines of the rows with the best bounds give a lower bound
on the k-th best cosine; only rows whose bound reaches it (within the float error, see
`margin`) can be in the top k, and `kernels.rank_exact` ranks those, over their original
vectors (or, when no row outside the best-bound ones can, their own ranking is the answer):
the result is the plain scan's, row for row and bit for bit. The bound holds for
any orthonormal basis; a basis fitted on fewer rows than the namespace holds now only
prunes less.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .kernels import ROWS_PER_CHUNK, matvec, rank_exact

# Squared length the head must hold (of the namespace's vectors, on average); the head is a
# multiple of HEAD_STEP coordinates, and no projection is kept when it would need more
# than half the coordinates (the first pass would then read most of what the scan reads).
HEAD_ENERGY = 0.9
HEAD_STEP = 16
# Rows the basis is fitted on (evenly spread over the namespace).
FIT_ROWS = 1024
# Rows whose exact cosines set the first lower bound on the k-th best: k + this.
PROBE_EXTRA = 8
# Added to every rest length: above the float64 error of sqrt(|v|^2 - |head|^2).
REST_SLACK = 1e-7


@functools.cache
def _blas() -> object:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """numpy's BLAS and LAPACK on one thread inside the block (threadpoolctl). Measured on
    2 cores: a 384 x 384 `eigh` took 340-700 ms with OpenBLAS's two threads, 19 ms with
    one; its idle threads also spin for a while after each call, taking a core from the
    model."""
    with _blas().limit(limits=1):  # type: ignore[attr-defined]
        yield


@dataclass(frozen=True, eq=False)
class Projection:
    """An orthonormal basis (dim x dim, float64, the main directions first) and the head
    width `d`."""

    basis: np.ndarray
    d: int

    @functools.cached_property
    def head_basis(self) -> np.ndarray:
        """The first d directions as rows (d x dim, float64, contiguous)."""
        return np.ascontiguousarray(self.basis[:, : self.d].T)

    @classmethod
    def fit(cls, *parts: np.ndarray) -> Projection | None:
        """The main directions of the rows of `parts` taken as one (float32, row-major: a
        namespace's cached rows and those being added, never copied into one array), or
        None when a head of at most half the coordinates would hold less than HEAD_ENERGY
        of their squared length. Fitted on every (n // FIT_ROWS)-th row."""
        n = sum(part.shape[0] for part in parts)
        dim = parts[0].shape[1]
        if n == 0:
            return None
        step, before, taken = max(1, n // FIT_ROWS), 0, []
        for part in parts:
            taken.append(part[(-before) % step :: step])
            before += part.shape[0]
        sample = np.concatenate(taken).astype(np.float64)
        with one_blas_thread():
            energy, basis = np.linalg.eigh(sample.T @ sample)  # ascending
        energy, basis = energy[::-1], np.ascontiguousarray(basis[:, ::-1])
        total = float(energy.sum())
        if total <= 0.0:
            return None
        share = np.cumsum(energy) / total
        d = int(np.searchsorted(share, HEAD_ENERGY) + 1)
        d = -(-d // HEAD_STEP) * HEAD_STEP
        if d > dim // 2:
            return None
        return cls(basis, d)

    def project(self, vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(heads float32 (n, d), rest lengths float32 (n,)) of `vecs`, both in float64
        first. A rest length is sqrt(|v|^2 - |head|^2) (float64 cancellation leaves it
        within 1e-7 even when it is tiny), raised by REST_SLACK and rounded up: the bound
        stays a bound."""
        n = vecs.shape[0]
        heads = np.empty((n, self.d), np.float32)
        rests = np.empty(n, np.float32)
        basis = self.basis[:, : self.d]
        with one_blas_thread():
            # in chunks: float64 copies of a whole namespace would be fresh memory every
            # time, and first touches of pages cost more than the arithmetic here
            for start in range(0, n, ROWS_PER_CHUNK):
                v64 = vecs[start : start + ROWS_PER_CHUNK].astype(np.float64)
                head = v64 @ basis
                rest2 = np.einsum("ij,ij->i", v64, v64) - np.einsum("ij,ij->i", head, head)
                rest = np.sqrt(np.maximum(rest2, 0.0)) + REST_SLACK
                rest32 = rest.astype(np.float32)
                rests[start : start + ROWS_PER_CHUNK] = np.where(
                    rest32 < rest, np.nextafter(rest32, np.float32(np.inf)), rest32
                )
                heads[start : start + ROWS_PER_CHUNK] = head
        return heads, rests


def margin(dim: int) -> float:
    """What the pruning gives away to float error, with room: the bound's error (a float32
    dot product of d terms of float32-rounded coordinates, < (dim + 2) * 2**-24 for unit
    vectors), the lower bound's (a `rank_exact` cosine, one float32 rounding; counted as a
    float32 cosine's 4 * dim * 2**-24, as `floats.scan_margin` does) and `rank_exact`'s
    rounding, each counted twice: 16 * dim * 2**-24 (3.7e-4 at 384 dimensions)."""
    return 16.0 * dim * 2.0**-24


def scan_projected(
    ids: np.ndarray, vecs: np.ndarray, inv_norms: np.ndarray, head: np.ndarray,
    rest: np.ndarray, proj: Projection, q: np.ndarray, k: int,
) -> list[tuple[int, float]]:
    """The k rows nearest to the unit vector q, exactly as `rank_exact` over all rows ranks
    them (the module docstring says why). Rows are those of `vecs` (their float32 vectors,
    inverse norms, heads and rest lengths); n > k."""
    n, dim = vecs.shape
    q64 = q.astype(np.float64)
    q_head = matvec(proj.head_basis, q64)  # numpy's own loop: no BLAS threads on the hot path
    q_rest = float(np.sqrt(max(float(q64 @ q64) - float(q_head @ q_head), 0.0))) + REST_SLACK
    bound = matvec(head, q_head.astype(np.float32))
    bound += np.float32(q_rest) * rest
    bound *= inv_norms  # a bound on the cosine, as the scan's estimates are cosines
    # rows of zero length have cosine 0 in rank_exact (norm taken as 1): the bound of a
    # zero row is 0 too, so nothing special is needed
    probe_n = min(n - 1, k + PROBE_EXTRA)
    # the probe_n best bounds last, the next best just before them
    order = np.argpartition(bound, n - probe_n - 1)
    probe = order[n - probe_n :]
    # the exact top k of the probe rows; its k-th cosine is a lower bound on the k-th best
    # of all rows
    top = rank_exact(ids[probe], vecs[probe], q, k)
    threshold = top[-1][1] - margin(dim)
    if bound[order[n - probe_n - 1]] < threshold:
        # no row outside the probe can reach the top k, and rank_exact orders any set of
        # rows holding the top k as it orders all of them
        return top
    cand = np.flatnonzero(bound >= threshold)
    return rank_exact(ids[cand], vecs[cand], q, k)
