"""The task ledger in the SQLite file: each recall's parameters and pool, and its outcome.

A task row is written by its recall and its outcome once; `task_candidates` keeps the
whole phase-A pool (similarity, Q, score, injected, credited), so history can be replayed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ... import learning
from ...errors import InvalidInputError
from ...gate_learning import ReportedTask
from ...learning import LearningRule
from ..base import NewTask, Outcome, TaskRow
from ..shared_sql import SQLITE, q_of


def record_task(conn: Any, model_id: str, task: NewTask) -> None:
    """Log one recall (inside the caller's write transaction)."""
    inserted = conn.execute(
        "INSERT INTO tasks(task_id, namespace, query, model_id, created_at, k1, k2, lam, "
        "delta, epsilon, explored, selection_prob) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT(task_id) DO NOTHING RETURNING task_id",
        (
            task.task_id,
            task.namespace,
            task.query,
            model_id,
            time.time(),
            task.k1,
            task.k2,
            task.lam,
            task.delta,
            task.epsilon,
            int(task.explored),
            task.selection_prob,
        ),
    ).fetchone()
    if inserted is None:  # checked here too: another process may have taken the id
        raise InvalidInputError(f"task id {task.task_id!r} is already used: pick a new one")
    conn.executemany(
        "INSERT INTO task_candidates(task_id, memory_id, rank, similarity, q, score, "
        "injected) VALUES (?,?,?,?,?,?,?)",
        [
            (task.task_id, c.memory_id, c.rank, c.similarity, c.q, c.score, int(c.injected))
            for c in task.candidates
        ],
    )


def task(conn: Any, task_id: str) -> TaskRow | None:
    row = conn.execute(
        "SELECT task_id, namespace, query, outcome, reward FROM tasks WHERE task_id = ?",
        (task_id,),
    ).fetchone()
    if row is None:
        return None
    cands = conn.execute(
        "SELECT memory_id, injected, credited FROM task_candidates WHERE task_id = ? "
        "ORDER BY rank",
        (task_id,),
    ).fetchall()
    return TaskRow(
        task_id=row[0],
        namespace=row[1],
        query=row[2],
        outcome=row[3],
        reward=row[4],
        injected=[int(c[0]) for c in cands if c[1]],
        credited=[int(c[0]) for c in cands if c[2]],
        pool=[int(c[0]) for c in cands],
    )


def apply_outcome(
    conn: Any,
    task_id: str,
    outcome: str,
    reward: float,
    used_ids: list[int] | None,
    credit: Sequence[int],
    rule: LearningRule | None,
    rewards: Mapping[int, float] | None = None,
) -> Outcome:
    """Record the outcome of an unreported task, mark `credit`, and with a `rule` update
    them toward `reward` (or `rewards[id]`, per-memory feedback), one statement per reward
    (no read-modify-write). Inside the caller's write transaction."""
    # The clock is read under the write lock, so reported_at orders the ledger the way the
    # Q updates were applied, also across processes (replayable history).
    now = time.time()
    credit = sorted(set(credit))
    marks = ",".join("?" * len(credit))
    updated = conn.execute(
        "UPDATE tasks SET outcome = ?, reward = ?, used_ids = ?, reported_at = ? "
        "WHERE task_id = ? AND reward IS NULL RETURNING task_id",
        (outcome, reward, None if used_ids is None else json.dumps(used_ids), now, task_id),
    ).fetchone()
    if updated is None:
        raise InvalidInputError(f"task {task_id!r} already has an outcome")
    if rule is not None and credit:
        groups: dict[float, list[int]] = {}
        for m in credit:
            groups.setdefault((rewards or {}).get(m, reward), []).append(m)
        new_q = {}
        for r, ids in groups.items():
            named = {f"m{i}": m for i, m in enumerate(ids)}
            rows = conn.execute(
                f"UPDATE memories SET {learning.set_clause(lambda n: ':' + n, ':r')}, "
                "n_updates = n_updates + 1, last_reward = :r, updated_at = :now WHERE id IN "
                "(SELECT memory_id FROM task_candidates WHERE task_id = :task AND memory_id IN "
                f"({','.join(':' + k for k in named)})) RETURNING id, q",
                {**rule.params(), "r": r, "now": now, "task": task_id, **named},
            ).fetchall()
            new_q.update({int(row[0]): float(row[1]) for row in rows})
    else:
        new_q = q_of(conn, SQLITE, credit)
    if credit:  # marked with the Q right after this outcome: each memory's history
        conn.execute(
            "UPDATE task_candidates SET credited = 1, q_after = (SELECT q FROM memories m "
            f"WHERE m.id = task_candidates.memory_id) WHERE task_id = ? AND memory_id IN ({marks})",
            [task_id, *credit],
        )
    return Outcome(new_q, [m for m in credit if m not in new_q])


# -- the gate learned from outcomes (gate_learning.py) -----------------------------------------


def reported_tasks(conn: Any, namespace: str, limit: int) -> list[ReportedTask]:
    """The last `limit` reported tasks of a namespace by recall time, newest first, with
    their injected memories (index tasks_namespace, then each task's pool)."""
    rows = conn.execute(
        "SELECT t.task_id, t.reward, t.used_ids FROM tasks t WHERE t.namespace = ? "
        "AND t.reward IS NOT NULL ORDER BY t.created_at DESC, t.task_id DESC LIMIT ?",
        (namespace, int(limit)),
    ).fetchall()
    if not rows:
        return []
    injected: dict[str, list[tuple[int, float]]] = {r[0]: [] for r in rows}
    ids = list(injected)
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        for task_id, mid, sim in conn.execute(
            "SELECT task_id, memory_id, similarity FROM task_candidates WHERE injected = 1 "
            f"AND task_id IN ({','.join('?' * len(chunk))}) ORDER BY task_id, rank",
            chunk,
        ):
            injected[task_id].append((int(mid), float(sim)))
    return [
        ReportedTask(
            float(r[1]), None if r[2] is None else [int(x) for x in json.loads(r[2])], injected[r[0]]
        )
        for r in rows
    ]
