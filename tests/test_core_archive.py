"""The archive's inputs outside the storage: capacity settings and the CLI's flag parsing."""

from __future__ import annotations

import pytest
from memrl_server.cli import build_parser, settings_from
from memrl_server.commands import _feedback, _ids

from memrl import InvalidInputError, MemoryConfig


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"capacity": -1}, "capacity must be an integer in 0..1000000000"),
        ({"capacity": 2.5}, "capacity must be an integer, got 2.5"),
        ({"capacity": True}, "capacity must be an integer, got True"),
        ({"prune_min_updates": 0}, "prune_min_updates must be at least 1"),
        ({"prune_q_below": 1.5}, r"prune_q_below must be in \[-1, 1\]"),
        ({"prune_stale_days": 0.0}, r"prune_stale_days must be in \(0, 36500\]"),
    ],
)
def test_bad_forgetting_settings_are_refused(kwargs, message) -> None:
    with pytest.raises(InvalidInputError, match=message):
        MemoryConfig(**kwargs)


def test_capacity_none_means_no_limit() -> None:
    assert MemoryConfig().capacity is None and MemoryConfig(capacity=0).capacity == 0


def test_serve_and_prune_take_capacity() -> None:
    env = {"MEMRL_NAMESPACE": "ns"}
    for argv in (["serve", "--capacity", "500"], ["prune", "--capacity", "500", "--dry-run"]):
        args = build_parser().parse_args(argv)
        assert settings_from(args, env).memory.capacity == 500
    with pytest.raises(InvalidInputError, match="capacity must be an integer in"):
        settings_from(build_parser().parse_args(["serve", "--capacity", "-3"]), env)


def test_feedback_and_ids_flags() -> None:
    assert _feedback("12=useful, 15=outdated,") == {12: "useful", 15: "outdated"}
    assert _feedback(None) is None
    for bad, message in [
        ("12", "--feedback must be ID=VERDICT pairs"),
        ("x=useful", "--feedback must be ID=VERDICT pairs"),
        ("1=useful,1=outdated", "--feedback names memory 1 twice"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            _feedback(bad)
    assert _ids("--supersedes", "3,4") == [3, 4]
    with pytest.raises(InvalidInputError, match="--supersedes must be comma-separated"):
        _ids("--supersedes", "3;4")


def test_a_file_of_the_previous_schema_gets_the_archive(tmp_path) -> None:
    """A database written before the archive existed: reopening adds its tables, keeps every
    memory, and the archive works on the old rows."""
    from fake_embedder import FakeEmbedder

    from memrl import Memory, MemoryConfig, open_storage
    from memrl.storage.sqlite.migrations import MIGRATIONS, m006_archive

    path = tmp_path / "old.db"
    embedder = FakeEmbedder()
    store = open_storage(path, embedder.dim, embedder.model_id)
    memory = Memory(store, embedder, MemoryConfig(delta=-1.0))
    a = memory.store_experience("deploy", "way a").id
    conn = store._conn  # type: ignore[attr-defined]
    for table in ("archived_memories", "memory_corrections", "memory_feedback"):
        conn.execute(f"DROP TABLE {table}")
    for column in ("learned_delta", "learned_reports", "learned_at"):  # the later migration's
        conn.execute(f"ALTER TABLE namespaces DROP COLUMN {column}")
    conn.execute(f"PRAGMA user_version = {MIGRATIONS.index(m006_archive)}")
    memory.close()

    store = open_storage(path, embedder.dim, embedder.model_id)
    memory = Memory(store, embedder, MemoryConfig(delta=-1.0))
    try:
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)  # type: ignore[attr-defined]
        assert memory.get(a) is not None
        fix = memory.store_experience("deploy", "way b", supersedes=[a]).id
        assert [m.id for m in memory.recall("deploy").injected] == [fix]
        assert memory.restore([a]).restored == [a]
    finally:
        memory.close()
