"""The PostgreSQL tier of memrl-bench reuses its schema between runs: each run starts from
the memories as loaded, learning and evidence included."""

from __future__ import annotations

import pytest
from backends import Backend, admin, query
from fake_embedder import FakeEmbedder
from memrl_clients.bench.postgres import reset_learning

from memrl import Memory, MemoryConfig, open_storage


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_reused_tier_starts_with_no_learning_and_no_evidence(backend: Backend) -> None:
    embedder = FakeEmbedder()
    memory = Memory(open_storage(backend.target, embedder.dim, embedder.model_id), embedder,
                    MemoryConfig(delta=-1.0, k1=2, k2=2))
    try:
        for i in range(2):
            memory.store_experience("deploy", f"way {i}")
        for success in (True, True, False):
            memory.report(memory.recall("deploy").task_id or "", success=success)
        learned = "SELECT q, n_updates, last_reward, successes, failures, q_recent FROM memories"
        assert all(row[1] == 3 and row[3] > 0 for row in query(memory.storage, learned))
        with admin(backend.target) as conn:
            reset_learning(conn)
        assert query(memory.storage, learned) == [(0.0, 0, None, 0.0, 0.0, 0.0)] * 2
        assert query(memory.storage, "SELECT count(*) FROM tasks") == [(0,)]
        assert memory.recall("deploy").injected  # the tier still recalls
    finally:
        memory.close()
