"""Query embeddings of concurrent callers, computed together: one model call for many.

A server shared by several agents (`memrl serve --http`) runs each recall in a worker
thread, and every recall starts with a query embedding. The model runs one call at a time
(`LocalEmbedder` holds a lock around its ONNX session), so N concurrent recalls queue
for N model calls in a row. A batch of N short texts costs far less than N calls of one
(the matrix products get wider, the per-call overhead is paid once), so
`BatchingEmbedder` gathers the queries that arrive *while a model call runs* and embeds
them together in the next call.

There is no fixed wait. A query that finds no call running becomes the leader and runs at
once, alone: a lone recall pays only a lock. Queries that arrive meanwhile queue; when the
leader's call returns, the oldest queued query becomes the next leader and embeds the whole
queue (up to `max_batch`) in one call, while the first leader returns its own vector. So
every caller either runs the model itself or waits for a call that has already started or
is the next one; no thread is added and no timer is involved.

The batched vectors are those of the single call within float tolerance (a batch pads its
texts to the longest one; the attention mask and mean pooling ignore the padding, so only
the order of floating-point sums changes: tests/test_core_batching.py checks it for batch
sizes 1 to 16 on the real model).

Bulk calls (`embed`, e.g. `store_many`) pass straight to the wrapped embedder.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from .embeddings import Embedder

MAX_BATCH = 32  # the embedder's own batch size; more queued queries wait for the next call


class _Query:
    __slots__ = ("text", "vector", "error", "lead", "done")

    def __init__(self, text: str) -> None:
        self.text = text
        self.vector: np.ndarray | None = None
        self.error: BaseException | None = None
        self.lead = False  # woken to run the next batch, not with a result
        self.done = threading.Event()

    def result(self) -> np.ndarray:
        if self.error is not None:
            raise self.error
        assert self.vector is not None
        return self.vector


class BatchingEmbedder:
    """An Embedder whose `embed_query` calls from concurrent threads share model calls.

    Thread-safe. Wraps any Embedder; if the wrapped one has `embed_queries(texts)` (the
    real model's: its query-vector cache, then one model call for the texts not cached),
    batches go through it, else through `embed`.
    """

    def __init__(self, inner: Embedder, max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Query] = []
        self._busy = False  # a leader is running; while False, the queue is empty
        self._batch_fn: Any = getattr(inner, "embed_queries", None) or inner.embed
        # counters for the bench and the tests (calls made, queries they embedded)
        self.calls = 0
        self.queries = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.inner.embed(texts)

    def embed_query(self, text: str) -> np.ndarray:
        me = _Query(text)
        with self._lock:
            self._queue.append(me)
            lead = not self._busy
            self._busy = True
        if not lead:
            me.done.wait()
            if not me.lead:
                return me.result()
        self._run_next_batch()
        return me.result()

    def _run_next_batch(self) -> None:
        """Embed the queue's head (this caller's query is its first) in one call, then hand
        the lead to the oldest query still queued, or clear `_busy` if none is."""
        with self._lock:
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
        try:
            vectors = self._batch_fn([q.text for q in batch])
            for q, v in zip(batch, vectors):
                q.vector = np.array(v, dtype=np.float32, copy=True)
        except BaseException as e:  # noqa: BLE001 -- every caller of the batch gets the error
            for q in batch:
                q.error = e
        finally:
            with self._lock:
                self.calls += 1
                self.queries += len(batch)
                if self._queue:
                    nxt = self._queue[0]
                    nxt.lead = True
                    nxt.done.set()
                else:
                    self._busy = False
            for q in batch[1:]:
                q.done.set()

    def stats(self) -> dict[str, float]:
        with self._lock:
            calls, queries = self.calls, self.queries
        return {"calls": calls, "queries": queries, "mean_batch": queries / calls if calls else 0.0}
