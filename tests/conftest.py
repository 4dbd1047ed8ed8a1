"""Shared fixtures: a real temporary store (a SQLite file, or a PostgreSQL schema in the
conformance suite), a fake embedder, table snapshots."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from backends import BACKENDS, Backend, query, table_snapshot
from fake_embedder import FakeEmbedder
from needs import require_java

from memrl import Embedder, Memory, MemoryConfig, Storage, load_embedder, open_storage


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The conformance suite (tests/test_conformance_*.py) runs on every backend; other
    tests use the SQLite file."""
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    if "backend" in metafunc.fixturenames and module.startswith("test_conformance"):
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture(scope="session")
def real_model() -> Embedder:
    """The real local embedding model, loaded once per test session."""
    return load_embedder()


@pytest.fixture
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    place = Backend(getattr(request, "param", "sqlite"), tmp_path)
    yield place
    place.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "memrl.db"


@pytest.fixture
def open_memory(backend: Backend) -> Iterator[Callable[..., Memory]]:
    """Factory: a Memory on the test's store; every store it opens is closed afterwards."""
    stores: list[Storage] = []

    def make(
        embedder: Any = None,
        config: MemoryConfig | None = None,
        seed: int | None = 0,
        path: Path | str | None = None,
    ) -> Memory:
        embedder = embedder or FakeEmbedder()
        store = open_storage(path or backend.target, embedder.dim, embedder.model_id)
        stores.append(store)
        rng = None if seed is None else random.Random(seed)
        return Memory(store, embedder, config, rng=rng)

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def snapshot() -> Callable[[Storage], dict[str, Any]]:
    return table_snapshot


@pytest.fixture
def sql() -> Callable[..., list[tuple[Any, ...]]]:
    return query


@pytest.fixture
def java() -> None:
    require_java()
