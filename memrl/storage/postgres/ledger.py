"""The task ledger in PostgreSQL: each recall's parameters and pool, and its outcome.

Exactly once under concurrent duplicate delivery: inside a write transaction `task()`
reads the task row `FOR UPDATE`, so a second delivery of the same outcome waits for the
first to commit and then sees its reward (and `Memory.report` answers "already
reported"); the outcome itself is a conditional `UPDATE ... WHERE reward IS NULL`, which
PostgreSQL re-checks on the newest row version, so even a caller that skipped the read
could not apply an outcome twice. The Q update is one statement, `q = q + alpha * (r - q)`,
evaluated on the newest committed Q of each row: no lost update between servers; the same
statement records each credited memory's Q after the outcome in the task's pool
(`task_candidates.q_after`, the history the inspection page shows).
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


def record_task(conn: Any, model_id: str, task: NewTask) -> None:
    """Log one recall (inside the caller's write transaction), task and pool in one
    statement: a round trip to the server costs more than the rows."""
    cands = task.candidates
    inserted = conn.execute(
        "WITH t AS (INSERT INTO tasks(task_id, namespace, query, model_id, created_at, k1, k2, "
        "lam, delta, epsilon, explored, selection_prob) VALUES "
        "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (task_id) DO NOTHING RETURNING task_id), "
        "c AS (INSERT INTO task_candidates(task_id, memory_id, rank, similarity, q, score, "
        "injected) SELECT t.task_id, u.* FROM t, unnest(%s::bigint[], %s::integer[], "
        "%s::float8[], %s::float8[], %s::float8[], %s::boolean[]) AS u) "
        "SELECT count(*) FROM t",
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
            bool(task.explored),
            task.selection_prob,
            [c.memory_id for c in cands],
            [c.rank for c in cands],
            [c.similarity for c in cands],
            [c.q for c in cands],
            [c.score for c in cands],
            [bool(c.injected) for c in cands],
        ),
    ).fetchone()
    if inserted[0] == 0:
        raise InvalidInputError(f"task id {task.task_id!r} is already used: pick a new one")


def task(conn: Any, task_id: str, *, lock: bool = False) -> TaskRow | None:
    """The task with its injected and credited memories; `lock` holds its row until the
    transaction ends (a write transaction's read, see the module docstring)."""
    row = conn.execute(
        "SELECT task_id, namespace, query, outcome, reward, "
        "ARRAY(SELECT memory_id FROM task_candidates c WHERE c.task_id = t.task_id "
        "AND injected ORDER BY rank), "
        "ARRAY(SELECT memory_id FROM task_candidates c WHERE c.task_id = t.task_id "
        "AND credited ORDER BY rank), "
        "ARRAY(SELECT memory_id FROM task_candidates c WHERE c.task_id = t.task_id "
        "ORDER BY rank) FROM tasks t WHERE task_id = %s"
        + (" FOR UPDATE" if lock else ""),
        (task_id,),
    ).fetchone()
    if row is None:
        return None
    return TaskRow(
        task_id=row[0],
        namespace=row[1],
        query=row[2],
        outcome=row[3],
        reward=row[4],
        injected=[int(m) for m in row[5]],
        credited=[int(m) for m in row[6]],
        pool=[int(m) for m in row[7]],
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
    them toward `reward` (or `rewards[id]`, per-memory feedback) as one statement. Inside
    the caller's write transaction."""
    now = time.time()
    credit = sorted(set(int(c) for c in credit))
    updated = conn.execute(
        "UPDATE tasks SET outcome = %s, reward = %s, used_ids = %s::jsonb "
        "WHERE task_id = %s AND reward IS NULL RETURNING task_id",
        (outcome, reward, None if used_ids is None else json.dumps(used_ids), task_id),
    ).fetchone()
    if updated is None:
        raise InvalidInputError(f"task {task_id!r} already has an outcome")
    if rule is not None and credit:
        # One statement moves Q and marks the pool with the Q it left (q_after; NULL for a
        # memory forgotten since the recall). Rows locked in id order: two outcomes
        # crediting overlapping memories in different orders would otherwise deadlock. The
        # sub-statements share one snapshot, so the mark takes the new Q from `moved`.
        per = [float((rewards or {}).get(m, reward)) for m in credit]
        rows = conn.execute(
            "WITH r AS (SELECT * FROM unnest(%(credit)s::bigint[], %(per)s::float8[]) "
            "AS r(id, reward)), "
            "target AS (SELECT m.id, r.reward FROM memories m JOIN r ON r.id = m.id "
            "ORDER BY m.id FOR UPDATE OF m), "
            "moved AS (UPDATE memories m SET "
            f"{learning.set_clause(lambda n: f'%({n})s', 'target.reward')}, "
            "n_updates = m.n_updates + 1, last_reward = target.reward, updated_at = %(now)s "
            "FROM target WHERE m.id = target.id RETURNING m.id, m.q), "
            "marked AS (UPDATE task_candidates c SET credited = true, "
            "q_after = (SELECT moved.q FROM moved WHERE moved.id = c.memory_id) "
            "WHERE c.task_id = %(task)s AND c.memory_id = ANY(%(credit)s)) "
            "SELECT id, q FROM moved",
            {**rule.params(), "credit": credit, "per": per, "now": now, "task": task_id},
        ).fetchall()
        new_q = {int(r[0]): float(r[1]) for r in rows}
    elif credit:  # learning off: marked with the Q they keep
        rows = conn.execute(
            "UPDATE task_candidates c SET credited = true, "
            "q_after = (SELECT m.q FROM memories m WHERE m.id = c.memory_id) "
            "WHERE c.task_id = %s AND c.memory_id = ANY(%s) RETURNING c.memory_id, c.q_after",
            (task_id, credit),
        ).fetchall()
        new_q = {int(r[0]): float(r[1]) for r in rows if r[1] is not None}
    else:
        new_q = {}
    # Stamped after the memories' row locks are held (and on the server's clock): of two
    # outcomes crediting one memory, the one applied first has the earlier reported_at, so
    # the ledger in reported_at order replays to the stored Q.
    conn.execute(
        "UPDATE tasks SET reported_at = extract(epoch FROM clock_timestamp()) "
        "WHERE task_id = %s",
        (task_id,),
    )
    return Outcome(new_q, [m for m in credit if m not in new_q])


# -- the gate learned from outcomes (gate_learning.py) -----------------------------------------


def reported_tasks(conn: Any, namespace: str, limit: int) -> list[ReportedTask]:
    """The last `limit` reported tasks of a namespace by recall time, newest first, with
    their injected memories, in one statement (index tasks_by_created, then each pool)."""
    rows = conn.execute(
        "SELECT t.reward, t.used_ids, "
        "ARRAY(SELECT c.memory_id FROM task_candidates c WHERE c.task_id = t.task_id "
        "AND c.injected ORDER BY c.rank), "
        "ARRAY(SELECT c.similarity FROM task_candidates c WHERE c.task_id = t.task_id "
        "AND c.injected ORDER BY c.rank) "
        "FROM tasks t WHERE t.namespace = %s AND t.reward IS NOT NULL "
        'ORDER BY t.created_at DESC, t.task_id COLLATE "C" DESC LIMIT %s',
        (namespace, int(limit)),
    ).fetchall()
    return [
        ReportedTask(
            float(r[0]),
            None if r[1] is None else [int(x) for x in r[1]],
            [(int(m), float(s)) for m, s in zip(r[2], r[3])],
        )
        for r in rows
    ]
