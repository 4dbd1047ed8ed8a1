"""What only the PostgreSQL backend has: its migrations table under an advisory lock, the
Q update of an outcome (one statement that also records Q after in the ledger), the search
settings of its pooled connections, and errors that say what to fix when the server lacks
what memrl needs."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from backends import Backend, admin, postgres_dsn, query
from fake_embedder import FakeEmbedder

from memrl import DatabaseError, Memory, MemoryConfig, open_storage
from memrl.learning import LearningRule
from memrl.storage.postgres.migrations import MIGRATIONS


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Backend]:
    place = Backend("postgres", tmp_path)
    yield place
    place.close()


def test_reopening_migrates_once_and_a_newer_schema_is_refused(pg: Backend) -> None:
    for _ in range(3):
        open_storage(pg.target, 8, "fake-model").close()
    store = open_storage(pg.target, 8, "fake-model")
    try:
        assert query(store, "SELECT version, name FROM schema_migrations") == [
            (n + 1, m.__name__) for n, m in enumerate(MIGRATIONS)
        ]
        query(store, "INSERT INTO schema_migrations(version, name) VALUES (?, 'from the future')",
              len(MIGRATIONS) + 1)
    finally:
        store.close()
    with pytest.raises(DatabaseError, match="newer than this memrl understands .*: upgrade memrl"):
        open_storage(pg.target, 8, "fake-model")


def test_a_q_update_records_q_after_and_the_search_settings_are_set(pg: Backend) -> None:
    memory = Memory(open_storage(pg.target, 8, "fake-model"), FakeEmbedder(), MemoryConfig(delta=-1.0))
    try:
        mid = memory.store_experience("deploy", "make deploy").id
        task = memory.recall("deploy").task_id
        assert task is not None
        with memory.storage.write() as tx:
            tx.apply_outcome(task, "success", 1.0, None, [mid], LearningRule(0.3))
            hot = tx.conn.execute(  # type: ignore[attr-defined]
                "SELECT pg_stat_get_xact_tuples_hot_updated('memories'::regclass), "
                "pg_stat_get_xact_tuples_updated('memories'::regclass)"
            ).fetchone()
            settings = tx.conn.execute(  # type: ignore[attr-defined]
                "SELECT current_setting('hnsw.iterative_scan'), current_setting('hnsw.ef_search')"
            ).fetchone()
        # Since m002 indexes cover Q (the inspection page's sort), the update is not HOT:
        # its cost is measured in docs/PERFORMANCE.md#postgresql.
        assert hot == (0, 1)
        assert settings == ("relaxed_order", "100")
        assert query(memory.storage, "SELECT reloptions FROM pg_class WHERE relname = 'memories' "
                     "AND relnamespace = current_schema()::regnamespace") == [('["fillfactor=80"]',)]
        assert memory.get(mid).q == pytest.approx(0.3)
        assert query(memory.storage, "SELECT credited, q_after FROM task_candidates") == [(1, 0.3)]
    finally:
        memory.close()


def test_a_database_without_the_vector_extension_says_how_to_enable_it() -> None:
    """A user who may not create extensions, in a database without pgvector enabled."""
    dsn = postgres_dsn()
    suffix = secrets.token_hex(4)
    database, role = f"memrl_noext_{suffix}", f"memrl_plain_{suffix}"
    with admin(dsn) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"CREATE DATABASE {database} OWNER {role}")
    url = dsn.rsplit("/", 1)[0].replace("//postgres@", f"//{role}@") + f"/{database}"
    try:
        with pytest.raises(DatabaseError) as caught:
            open_storage(url, 8, "fake-model")
        assert "the `vector` extension is not enabled in this database" in str(caught.value)
        assert "run `CREATE EXTENSION vector;` as a superuser" in str(caught.value)
    finally:
        with admin(dsn) as conn:
            conn.execute(f"DROP DATABASE {database}")
            conn.execute(f"DROP ROLE {role}")
