"""Shared fixtures: a real temporary SQLite file, a fake embedder, table snapshots."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_embedder import FakeEmbedder
from needs import require_java

from memrl import Embedder, Memory, MemoryConfig, SqliteStorage, load_embedder


@pytest.fixture(scope="session")
def real_model() -> Embedder:
    """The real local embedding model, loaded once per test session."""
    return load_embedder()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "memrl.db"


@pytest.fixture
def open_memory(db_path: Path) -> Iterator[Callable[..., Memory]]:
    """Factory: a Memory on the test's database file; every store it opens is closed afterwards."""
    stores: list[SqliteStorage] = []

    def make(
        embedder: Any = None,
        config: MemoryConfig | None = None,
        seed: int | None = 0,
        path: Path | None = None,
    ) -> Memory:
        embedder = embedder or FakeEmbedder()
        store = SqliteStorage(path or db_path, embedder.dim, embedder.model_id)
        stores.append(store)
        rng = None if seed is None else random.Random(seed)
        return Memory(store, embedder, config, rng=rng)

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def snapshot() -> Callable[[SqliteStorage], dict[str, Any]]:
    return table_snapshot


@pytest.fixture
def sql() -> Callable[..., list[tuple[Any, ...]]]:
    return query


def table_snapshot(store: SqliteStorage) -> dict[str, Any]:
    """Every row of every table (vector shadow tables included) and the schema version."""
    conn = store._conn
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND (name NOT LIKE 'sqlite%' OR name = 'sqlite_sequence') ORDER BY name"
        )
    ]
    snap: dict[str, Any] = {n: sorted(map(repr, conn.execute(f'SELECT * FROM "{n}"'))) for n in names}
    snap["user_version"] = conn.execute("PRAGMA user_version").fetchone()[0]
    return snap


def query(store: SqliteStorage, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in store._conn.execute(sql, args).fetchall()]



@pytest.fixture
def java() -> None:
    require_java()
