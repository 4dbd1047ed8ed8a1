"""Per-session task state of the hooks: one small SQLite file per database, next to the
daemon's files, written by the hook processes themselves (stdlib sqlite3).

It lives apart from the daemon on purpose: a daemon that exits when idle, crashes or is
upgraded loses nothing, and a PostToolUse verdict is recorded without waking it. Each row
is one hook task (one recall made for one user prompt): which session it belongs to,
which memory ids were shown to the model, which task ids the model recalled itself, the
last verdict of each strength, whether the stop reminder was given, and its status
(open -> reported | closed). A session's current task is its newest open one.

Several hooks often open a state file that does not exist yet at the same moment (the
first prompts of parallel sessions). Each connection waits on SQLite's busy handler from
its first statement; the switch of a new file to WAL, for which SQLite does not wait (it
fails at once with "database is locked" when another process is switching or writing the
same file), is retried for as long as the busy timeout; the schema is created inside a
`BEGIN IMMEDIATE` transaction that re-reads the version, so it is created once.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

KEEP_SECONDS = 14 * 24 * 3600  # rows older than this are dropped (sessions can be resumed)
BUSY_TIMEOUT = 10.0  # seconds a hook waits for the state file before giving up

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS tasks (
    task_id     TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL,
    namespace   TEXT NOT NULL,
    query       TEXT NOT NULL,
    shown       TEXT NOT NULL DEFAULT '[]',
    model_tasks TEXT NOT NULL DEFAULT '[]',
    strong      TEXT,
    weak        TEXT,
    verifier    TEXT,
    reminded    INTEGER NOT NULL DEFAULT 0,
    status      TEXT NOT NULL DEFAULT 'open',
    created     REAL NOT NULL,
    updated     REAL NOT NULL
)
""",
    "CREATE INDEX IF NOT EXISTS tasks_by_session ON tasks (session_id, created)",
)


class Task:
    """One hook task as stored."""

    __slots__ = (
        "task_id",
        "session_id",
        "namespace",
        "query",
        "shown",
        "model_tasks",
        "strong",
        "weak",
        "verifier",
        "reminded",
        "status",
    )

    def __init__(self, row: sqlite3.Row) -> None:
        self.task_id: str = row["task_id"]
        self.session_id: str = row["session_id"]
        self.namespace: str = row["namespace"]
        self.query: str = row["query"]
        self.shown: list[int] = json.loads(row["shown"])
        self.model_tasks: list[str] = json.loads(row["model_tasks"])
        self.strong: str | None = row["strong"]
        self.weak: str | None = row["weak"]
        self.verifier: str | None = row["verifier"]
        self.reminded = bool(row["reminded"])
        self.status: str = row["status"]

    @property
    def has_verdict(self) -> bool:
        return self.strong is not None or self.weak is not None


class SessionState:
    """The state file. Every write is one short `BEGIN IMMEDIATE` transaction: parallel
    hooks of one session (parallel tool calls) do not lose each other's updates."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # the busy timeout is set by connect, before any statement reads the file
        self._conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
        try:
            self._conn.row_factory = sqlite3.Row
            # WAL + NORMAL: commits without fsync, never corrupt; a power cut may lose the
            # last verdicts, which costs one unreported task, not the memory
            self._conn.execute("PRAGMA synchronous=NORMAL")
            if self._version() == 0:
                self._create()
        except BaseException:
            self._conn.close()
            raise

    def _version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _create(self) -> None:
        """WAL and the schema of a new file, which other hooks may be creating too."""
        self._switch_to_wal()
        with self._write() as db:
            if self._version() == 0:  # re-read under the write lock: created once
                for statement in SCHEMA:
                    db.execute(statement)
                db.execute("PRAGMA user_version = 1")

    def _switch_to_wal(self) -> None:
        """`PRAGMA journal_mode=WAL`, retried with jittered back-off for up to the busy
        timeout: SQLite refuses the switch at once, without its busy handler, while another
        connection writes the file or switches it too (a no-op once the file is in WAL)."""
        deadline = time.monotonic() + BUSY_TIMEOUT
        pause = 0.002
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode=WAL").fetchone()
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise
                if time.monotonic() + pause > deadline:
                    raise sqlite3.OperationalError(
                        f"the hook state file {self.path} stayed locked for "
                        f"{BUSY_TIMEOUT:.0f} s: {e}"
                    ) from e
            import random  # only when contended: ~5 ms of a hook's start otherwise

            time.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, 0.1)

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def current(self, session_id: str) -> Task | None:
        """The session's newest open task."""
        row = self._conn.execute(
            "SELECT * FROM tasks WHERE session_id = ? AND status = 'open' "
            "ORDER BY created DESC, rowid DESC LIMIT 1",
            (session_id,),
        ).fetchone()
        return None if row is None else Task(row)

    def latest(self, session_id: str) -> Task | None:
        """The session's newest task, whatever its status."""
        row = self._conn.execute(
            "SELECT * FROM tasks WHERE session_id = ? ORDER BY created DESC, rowid DESC LIMIT 1",
            (session_id,),
        ).fetchone()
        return None if row is None else Task(row)

    def open_tasks(self, session_id: str) -> list[Task]:
        rows = self._conn.execute(
            "SELECT * FROM tasks WHERE session_id = ? AND status = 'open' ORDER BY created",
            (session_id,),
        ).fetchall()
        return [Task(r) for r in rows]

    def get(self, task_id: str) -> Task | None:
        row = self._conn.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        return None if row is None else Task(row)

    def open_task(
        self, task_id: str, session_id: str, namespace: str, query: str, shown: Iterable[int]
    ) -> None:
        now = time.time()
        with self._write() as db:
            db.execute(
                "INSERT INTO tasks (task_id, session_id, namespace, query, shown, created, "
                "updated) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (task_id, session_id, namespace, query, json.dumps(list(shown)), now, now),
            )
            db.execute("DELETE FROM tasks WHERE updated < ?", (now - KEEP_SECONDS,))

    def record_verdict(self, task_id: str, outcome: str, strength: str, command: str) -> None:
        column = "strong" if strength == "strong" else "weak"
        with self._write() as db:
            db.execute(
                f"UPDATE tasks SET {column} = ?, verifier = ?, updated = ? WHERE task_id = ?",
                (outcome, command[:500], time.time(), task_id),
            )

    def add_model_tasks(self, task_id: str, model_task_ids: Iterable[str]) -> None:
        """Task ids the model opened itself (its own recall_experience calls)."""
        with self._write() as db:
            row = db.execute(
                "SELECT model_tasks FROM tasks WHERE task_id = ?", (task_id,)
            ).fetchone()
            if row is None:
                return
            merged = json.loads(row["model_tasks"])
            for other in model_task_ids:
                if other not in merged and other != task_id:
                    merged.append(other)
            db.execute(
                "UPDATE tasks SET model_tasks = ?, updated = ? WHERE task_id = ?",
                (json.dumps(merged), time.time(), task_id),
            )

    def mark_reminded(self, task_id: str) -> bool:
        """Set the reminder flag; False if it was already set (the reminder is given once)."""
        with self._write() as db:
            cur = db.execute(
                "UPDATE tasks SET reminded = 1, updated = ? WHERE task_id = ? AND reminded = 0",
                (time.time(), task_id),
            )
            return cur.rowcount == 1

    def set_status(self, task_id: str, status: str) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE tasks SET status = ?, updated = ? WHERE task_id = ?",
                (status, time.time(), task_id),
            )
