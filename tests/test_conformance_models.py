"""One embedding model per namespace and one dimension per store, on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from fake_embedder import FakeEmbedder

from memrl import (
    InvalidInputError,
    Memory,
    MemoryConfig,
    ModelMismatchError,
    open_storage,
)
from memrl.embeddings import PACKAGED_MODEL_ID as REAL
from memrl.storage import NewMemory


def seeded_file(open_memory, real_model) -> Memory:
    """A file written with the real model (384-d) in namespace 'proj'."""
    memory = open_memory(real_model)
    memory.store_experience("set up the project", "run make bootstrap", namespace="proj")
    return memory


def test_other_model_same_namespace_is_refused(real_model, open_memory, snapshot) -> None:
    first = seeded_file(open_memory, real_model)
    other = open_memory(FakeEmbedder(dim=384, model_id="model-b"))
    before = snapshot(first.storage)

    with pytest.raises(ModelMismatchError, match=rf"namespace 'proj' holds vectors of model '{REAL}'"):
        other.store_experience("set up the project", "something else", namespace="proj")
    with pytest.raises(ModelMismatchError, match=r"'model-b': use the same model, or another namespace"):
        other.recall("set up the project", "proj")
    with pytest.raises(ModelMismatchError, match=f"holds vectors of model '{REAL}'"):
        other.recall("set up the project", "proj", delta=0.1)
    assert snapshot(first.storage) == before

    # another namespace in the same file is fine, and stays bound to model-b
    assert other.store_experience("set up the project", "x", namespace="proj-b").created
    assert other.recall("set up the project", "proj-b").injected != []
    with pytest.raises(ModelMismatchError, match="'proj-b' holds vectors of model 'model-b'"):
        first.recall("set up the project", "proj-b")


def test_other_dimension_is_refused_at_open(real_model, open_memory, backend) -> None:
    seeded_file(open_memory, real_model)
    with pytest.raises(
        ModelMismatchError, match="stores 384-dimensional vectors but the embedding model gives 16"
    ):
        open_storage(backend.target, 16, "model-16")


def test_embedder_and_store_must_agree(real_model, open_memory) -> None:
    store = open_memory(real_model).storage
    with pytest.raises(ModelMismatchError, match=rf"storage opened for '{REAL}'/384d but the embedder"):
        Memory(store, FakeEmbedder(dim=384, model_id="model-b"))
    with pytest.raises(ModelMismatchError, match=r"384d but the embedder is '.*'/8d"):
        Memory(store, FakeEmbedder(dim=8, model_id=real_model.model_id))


class WrongSizeEmbedder(FakeEmbedder):
    """Claims one dimension, returns another (a misconfigured model)."""

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.ones((len(texts), self.dim + 1), dtype=np.float32) / np.sqrt(self.dim + 1)


def test_vectors_of_the_wrong_dimension_are_refused(real_model, open_memory, snapshot) -> None:
    memory = seeded_file(open_memory, real_model)
    store = memory.storage
    before = snapshot(store)
    bad = Memory(store, WrongSizeEmbedder(dim=384, model_id=real_model.model_id))
    with pytest.raises(ModelMismatchError, match="vector has shape \\(385,\\), expected \\(384,\\)"):
        bad.store_experience("another intent", "another experience", namespace="proj")
    with pytest.raises(ModelMismatchError, match="vector has shape \\(385,\\), expected \\(384,\\)"):
        bad.recall("set up the project", "proj")
    row = NewMemory("proj", "i", "i", "e", "note", "hash", "{}", np.ones(9, dtype=np.float32))
    with pytest.raises(ModelMismatchError, match="expected \\(384,\\)"), store.write() as tx:
        tx.insert_memories([row], MemoryConfig())
    assert snapshot(store) == before


def test_non_finite_vectors_are_refused(real_model, open_memory, snapshot) -> None:
    store = seeded_file(open_memory, real_model).storage
    before = snapshot(store)
    vec = np.full(384, np.nan, dtype=np.float32)
    row = NewMemory("proj", "i", "i", "e", "note", "h", "{}", vec)
    with pytest.raises(InvalidInputError, match="vector has non-finite values"), store.write() as tx:
        tx.insert_memories([row], MemoryConfig())
    with pytest.raises(InvalidInputError, match="vector has non-finite values"), store.read() as r:
        r.nearest_intents(vec, "proj", 3)
    assert snapshot(store) == before
