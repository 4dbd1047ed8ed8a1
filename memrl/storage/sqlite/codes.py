"""The per-process cache of sign codes, one entry per namespace of one database file.

A cache entry holds a namespace's codes column-major (uint64 word j of every code,
contiguous), with the seq and id of each row, in seq order. It is append-only between
reloads: rows committed later (larger seqs) are appended, a delete (the namespace's
delete counter moved) makes the next search reload it. Least recently used namespaces are
evicted beyond a total row budget.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import numpy as np


@dataclass
class Rows:
    """Codes of some rows of one namespace, in seq order (a cache entry's view or a part)."""

    seqs: np.ndarray  # int64 (n,)
    ids: np.ndarray  # int64 (n,)
    words: np.ndarray  # uint64 (W, n): word j of every code, contiguous per word

    @property
    def n(self) -> int:
        return int(self.seqs.shape[0])

    def prefix(self, n: int) -> Rows:
        return Rows(self.seqs[:n], self.ids[:n], self.words[:, :n])

    @classmethod
    def empty(cls, width: int) -> Rows:
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty((width, 0), np.uint64))

    @classmethod
    def concat(cls, a: Rows, b: Rows) -> Rows:
        if b.n == 0:
            return a
        return cls(
            np.concatenate([a.seqs, b.seqs]),
            np.concatenate([a.ids, b.ids]),
            np.concatenate([a.words, b.words], axis=1),
        )


class Entry:
    """A growable cache of one namespace's codes (append-only between reloads)."""

    def __init__(self, width: int, deletes: int) -> None:
        self.deletes = deletes
        self.max_seq = 0
        self.n = 0
        self._seqs = np.empty(0, np.int64)
        self._ids = np.empty(0, np.int64)
        self._words = np.empty((width, 0), np.uint64)

    def append(self, part: Rows) -> None:
        m = part.n
        if m == 0:
            return
        need = self.n + m
        if need > self._seqs.shape[0]:
            cap = max(need, 2 * self._seqs.shape[0], 1024)
            seqs = np.empty(cap, np.int64)
            ids = np.empty(cap, np.int64)
            words = np.empty((self._words.shape[0], cap), np.uint64)
            seqs[: self.n] = self._seqs[: self.n]
            ids[: self.n] = self._ids[: self.n]
            words[:, : self.n] = self._words[:, : self.n]
            self._seqs, self._ids, self._words = seqs, ids, words
        self._seqs[self.n : need] = part.seqs
        self._ids[self.n : need] = part.ids
        self._words[:, self.n : need] = part.words
        self.n = need
        self.max_seq = int(part.seqs[-1])

    def view(self) -> Rows:
        # Views stay valid while later appends write past n or reallocate.
        return Rows(self._seqs[: self.n], self._ids[: self.n], self._words[:, : self.n])


Key = tuple[str, str, str]  # (database file, database instance id, namespace)


class SizedEntry(Protocol):
    n: int  # rows held


E = TypeVar("E", bound=SizedEntry)


class KeyedCache(Generic[E]):
    """Per-namespace entries of one process, under one lock, within `max_rows` rows in all
    (the code cache here, the float cache in floats.py)."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self.lock = threading.Lock()
        self._entries: OrderedDict[Key, E] = OrderedDict()

    def drop(self, key: Key) -> None:
        with self.lock:
            self._entries.pop(key, None)

    def sizes(self) -> dict[str, int]:
        """Rows cached per namespace (for tests and diagnostics)."""
        with self.lock:
            return {key[2]: e.n for key, e in self._entries.items()}

    def clear(self) -> None:
        with self.lock:
            self._entries.clear()


class CodeCache(KeyedCache[Entry]):
    """Entries by key, least recently used first, within `max_rows` rows in all."""

    def lookup(self, key: Key, deletes: int) -> tuple[Entry | None, Rows | None, int]:
        """(entry, its view, its newest seq) if cached and no delete happened since."""
        with self.lock:
            entry = self._entries.get(key)
            if entry is None:
                return None, None, 0
            self._entries.move_to_end(key)
            if entry.deletes != deletes:
                return entry, None, 0
            return entry, entry.view(), entry.max_seq

    def extend(self, key: Key, entry: Entry, seen_max: int, part: Rows) -> Rows | None:
        """Append `part` to `entry` if it is still the cached one at `seen_max`; its view."""
        with self.lock:
            if entry is self._entries.get(key) and entry.max_seq == seen_max:
                entry.append(part)
                self._evict()
                return entry.view()
        return None

    def put(self, key: Key, width: int, deletes: int, rows: Rows) -> Rows:
        fresh = Entry(width, deletes)
        fresh.append(rows)
        with self.lock:
            self._entries[key] = fresh
            self._entries.move_to_end(key)
            self._evict()
        return fresh.view()

    def size(self, key: Key, deletes: int) -> int | None:
        """Rows cached for `key` if its entry is current (no delete since), else None."""
        with self.lock:
            entry = self._entries.get(key)
            return None if entry is None or entry.deletes != deletes else entry.n

    def _evict(self) -> None:
        total = sum(e.n for e in self._entries.values())
        while total > self.max_rows and len(self._entries) > 1:
            _, old = self._entries.popitem(last=False)
            total -= old.n
