"""The `memrl` command line on PostgreSQL (real processes, the real model): `--db URL` and
MEMRL_DB select it, and `memrl export | memrl import` moves a memory from a SQLite file to
PostgreSQL and back with its Q and statistics intact."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from backends import Backend
from mcp_helpers import server_env

from memrl.transfer import EXPORT_FIELDS

# What an import records itself: the row id, the source task (the ledger is not exported),
# the model id. Everything else must survive the trip.
KEPT = [f for f in EXPORT_FIELDS if f not in ("id", "source_task_id", "model_id")]


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Backend]:
    place = Backend("postgres", tmp_path)
    yield place
    place.close()


def memrl(
    *args: str, db: str | Path | None = None, stdin: str | None = None, env: dict | None = None
) -> subprocess.CompletedProcess[str]:
    target = [] if db is None else ["--db", str(db)]
    return subprocess.run(
        [sys.executable, "-m", "memrl_server", args[0], *target, "--namespace", "cli-ns", *args[1:]],
        env=server_env(env),
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
    )


def ok(done: subprocess.CompletedProcess[str]):
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def exported(db: str | Path) -> list[dict]:
    done = memrl("export", db=db)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def learned_sqlite_memory(db: Path) -> None:
    ok(memrl("store", "--intent", "run the linters", "--experience", "ruff check .",
             "--metadata", '{"lang": "py"}', db=db))
    ok(memrl("store", "--intent", "flaky test", "--experience", "never sleep; await",
             "--kind", "failure", db=db))
    for reward in ("0.5", "-1", "1"):
        recall = ok(memrl("recall", "run the linters on the code", db=db))
        ok(memrl("report", recall["task_id"], "--reward", reward, db=db))


def test_export_import_moves_a_memory_to_postgres_and_back(tmp_path: Path, pg: Backend) -> None:
    sqlite_db, back = tmp_path / "a.db", tmp_path / "back.db"
    learned_sqlite_memory(sqlite_db)
    original = exported(sqlite_db)
    assert len(original) == 2 and max(r["n_updates"] for r in original) == 3

    dump = memrl("export", db=sqlite_db).stdout
    assert ok(memrl("import", "-", db=pg.target, stdin=dump)) == {
        "read": 2, "created": 2, "skipped_duplicates": 0, "redacted": 0, "archived": 0
    }
    on_pg = exported(pg.target)
    assert [{k: r[k] for k in KEPT} for r in on_pg] == [{k: r[k] for k in KEPT} for r in original]
    stats = ok(memrl("stats", db=pg.target))
    assert [(s["namespace"], s["memories"], s["intents"]) for s in stats] == [("cli-ns", 2, 2)]
    # the CLI rounds its numbers to 4 decimals
    assert stats[0]["mean_q"] == pytest.approx(sum(r["q"] for r in original) / 2, abs=1e-4)

    ok(memrl("import", "-", db=back, stdin=memrl("export", db=pg.target).stdout))
    returned = exported(back)
    assert [{k: r[k] for k in KEPT} for r in returned] == [{k: r[k] for k in KEPT} for r in original]
    # the imported memory keeps learning on PostgreSQL: the learned Q ranks it
    recall = ok(memrl("recall", "run the linters on the code", db=pg.target))
    assert recall["memories"][0]["q"] == pytest.approx(original[0]["q"], abs=1e-4)


def test_memrl_db_selects_postgres_for_every_command(pg: Backend) -> None:
    env = {"MEMRL_DB": pg.target}
    stored = ok(memrl("store", "--intent", "deploy the app", "--experience", "make deploy", env=env))
    recall = ok(memrl("recall", "deploy the app", env=env))
    assert [m["id"] for m in recall["memories"]] == [stored["id"]]
    report = ok(memrl("report", recall["task_id"], "--success", env=env))
    assert report["credited"] == [{"id": stored["id"], "q": pytest.approx(0.3)}]
    # the same rows through --db (the URL, not a file named after it)
    assert ok(memrl("stats", db=pg.target))[0]["tasks_reported"] == 1
    assert ok(memrl("forget", str(stored["id"]), env=env))["deleted"] == 1


def test_an_unreachable_server_is_an_error_that_says_what_to_fix() -> None:
    url = "postgresql://memrl:s3cret@127.0.0.1:1/nowhere"
    done = memrl("stats", db=url)
    assert done.returncode == 2
    assert "cannot connect to PostgreSQL at postgresql://memrl:***@127.0.0.1:1/nowhere" in done.stderr
    assert "check that the server is running" in done.stderr
    assert "s3cret" not in done.stderr
