"""A deterministic stand-in for the embedding model, for tests of ranking and learning logic.

Texts registered in `vectors` embed to exactly that (normalised) vector, so a test knows every
cosine similarity in advance. Any other text embeds as a hashed bag of words (sha256 of each
lower-cased word picks a coordinate), which is stable across processes and gives texts that
share words a positive similarity. It lives in its own module so spawned processes import it fast.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np


class FakeEmbedder:
    """Implements memrl.Embedder: model_id, dim, embed, embed_query."""

    def __init__(
        self,
        dim: int = 8,
        model_id: str = "fake-model",
        vectors: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        self.dim = dim
        self.model_id = model_id
        self.vectors = {k: _unit(np.asarray(v, dtype=np.float64)) for k, v in (vectors or {}).items()}
        self.calls = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            vec = self.vectors.get(text)
            out[row] = vec if vec is not None else self._hashed(text)
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def _hashed(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float64)
        for word in text.lower().split():
            digest = hashlib.sha256(word.encode()).digest()
            vec[int.from_bytes(digest[:4], "little") % self.dim] += 1.0
        return _unit(vec)


def _unit(vec: np.ndarray) -> np.ndarray:
    return (vec / np.linalg.norm(vec)).astype(np.float32)


def at_cosine(c: float, dim: int = 4) -> list[float]:
    """A unit vector whose cosine with the first axis e1 is exactly `c` (in the e1-e2 plane)."""
    vec = [0.0] * dim
    vec[0], vec[1] = c, float(np.sqrt(1.0 - c * c))
    return vec


def axis(i: int, dim: int = 4) -> list[float]:
    vec = [0.0] * dim
    vec[i] = 1.0
    return vec
