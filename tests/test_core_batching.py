"""Query embeddings of concurrent callers share model calls (memrl.batching), and a batch
gives the vectors of the single call."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from fake_embedder import FakeEmbedder

import memrl
from memrl import Embedder
from memrl.batching import BatchingEmbedder

# Task descriptions of different token lengths (3 to ~60 tokens), so a batch pads most of
# its texts: padding must change nothing but the order of float sums.
TEXTS = [
    "fix csv",
    "Fix the failing CI job",
    "Rotate the API keys of the payment service before Friday",
    "Écrire un test pour le parseur de dates",
    "speed up the nightly job that rebuilds the search index from the product catalogue "
    "and the user reviews, then uploads it to the three regional buckets",
    "a",
    "Document the login page",
    "Refactor the payment flow so that retries are idempotent and logged once",
    "migrate the build from setup.py to pyproject.toml",
    "why does the importer drop rows with a trailing comma?",
    "upgrade numpy",
    "Add a --dry-run flag to the deploy script that prints every command it would run",
    "investigate flaky test_timeout in the scheduler suite (fails 1 in 20 runs on CI)",
    "bump version",
    "Write the release notes for 0.4",
    "split the 2,000-line utils module into packages by concern: io, text, dates, retries",
]
TOLERANCE = 1e-5  # float32 sums in another order; the vectors are unit length


def test_a_batch_gives_the_vectors_of_single_calls(real_model: Embedder) -> None:
    model = memrl.load_embedder(query_cache=0)
    single = np.stack([model.embed_query(t) for t in TEXTS])
    assert np.allclose(np.linalg.norm(single, axis=1), 1.0, atol=1e-5)
    worst = 0.0
    for n in range(1, len(TEXTS) + 1):
        for start in (0, len(TEXTS) - n):  # the batch's texts, and other neighbours
            batch = model.embed_queries(TEXTS[start : start + n])  # type: ignore[attr-defined]
            assert batch.shape == (n, 384) and batch.dtype == np.float32
            worst = max(worst, float(np.abs(batch - single[start : start + n]).max()))
    assert worst <= TOLERANCE, worst


def test_concurrent_real_queries_match_single_calls(real_model: Embedder) -> None:
    inner = memrl.load_embedder(query_cache=0)
    single = np.stack([inner.embed_query(t) for t in TEXTS])
    batcher = BatchingEmbedder(inner)
    got: dict[int, np.ndarray] = {}
    start = threading.Barrier(len(TEXTS))

    def ask(i: int) -> None:
        start.wait()
        got[i] = batcher.embed_query(TEXTS[i])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(TEXTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(len(TEXTS)))
    assert float(np.abs(np.stack([got[i] for i in range(len(TEXTS))]) - single).max()) <= TOLERANCE
    stats = batcher.stats()
    assert stats["queries"] == len(TEXTS) and 1 <= stats["calls"] <= len(TEXTS)


def test_the_server_loads_a_batching_model(real_model: Embedder) -> None:
    model = memrl.load_embedder(query_cache=0, batch_queries=True)
    assert isinstance(model, BatchingEmbedder) and isinstance(model, Embedder)
    assert model.model_id == real_model.model_id and model.dim == 384
    assert np.abs(model.embed_query(TEXTS[2]) - real_model.embed([TEXTS[2]])[0]).max() <= TOLERANCE


class GatedEmbedder(FakeEmbedder):
    """A fake model whose first call blocks until the test opens its gate, so queries
    can queue behind it without any timing."""

    def __init__(self) -> None:
        super().__init__(dim=8)
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[list[str]] = []
        self.threads: list[threading.Thread] = []
        self.fail_on: str | None = None

    def embed(self, texts: list[str]) -> np.ndarray:
        self.batches.append(list(texts))
        self.threads.append(threading.current_thread())
        self.entered.set()
        self.gate.wait()
        if self.fail_on in texts:
            raise RuntimeError("model failure")
        return super().embed(texts)


def _queued(batcher: BatchingEmbedder, n: int) -> None:
    """Wait until n queries are queued behind the running call (polling, no timing)."""
    for _ in range(10_000):
        with batcher._lock:
            if len(batcher._queue) >= n:
                return
        threading.Event().wait(0.001)
    raise AssertionError(f"{n} queries never queued")


def test_queries_that_arrive_during_a_call_share_the_next_one() -> None:
    inner = GatedEmbedder()
    batcher = BatchingEmbedder(inner)
    results: dict[str, np.ndarray] = {}

    def ask(text: str) -> None:
        results[text] = batcher.embed_query(text)

    first = threading.Thread(target=ask, args=("first query",))
    first.start()
    assert inner.entered.wait(10)
    others = [threading.Thread(target=ask, args=(f"query {i}",)) for i in range(7)]
    for t in others:
        t.start()
    _queued(batcher, 7)
    inner.gate.set()
    for t in [first, *others]:
        t.join(10)
    assert inner.batches[0] == ["first query"]  # a lone query ran at once, alone
    assert len(inner.batches) == 2 and sorted(inner.batches[1]) == sorted(
        f"query {i}" for i in range(7)
    )
    for text, vector in results.items():
        assert np.array_equal(vector, FakeEmbedder(dim=8).embed_query(text))
    assert batcher.stats() == {"calls": 2, "queries": 8, "mean_batch": 4.0}
    assert batcher._busy is False and batcher._queue == []


def test_a_lone_query_runs_in_the_callers_thread() -> None:
    inner = GatedEmbedder()
    inner.gate.set()
    batcher = BatchingEmbedder(inner)
    for text in ("one", "two", "three"):
        assert np.array_equal(batcher.embed_query(text), FakeEmbedder(dim=8).embed_query(text))
    assert inner.batches == [["one"], ["two"], ["three"]]
    assert all(t is threading.current_thread() for t in inner.threads)


def test_max_batch_splits_the_queue() -> None:
    inner = GatedEmbedder()
    batcher = BatchingEmbedder(inner, max_batch=3)
    threads = [threading.Thread(target=batcher.embed_query, args=("lead",))]
    threads[0].start()
    assert inner.entered.wait(10)
    for i in range(7):
        threads.append(threading.Thread(target=batcher.embed_query, args=(f"q{i}",)))
        threads[-1].start()
    _queued(batcher, 7)
    inner.gate.set()
    for t in threads:
        t.join(10)
    assert [len(b) for b in inner.batches] == [1, 3, 3, 1]
    assert sorted(sum(inner.batches[1:], [])) == sorted(f"q{i}" for i in range(7))


def test_an_error_reaches_every_caller_of_its_batch_and_no_other() -> None:
    inner = GatedEmbedder()
    inner.fail_on = "bad"
    batcher = BatchingEmbedder(inner)
    errors: dict[str, BaseException] = {}
    ok: dict[str, np.ndarray] = {}

    def ask(text: str) -> None:
        try:
            ok[text] = batcher.embed_query(text)
        except RuntimeError as e:
            errors[text] = e

    lead = threading.Thread(target=ask, args=("lead",))
    lead.start()
    assert inner.entered.wait(10)
    queued = [threading.Thread(target=ask, args=(t,)) for t in ("bad", "innocent")]
    for t in queued:
        t.start()
    _queued(batcher, 2)
    inner.gate.set()
    for t in [lead, *queued]:
        t.join(10)
    assert set(ok) == {"lead"} and set(errors) == {"bad", "innocent"}
    inner.fail_on = None
    assert batcher.embed_query("after") is not None  # the batcher is not stuck
    assert batcher._busy is False


def test_bulk_embedding_passes_through() -> None:
    inner = FakeEmbedder(dim=8)
    batcher = BatchingEmbedder(inner)
    assert np.array_equal(batcher.embed(["a", "b"]), inner.embed(["a", "b"]))
    with pytest.raises(ValueError):
        BatchingEmbedder(inner, max_batch=0)
