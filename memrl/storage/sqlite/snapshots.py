"""On-disk snapshots of a namespace's sign codes, so a new process loads them sequentially.

Loading the codes of a large namespace row by row from the covering index reads pages
scattered over the file: 12-47 s for 1M rows when the page cache is cold. So a process
that loaded a namespace of at least `min_rows` rows also writes its codes as one snapshot
row (three contiguous BLOBs: seqs, ids, codes) in `intent_code_snapshots`; the next
process reads the snapshot and only the rows added after it (0.16-0.55 s at 1M). A
snapshot is derived data: it names the newest seq and the delete counter it reflects, is
ignored when the counter moved (a delete), and is rewritten when it has fallen behind by
`STALE_FRACTION`. Emptying the table loses nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ...errors import DatabaseError
from .codes import Rows
from .connection import driver, write_transaction

log = logging.getLogger(__name__)

SNAPSHOT_TABLE = "intent_code_snapshots"
STATE_TABLE = "intent_vector_state"
# Rewrite a snapshot when rows added since it exceed this fraction of it.
STALE_FRACTION = 0.25


def read_snapshot(
    conn: Any, namespace: str, deletes: int, upto: int | None, width: int
) -> Rows | None:
    """The namespace's snapshot if it is usable here, else None."""
    row = conn.execute(
        f"SELECT max_seq, deletes, n, code_bytes, seqs, ids, codes FROM {SNAPSHOT_TABLE} "
        "WHERE namespace = ?",
        (namespace,),
    ).fetchone()
    if row is None:
        return None
    max_seq, snap_deletes, n, code_bytes, seqs, ids, codes = row
    if snap_deletes != deletes or (upto is not None and max_seq > upto) or n <= 0:
        return None  # a delete since (or a transaction that sees less): not usable
    sizes_ok = (code_bytes, len(seqs), len(ids), len(codes)) == (
        8 * width, 8 * n, 8 * n, n * 8 * width
    )
    seq_arr = np.frombuffer(seqs, dtype=np.int64) if sizes_ok else None
    if seq_arr is None or int(seq_arr[-1]) != max_seq:
        log.warning("ignoring a malformed code snapshot of namespace %r", namespace)
        return None
    raw = np.frombuffer(codes, dtype=np.uint8)
    words = np.ascontiguousarray(raw.view(np.uint64).reshape(n, width).T)
    return Rows(seq_arr, np.frombuffer(ids, dtype=np.int64), words)


def save_snapshot_if_due(conn: Any, namespace: str, deletes: int, rows: Rows) -> None:
    """Write the loaded codes as the namespace's snapshot when it has none usable or an
    old one. Best effort: a busy or read-only database just skips it."""
    try:
        have = conn.execute(
            f"SELECT n, deletes FROM {SNAPSHOT_TABLE} WHERE namespace = ?", (namespace,)
        ).fetchone()
        if (
            have is not None
            and have[1] == deletes
            and rows.n - int(have[0]) <= STALE_FRACTION * int(have[0])
        ):
            return
        # the same byte layout as the code column (and as the index's row loader reads it)
        codes = np.ascontiguousarray(rows.words.T).tobytes()
        with write_transaction(conn, attempts=1):
            now = conn.execute(
                f"SELECT deletes FROM {STATE_TABLE} WHERE namespace = ?", (namespace,)
            ).fetchone()
            if int(now[0] if now else 0) != deletes:
                return  # a delete committed since these rows were read
            conn.execute(
                f"INSERT INTO {SNAPSHOT_TABLE}(namespace, max_seq, deletes, n, code_bytes, "
                "seqs, ids, codes) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(namespace) DO UPDATE SET max_seq = excluded.max_seq, "
                "deletes = excluded.deletes, n = excluded.n, code_bytes = excluded.code_bytes, "
                "seqs = excluded.seqs, ids = excluded.ids, codes = excluded.codes "
                "WHERE excluded.deletes != deletes OR excluded.max_seq > max_seq",
                (
                    namespace,
                    int(rows.seqs[-1]),
                    deletes,
                    rows.n,
                    rows.words.shape[0] * 8,
                    rows.seqs.astype(np.int64).tobytes(),
                    rows.ids.astype(np.int64).tobytes(),
                    codes,
                ),
            )
    except (DatabaseError, driver.Error) as e:
        log.info("code snapshot of namespace %r not written: %s", namespace, e)
