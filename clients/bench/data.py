"""Bench data: agent-task texts for the real model, clustered unit vectors for bulk tiers.

Everything is seeded, so two runs of the bench see the same data.
"""

from __future__ import annotations

import numpy as np

_VERBS = [
    "fix", "debug", "refactor", "write tests for", "speed up", "document", "migrate",
    "add logging to", "add retries to", "remove dead code from", "add type hints to",
    "review", "profile", "secure", "parallelize", "cache the results of", "validate input in",
    "port", "benchmark", "simplify",
]
_OBJECTS = [
    "the CSV parser", "the login handler", "the payment webhook", "the image resizer",
    "the cron scheduler", "the search endpoint", "the database migration", "the rate limiter",
    "the PDF exporter", "the email sender", "the config loader", "the websocket server",
    "the cache layer", "the CLI argument parser", "the date formatting helper",
    "the JSON schema validator", "the file uploader", "the retry decorator",
    "the inventory service", "the recommendation model", "the audit log", "the thumbnail worker",
    "the OAuth client", "the GraphQL resolver", "the shopping cart", "the notification queue",
    "the backup script", "the metrics exporter", "the feature flag module", "the tokenizer",
    "the sorting routine", "the matrix multiply kernel", "the HTTP client", "the session store",
    "the report generator", "the geocoding module", "the unit converter", "the spell checker",
    "the chess engine", "the markdown renderer",
]
_CONTEXTS = [
    "so it handles empty input", "when the network times out", "for unicode file names",
    "on Windows paths", "under heavy concurrent load", "after the Python 3.12 upgrade",
    "without breaking the public API", "when the database is locked", "for very large files",
    "with timezone-aware dates", "so memory stays flat", "when the cache is cold",
    "before the release on Friday", "in the Docker image", "for the mobile client",
    "when two users edit at once", "with a flaky upstream service", "using only the stdlib",
    "behind a corporate proxy", "so the tests run offline",
]
_TAILS = [
    "", " and keep the old behaviour behind a flag", " and add a regression test",
    " and explain the root cause", " with minimal changes", " and measure the speed-up",
]


def task_texts(n: int, seed: int = 0) -> list[str]:
    """`n` distinct agent-task descriptions (20*40*20*6 = 96,000 combinations)."""
    total = len(_VERBS) * len(_OBJECTS) * len(_CONTEXTS) * len(_TAILS)
    if n > total:
        raise ValueError(f"at most {total} distinct texts")
    rng = np.random.default_rng(seed)
    picks = rng.choice(total, size=n, replace=False)
    out = []
    for p in picks.tolist():
        p, t = divmod(p, len(_TAILS))
        p, c = divmod(p, len(_CONTEXTS))
        v, o = divmod(p, len(_OBJECTS))
        text = f"{_VERBS[v]} {_OBJECTS[o]} {_CONTEXTS[c]}{_TAILS[t]}"
        out.append(text[0].upper() + text[1:])
    return out


def experience_text(intent: str, i: int) -> str:
    """A short reusable script, as a host would store after a task."""
    return (
        f"Task: {intent}.\nSteps: 1) reproduce with a minimal case; 2) read the failing path; "
        f"3) apply the smallest fix; 4) run the tests. (variant {i})"
    )


def clustered_vectors(
    n: int,
    dim: int = 384,
    n_clusters: int = 1000,
    spread: float = 1.0,
    seed: int = 0,
    chunk: int = 100_000,
) -> np.ndarray:
    """Unit vectors around `n_clusters` random centroids, shaped like sentence embeddings.

    A shared mean direction mimics the anisotropy of real sentence embeddings (unrelated
    texts have cosine ~0.1-0.2, neighbours in one cluster ~0.4-0.8). Generated in chunks;
    float32 throughout.
    """
    rng = np.random.default_rng(seed)
    common = rng.standard_normal(dim).astype(np.float32)
    common /= np.linalg.norm(common)
    cents = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    cents /= np.linalg.norm(cents, axis=1, keepdims=True)
    cents = cents + 0.6 * common
    cents /= np.linalg.norm(cents, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        lab = rng.integers(0, n_clusters, size=m)
        # per-point noise level: some points sit tight on their centroid, some far away
        scale = (spread * rng.uniform(0.6, 1.6, size=(m, 1)) / np.sqrt(dim)).astype(np.float32)
        x = cents[lab] + rng.standard_normal((m, dim)).astype(np.float32) * scale
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start : start + m] = x
    return out


def query_vectors(base: np.ndarray, n: int, jitter: float = 0.6, seed: int = 1) -> np.ndarray:
    """Queries near (not equal to) stored vectors: a stored vector plus fresh noise."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(base), size=n)
    q = base[idx] + rng.standard_normal((n, base.shape[1])).astype(np.float32) * (
        jitter / np.sqrt(base.shape[1])
    )
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q.astype(np.float32)
