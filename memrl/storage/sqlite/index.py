"""Intent vectors in SQLite, searched by cosine similarity within one namespace.

Every method takes the caller's connection: writes happen inside the caller's
transaction, so an intent and its vector commit or roll back together. The tables are
created by the schema migrations (migrations.py); this module only reads and writes them.

The vectors of record live in a sqlite-vec ``vec0`` table (``intent_vec0``: float
vectors, cosine distance, the namespace as partition key, so the KNN query filters by
namespace inside sqlite-vec). Small namespaces are searched there directly. Brute-force
vec0 KNN grows linearly (measured here: 5.5 ms at 10k rows, 628 ms at 1M), and vec0 reads
single vectors by id slowly (about 1 ms each), so large namespaces use a derived index:

1. Each vector is stored twice in one row of ``intent_vectors``: the float32 vector
   and a 1-bit-per-dimension sign code (48 bytes at 384 dimensions). A covering index
   on (namespace, seq, intent_id, code) lets a process load a namespace's codes
   without touching the float vectors.
2. Each process keeps the codes of the namespaces it searches in memory (codes.py). The
   cache is checked on every search against the database with one cheap statement: the
   namespace's newest ``seq`` (AUTOINCREMENT, so committed rows only ever get larger
   ones) and its delete counter (bumped by `delete`). New rows committed by any process
   are appended; a delete reloads the namespace. A search inside an open transaction
   never stores uncommitted rows in the cache: it reads them for that search only.
   Large namespaces load from on-disk code snapshots (snapshots.py).
3. Coarse pass: Hamming distance between the query's sign code and every code
   (popcount over 6 words per row), keeping the ``coarse`` nearest.
4. Refine pass: the query in float against those candidates' sign codes
   (asymmetric distance, far more precise than Hamming), keeping ``rescore``.
5. Exact pass: the float vectors of those rows are read from SQLite by primary key and
   scored by exact cosine; the best k are returned.

Namespaces of at most `EXACT_MAX_ROWS` rows are searched by neither once a process has
searched them once: their float vectors are held in memory and scanned exactly
(floats.py), which measured faster than the code index at those sizes. The vectors are
kept coherent as the codes are (the same cache check; appended, reloaded after a delete,
uncommitted rows never cached) within a memory budget.

All paths end in the same exact pass (`kernels.rank_exact` over the stored float
vectors): the vec0 path asks sqlite-vec for k plus `TIE_MARGIN` neighbours and rescores
them, so the two paths give the same similarities and the same order (ties to the newer
intent) for the same data, whichever a namespace's size selects; the scan ranks its
candidates (every row within a float32 error bound of the k-th best) by the same function.

The similarities returned are always exact cosines; only the candidate set of the code
path is approximate. With the defaults (rescore = max(200, 40 k), coarse = max(1000,
5 rescore)) recall@10 against exact search measured 0.99-1.0 on clustered data up to 1M rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .codes import CodeCache, Key, Rows
from .floats import FloatCache, FloatRows, scan_exact
from .kernels import (
    asymmetric_scores,
    blobs_matrix,
    nearest_hamming,
    rank_exact,
    sign_codes,
    vector_blob,
)
from .snapshots import STATE_TABLE, read_snapshot, save_snapshot_if_due

VECTOR_TABLE = "intent_vectors"
VEC0_TABLE = "intent_vec0"
META_TABLE = "memory_vector_meta"
CODE_FORMAT = "sign-bits-v1"

# Candidate budgets (see the module docstring). Tuned on 384-d sentence embeddings.
OVERSAMPLE = 40
MIN_RESCORE = 200
MAX_RESCORE = 4096
COARSE_FACTOR = 5
MIN_COARSE = 1000
# Extra vec0 neighbours rescored exactly, so ties at the k-th place resolve the same way
# on both paths (exact ties need identical vectors: rare among distinct intents).
TIE_MARGIN = 16
# Rows of codes kept in memory per process across all namespaces (64 bytes per row).
MAX_CACHED_ROWS = 4_000_000
# A namespace this large gets a code snapshot; smaller ones load from the covering index
# in well under a second even with a cold page cache.
SNAPSHOT_MIN_ROWS = 20_000
# A namespace of at most this many rows is searched by an exact scan of its float32
# vectors held in memory (floats.py), which measured faster than the code index below
# this size (docs/PERFORMANCE.md, "Exact scan or code index"); larger ones by the code index.
EXACT_MAX_ROWS = 10_000
# Rows of float vectors kept in memory per process across all namespaces (about 1.5 KB
# per row at 384 dimensions: 1,556 bytes with its seq, id and norm; 47 MB in all).
MAX_EXACT_CACHED_ROWS = 30_000
# Rows per statement when fetching float vectors by primary key.
_FETCH_CHUNK = 500


# What a search checks its cache against (`VectorIndex._state`), as columns of a SELECT
# with the namespace bound as :ns, so that a caller reading other columns of the namespace
# anyway can read these in the same statement and pass them on (`search(..., state=)`).
STATE_COLUMNS = (
    "(SELECT file FROM pragma_database_list WHERE name = 'main'), "
    f"(SELECT value FROM {META_TABLE} WHERE key = 'instance'), "
    f"(SELECT max(seq) FROM {VECTOR_TABLE} WHERE namespace = :ns), "
    f"(SELECT deletes FROM {STATE_TABLE} WHERE namespace = :ns)"
)
State = tuple[tuple[str, str] | None, int, int]


def state_of(row: Sequence[Any]) -> State:
    """The state from the four values of STATE_COLUMNS."""
    key = None if row[1] is None else (str(row[0] or ""), str(row[1]))
    return key, int(row[2] or 0), int(row[3] or 0)


class VectorIndex:
    """Cosine KNN over intent vectors, partitioned by namespace (see the module docstring)."""

    def __init__(
        self,
        dim: int,
        *,
        oversample: int = OVERSAMPLE,
        min_rescore: int = MIN_RESCORE,
        max_rescore: int = MAX_RESCORE,
        min_coarse: int = MIN_COARSE,
        max_cached_rows: int = MAX_CACHED_ROWS,
        snapshot_min_rows: int = SNAPSHOT_MIN_ROWS,
        exact_max_rows: int | None = None,
        max_exact_cached_rows: int = MAX_EXACT_CACHED_ROWS,
    ) -> None:
        self.dim = dim
        self.code_bytes = -(-dim // 64) * 8
        self.width = self.code_bytes // 8
        self.oversample = oversample
        self.min_rescore = min_rescore
        self.max_rescore = max_rescore
        self.min_coarse = min_coarse
        self.snapshot_min_rows = snapshot_min_rows
        self.cache = CodeCache(max_cached_rows)
        # read at construction, not definition: tests set the module constant
        self.exact_max_rows = EXACT_MAX_ROWS if exact_max_rows is None else exact_max_rows
        self.floats = FloatCache(max_exact_cached_rows)

    # -- writes -----------------------------------------------------------------------------

    def _matrix(self, vectors: Sequence[np.ndarray]) -> np.ndarray:
        mat = np.asarray(np.stack([np.asarray(v, dtype=np.float32).reshape(-1) for v in vectors]))
        if mat.shape[1] != self.dim:
            raise ValueError(f"vectors must have {self.dim} dimensions, got {mat.shape[1]}")
        if not np.all(np.isfinite(mat)):
            raise ValueError("vectors must be finite")
        return mat

    def add(self, conn: Any, intent_id: int, namespace: str, vec: np.ndarray) -> None:
        self.add_many(conn, [(intent_id, namespace, vec)])

    def add_many(self, conn: Any, rows: Sequence[tuple[int, str, np.ndarray]]) -> None:
        if not rows:
            return
        mat = self._matrix([r[2] for r in rows])
        codes = sign_codes(mat)
        conn.executemany(
            f"INSERT INTO {VECTOR_TABLE}(intent_id, namespace, code, embedding) VALUES (?, ?, ?, ?)",
            [
                (int(iid), ns, codes[i].tobytes(), vector_blob(mat[i]))
                for i, (iid, ns, _) in enumerate(rows)
            ],
        )
        conn.executemany(
            f"INSERT INTO {VEC0_TABLE}(intent_id, namespace, embedding) VALUES (?, ?, ?)",
            [(int(iid), ns, vector_blob(mat[i])) for i, (iid, ns, _) in enumerate(rows)],
        )

    def delete(self, conn: Any, intent_ids: Sequence[int]) -> None:
        ids = [int(m) for m in intent_ids]
        for start in range(0, len(ids), _FETCH_CHUNK):
            chunk = json.dumps(ids[start : start + _FETCH_CHUNK])
            # Bump the delete counter of every namespace losing a row: processes holding
            # that namespace in cache reload it on their next search.
            conn.execute(
                f"INSERT INTO {STATE_TABLE}(namespace, deletes) "
                f"SELECT DISTINCT namespace, 1 FROM {VECTOR_TABLE} "
                "WHERE intent_id IN (SELECT value FROM json_each(?)) "
                "ON CONFLICT(namespace) DO UPDATE SET deletes = deletes + 1",
                (chunk,),
            )
            conn.execute(
                f"DELETE FROM {VECTOR_TABLE} WHERE intent_id IN (SELECT value FROM json_each(?))",
                (chunk,),
            )
        conn.executemany(f"DELETE FROM {VEC0_TABLE} WHERE intent_id = ?", [(m,) for m in ids])

    # -- reads ------------------------------------------------------------------------------

    def vectors(self, conn: Any, namespace: str, limit: int) -> np.ndarray:
        """Up to `limit` stored vectors of a namespace (newest first), as an (n, dim) array."""
        rows = conn.execute(
            f"SELECT embedding FROM {VECTOR_TABLE} WHERE namespace = ? ORDER BY seq DESC LIMIT ?",
            (namespace, int(limit)),
        ).fetchall()
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        return blobs_matrix([r[0] for r in rows], self.dim)

    def count(self, conn: Any, namespace: str) -> int:
        return int(
            conn.execute(
                f"SELECT count(*) FROM {VECTOR_TABLE} WHERE namespace = ?", (namespace,)
            ).fetchone()[0]
        )

    def preload(self, conn: Any, namespace: str, fit_later: bool = False) -> int:
        """Load the namespace's search rows into this process's cache now (its vectors if it
        is scanned, else its codes), so that no search pays for it; how many rows it holds.
        With `fit_later` the scan's projection is left to `fit_pending`."""
        state = self._state(conn, namespace)
        if state[1] == 0:
            return 0
        rows = self._floats(conn, namespace, state, first=False, fit_later=fit_later)
        if rows is not None:
            return rows.n
        return sum(p.n for p in self._codes(conn, namespace, state))

    def search(
        self, conn: Any, query: np.ndarray, namespace: str, k: int, state: State | None = None
    ) -> list[tuple[int, float]]:
        """The k nearest intents in `namespace` as (intent_id, cosine similarity), best first.
        `state`: the namespace's STATE_COLUMNS as the caller just read them on `conn`
        (else read here)."""
        if k <= 0:
            return []
        q = self._unit(query)
        if q is None:
            return []
        if state is None:
            state = self._state(conn, namespace)
        if state[1] == 0:
            return []
        rows = self._floats(conn, namespace, state)
        if rows is not None:
            return scan_exact(rows, q, k)
        parts = self._codes(conn, namespace, state)
        total = sum(p.n for p in parts)
        if total == 0:
            return []
        rescore = min(self.max_rescore, max(self.min_rescore, self.oversample * k), total)
        rescore = max(rescore, min(k, total))
        if total <= rescore:
            return self._vec0(conn, q, namespace, k)
        seqs = self._candidates(parts, q, rescore)
        return self._exact(conn, "seq", np.sort(seqs).tolist(), q, k)

    def search_vec0(
        self, conn: Any, query: np.ndarray, namespace: str, k: int
    ) -> list[tuple[int, float]]:
        """Exact KNN by sqlite-vec over the namespace's partition, rescored like the code path."""
        q = self._unit(query)
        if q is None or k <= 0:
            return []
        return self._vec0(conn, q, namespace, k)

    def _vec0(self, conn: Any, q: np.ndarray, namespace: str, k: int) -> list[tuple[int, float]]:
        rows = conn.execute(
            f"SELECT intent_id FROM {VEC0_TABLE} "
            "WHERE embedding MATCH ? AND k = ? AND namespace = ?",
            (vector_blob(q), int(min(k + TIE_MARGIN, 4096)), namespace),
        ).fetchall()
        return self._exact(conn, "intent_id", sorted(int(r[0]) for r in rows), q, k)

    def _unit(self, query: np.ndarray) -> np.ndarray | None:
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.dim:
            raise ValueError(f"query must have {self.dim} dimensions, got {q.shape[0]}")
        norm = float(np.sqrt(q.dot(q)))  # what np.linalg.norm computes, without its checks
        if not math.isfinite(norm) or norm == 0.0:
            return None
        return (q / norm).astype(np.float32)

    # -- search internals -------------------------------------------------------------------

    def _candidates(self, parts: list[Rows], q: np.ndarray, rescore: int) -> np.ndarray:
        """Seqs of the `rescore` rows nearest to q by sign code (coarse Hamming + refine)."""
        coarse = max(self.min_coarse, COARSE_FACTOR * rescore)
        qwords = sign_codes(q[None, :]).view(np.uint64)[0]
        seqs_out, scores_out = [], []
        for part in parts:
            if part.n == 0:
                continue
            idx = np.arange(part.n) if part.n <= coarse else nearest_hamming(part.words, qwords, coarse)
            seqs_out.append(part.seqs[idx])
            scores_out.append(asymmetric_scores(part.words, idx, q, self.dim))
        seqs = np.concatenate(seqs_out)
        scores = np.concatenate(scores_out)
        if seqs.shape[0] > rescore:
            keep = np.argpartition(-scores, rescore - 1)[:rescore]
            seqs = seqs[keep]
        return seqs

    def _exact(
        self, conn: Any, column: str, keys: list[int], q: np.ndarray, k: int
    ) -> list[tuple[int, float]]:
        """Read the float vectors of the rows whose `column` is in `keys`; the exact top k."""
        ids: list[int] = []
        blobs: list[bytes] = []
        for start in range(0, len(keys), _FETCH_CHUNK):
            chunk = keys[start : start + _FETCH_CHUNK]
            marks = ",".join("?" * len(chunk))
            for iid, blob in conn.execute(
                f"SELECT intent_id, embedding FROM {VECTOR_TABLE} WHERE {column} IN ({marks})",
                chunk,
            ):
                ids.append(iid)
                blobs.append(blob)
        if not ids:
            return []
        return rank_exact(np.asarray(ids, np.int64), blobs_matrix(blobs, self.dim), q, k)

    # -- the codes of a namespace -----------------------------------------------------------

    def _state(self, conn: Any, namespace: str) -> State:
        """(database key, newest seq in the namespace, delete counter) in one statement."""
        row = conn.execute(f"SELECT {STATE_COLUMNS}", {"ns": namespace}).fetchone()
        return state_of(row)

    def _load(self, conn: Any, namespace: str, after: int, upto: int | None = None) -> Rows:
        """Codes of the namespace's rows with after < seq (<= upto), in seq order."""
        sql = f"SELECT seq, intent_id, code FROM {VECTOR_TABLE} WHERE namespace = ? AND seq > ?"
        args: list[Any] = [namespace, after]
        if upto is not None:
            sql += " AND seq <= ?"
            args.append(upto)
        sql += " ORDER BY seq"
        seqs: list[int] = []
        ids: list[int] = []
        codes: list[bytes] = []
        cur = conn.execute(sql, args)
        while batch := cur.fetchmany(65536):
            for s, m, c in batch:
                seqs.append(s)
                ids.append(m)
                codes.append(c)
        n = len(seqs)
        if n == 0:
            return Rows.empty(self.width)
        raw = np.frombuffer(b"".join(codes), dtype=np.uint8)
        if raw.shape[0] != n * self.code_bytes:
            raise ValueError("vector index codes have an unexpected size (dimension mismatch?)")
        words = np.ascontiguousarray(raw.view(np.uint64).reshape(n, self.width).T)
        return Rows(np.asarray(seqs, np.int64), np.asarray(ids, np.int64), words)

    def _codes(
        self, conn: Any, namespace: str, state: State
    ) -> list[Rows]:
        """The namespace's codes as this connection sees them now, cache-backed.

        Outside a transaction every row read is committed, so new rows are appended to
        the cache. Inside one (possibly holding uncommitted writes, or an older
        snapshot), the cache is used as far as it matches and the rest is read for this
        search only.
        """
        key, max_seq, deletes = state
        if max_seq == 0:
            return []
        in_txn = bool(getattr(conn, "in_transaction", True))
        upto = max_seq if in_txn else None
        if key is None:
            return [self._load(conn, namespace, 0)]
        ckey: Key = (key[0], key[1], namespace)
        entry, view, entry_max = self.cache.lookup(ckey, deletes)
        if entry is not None and view is not None:
            if max_seq <= entry_max:
                # An older snapshot (another thread's connection in a read transaction) sees
                # a prefix of the cache: seqs are ascending.
                return [view.prefix(int(np.searchsorted(view.seqs, max_seq, side="right")))]
            part = self._load(conn, namespace, entry_max, upto)
            if in_txn:
                return [view, part]
            grown = self.cache.extend(ckey, entry, entry_max, part)
            return [grown] if grown is not None else [view, part]
        # No usable entry: load the namespace whole, from its code snapshot where one is valid.
        snap = read_snapshot(conn, namespace, deletes, upto, self.width)
        if snap is None:
            rows = self._load(conn, namespace, 0, upto)
        else:
            rows = Rows.concat(snap, self._load(conn, namespace, int(snap.seqs[-1]), upto))
        if in_txn:
            return [rows]
        if rows.n >= self.snapshot_min_rows:
            save_snapshot_if_due(conn, namespace, deletes, rows)
        return [self.cache.put(ckey, self.width, deletes, rows)]

    # -- the float vectors of a small namespace --------------------------------------------

    def _load_floats(
        self, conn: Any, namespace: str, after: int, upto: int | None, limit: int
    ) -> FloatRows | None:
        """Float rows of the namespace with after < seq (<= upto), in seq order; None if
        there are more than `limit`."""
        where = "namespace = ? AND seq > ?"
        args: list[Any] = [namespace, after]
        if upto is not None:
            where += " AND seq <= ?"
            args.append(upto)
        counted = f"SELECT count(*) FROM {VECTOR_TABLE} WHERE {where}"  # from the index alone
        n = min(conn.execute(counted, args).fetchone()[0], limit + 1)
        if n > limit:
            return None
        if n == 0:
            return FloatRows.empty(self.dim)
        seqs: list[int] = []
        ids: list[int] = []
        sql = (
            f"SELECT seq, intent_id, embedding FROM {VECTOR_TABLE} WHERE {where} "
            "ORDER BY seq LIMIT ?"
        )

        def blobs() -> Iterator[bytes]:
            for seq, intent_id, blob in conn.execute(sql, [*args, n]):
                seqs.append(seq)
                ids.append(intent_id)
                yield blob

        # each blob copied into the array as the cursor reads it: no list of 1.5 KB bytes
        # objects, no joined copy (10k rows: 28-39 -> 22 ms)
        vecs = blobs_matrix(blobs(), self.dim, n)
        # outside a transaction a writer may delete rows between the two statements (one
        # that adds rows adds them past the first n: seqs only grow)
        return FloatRows.build(np.asarray(seqs, np.int64), np.asarray(ids, np.int64), vecs)

    def _larger_than(self, conn: Any, namespace: str, upto: int | None, n: int) -> bool:
        """Whether the namespace has more than n rows (seq <= upto): an index-only probe."""
        sql = f"SELECT 1 FROM {VECTOR_TABLE} WHERE namespace = ?"
        args: list[Any] = [namespace]
        if upto is not None:
            sql += " AND seq <= ?"
            args.append(upto)
        sql += " ORDER BY seq LIMIT 1 OFFSET ?"
        args.append(n)
        return conn.execute(sql, args).fetchone() is not None

    def fit_pending(self) -> int:
        """Fit the scan projections that `preload(..., fit_later=True)` left (floats.py); it
        reads only this process's cache, and searches go on meanwhile."""
        return self.floats.fit_pending()

    def _floats(
        self, conn: Any, namespace: str, state: State,
        first: bool = True, fit_later: bool = False,
    ) -> FloatRows | None:
        """The namespace's float rows as this connection sees them now, if it is searched by
        an exact scan (at most `exact_max_rows` rows, within the memory budget); else None.

        Kept coherent like the codes (`_codes`): committed rows are appended, a delete
        reloads, and inside a transaction the rows past the cache are read for this search
        only.

        The vectors are read on the namespace's second search in the process (or by
        `preload`): its first search loads the codes (64 bytes a row, where the vectors are
        1.5 KB), so a one-shot process such as `memrl recall` never reads the vectors."""
        key, max_seq, deletes = state
        limit = self.exact_max_rows
        if limit <= 0 or max_seq == 0:
            return None
        in_txn = bool(getattr(conn, "in_transaction", True))
        upto = max_seq if in_txn else None
        if key is None:  # no database id to cache under: the code index, as before
            return None
        ckey: Key = (key[0], key[1], namespace)
        entry, view, entry_max = self.floats.lookup(ckey, deletes)
        if entry is not None and view is not None:
            if max_seq == entry_max:
                return view
            if max_seq < entry_max:
                return view.prefix(int(np.searchsorted(view.seqs, max_seq, side="right")))
            part = self._load_floats(conn, namespace, entry_max, upto, limit - view.n)
            if part is None:  # outgrew the exact scan: the code index takes over
                self.floats.drop(ckey)
                return None
            if in_txn:
                return FloatRows.concat(view, part)
            grown = self.floats.extend(ckey, entry, entry_max, part)
            if grown is None and self.floats.lookup(ckey, deletes)[0] is None:
                return None  # over the memory budget now: dropped, the code index takes over
            return grown if grown is not None else FloatRows.concat(view, part)
        if entry is not None:
            self.floats.drop(ckey)  # a delete outdated it
        # Not cached. A namespace whose codes are cached and too many (or too many for the
        # memory left) stays on the code index without reading anything more.
        room = min(limit, self.floats.room(ckey))
        coded = self.cache.size(ckey, deletes)
        if coded is None and first and entry is None:
            return None  # the first search: the code index (see above)
        if coded is not None and coded > room:
            return None
        if room <= 0 or self._larger_than(conn, namespace, upto, room):
            return None
        rows = self._load_floats(conn, namespace, 0, upto, room)
        if rows is None or in_txn:
            return rows
        cached = self.floats.put(ckey, self.dim, deletes, rows, fit_later)
        if cached is not None:
            self.cache.drop(ckey)  # its codes are not needed while the scan serves it
        return cached if cached is not None else rows

    def clear_cache(self) -> None:
        """Drop every cached namespace (they reload on the next search)."""
        self.cache.clear()
        self.floats.clear()
