"""A small real history for the inspection page: memories stored, recalled, rewarded.

Three topics, each with memories that help and memories that look alike but do not; a
scripted agent runs tasks of each topic (a task succeeds when a helpful memory was
injected, and now and then without one), some tasks fall outside every topic (nothing
passes the gate), and the last few are never reported. One memory is injected per task
(k = 1), so Q alone decides which of a topic's memories the next task gets. One memory carries HTML and a
script tag: agents write the text, so the page must show it as text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from memrl import Memory

NAMESPACE = "github.com/acme/shop"
HOSTILE = '<script>document.title="pwned"</script><b>bold?</b> & "quotes"'

TOPICS = {
    "flaky async job queue test fails with a race condition": [
        ("await the queue's join() before asserting; never sleep", True),
        ("add time.sleep(1) before the assertion", False),
        ("mark the test as flaky and retry it three times", False),
    ],
    "database migration adds an index to the users table": [
        ("create the index CONCURRENTLY in its own migration, outside a transaction", True),
        ("run ALTER TABLE inside the deploy script by hand", False),
    ],
    "release a new version of the package to PyPI": [
        ("bump the version, tag, python -m build, twine upload dist/*", True),
        ("upload the wheel from the developer laptop with setup.py upload", False),
    ],
}
TASKS = {
    "flaky async job queue test fails with a race condition": [
        "fix the flaky race-condition test in the async job queue",
        "job queue test is flaky: fails one run in five with a race",
    ],
    "database migration adds an index to the users table": [
        "add an index on users.email without locking the table",
        "write a migration that indexes the users table",
    ],
    "release a new version of the package to PyPI": [
        "publish version 2.1 of the package to PyPI",
        "cut a release and upload it to PyPI",
    ],
}
STRANGERS = ["translate the README into French", "draw a logo for the project website"]


@dataclass
class History:
    namespace: str
    helpful: set[int] = field(default_factory=set)
    hostile_id: int = 0
    task_ids: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)


def fill(memory: Memory, namespace: str = NAMESPACE, rounds: int = 8, seed: int = 7) -> History:
    rng = random.Random(seed)
    history = History(namespace)
    for intent, experiences in TOPICS.items():
        for text, helps in experiences:
            out = memory.store_experience(intent, text, "success" if helps else "failure", namespace)
            if helps:
                history.helpful.add(out.id)
    history.hostile_id = memory.store_experience(
        "render the release notes as HTML", HOSTILE, "note", namespace
    ).id
    tasks = [t for ts in TASKS.values() for t in ts]
    for round_ in range(rounds):
        batch = tasks + ([STRANGERS[round_ % 2]] if round_ % 2 == 0 else [])
        rng.shuffle(batch)
        for task in batch:
            r = memory.recall(task, namespace, k=1)
            assert r.task_id is not None
            helped = any(m.id in history.helpful for m in r.injected)
            won = helped or rng.random() < 0.2
            memory.report(r.task_id, success=won, namespace=namespace)
            history.task_ids.append(r.task_id)
    for task in tasks[:2]:
        r = memory.recall(task, namespace)
        assert r.task_id is not None
        history.pending.append(r.task_id)
    return history
