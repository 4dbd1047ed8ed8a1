"""The `memrl` command line on a real database file and the real model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mcp_helpers import server_env

from memrl.transfer import EXPORT_FIELDS

SCOPED = (
    "recall", "report", "store", "stats", "export", "import", "forget", "archive", "restore",
    "prune",
)  # take --namespace


def memrl(db: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    scope = ["--namespace", "cli-ns"] if args[0] in SCOPED else []
    return subprocess.run(
        [sys.executable, "-m", "memrl_server", *args[:1], "--db", str(db), *scope, *args[1:]],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
    )


def ok(done: subprocess.CompletedProcess[str]):
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_store_recall_report_stats(tmp_path: Path):
    db = tmp_path / "m.db"
    stored = ok(
        memrl(
            db,
            "store",
            "--intent",
            "release a new version to PyPI",
            "--experience",
            "bump version, tag, python -m build, twine upload",
        )
    )
    assert stored == {
        "id": 1, "created": True, "namespace": "cli-ns", "redacted": 0, "superseded": [],
        "archived": False,
    }
    recall = ok(memrl(db, "recall", "publish the package to PyPI"))
    assert [m["id"] for m in recall["memories"]] == [1]
    report = ok(memrl(db, "report", recall["task_id"], "--success", "--used", "1"))
    assert report["status"] == "updated" and report["credited"] == [
        {"id": 1, "q": pytest.approx(0.3)}
    ]
    again = ok(memrl(db, "report", recall["task_id"], "--failure"))
    assert again["status"] == "already_reported"
    stats = ok(memrl(db, "stats"))
    assert stats[0]["namespace"] == "cli-ns" and stats[0]["tasks_reported"] == 1


def test_export_import_round_trips_q_and_statistics(tmp_path: Path):
    src, dst = tmp_path / "a.db", tmp_path / "b.db"
    ok(
        memrl(
            src,
            "store",
            "--intent",
            "run the linters",
            "--experience",
            "ruff check .",
            "--metadata",
            '{"lang": "py"}',
        )
    )
    ok(
        memrl(
            src,
            "store",
            "--intent",
            "flaky test",
            "--experience",
            "never sleep; await",
            "--kind",
            "failure",
        )
    )
    recall = ok(memrl(src, "recall", "run the linters on the code"))
    ok(memrl(src, "report", recall["task_id"], "--reward", "0.5"))
    exported = memrl(src, "export")
    assert exported.returncode == 0
    lines = [json.loads(x) for x in exported.stdout.splitlines()]
    assert len(lines) == 2
    imported = ok(memrl(dst, "import", "-", stdin=exported.stdout))
    assert imported == {
        "read": 2, "created": 2, "skipped_duplicates": 0, "redacted": 0, "archived": 0
    }
    assert ok(memrl(dst, "import", "-", stdin=exported.stdout))["created"] == 0
    again = [json.loads(x) for x in memrl(dst, "export").stdout.splitlines()]
    # every exported field survives the round trip, except what the importing file records
    # itself: the row id, the source task (the ledger is not exported), the model id
    keep = [f for f in EXPORT_FIELDS if f not in ("id", "source_task_id", "model_id")]
    assert [{k: r[k] for k in keep} for r in again] == [{k: r[k] for k in keep} for r in lines]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("report", "t-nope", "--success"), "unknown task id"),
        (("report", "t-nope", "--reward", "2"), "reward must be a number in [-1, 1]"),
        (("report", "t-nope", "--reward", "nan"), "reward must be a number in [-1, 1]"),
        (("store", "--intent", " ", "--experience", "x"), "intent is empty"),
        (
            ("store", "--intent", "x", "--experience", "y", "--metadata", "[1]"),
            "metadata must be a JSON object",
        ),
        (("recall", "x", "--k1", "0"), "k1 must be in 1..1000"),
        (("import", "missing.jsonl"), "cannot read 'missing.jsonl'"),
    ],
)
def test_errors_exit_2_with_a_message(tmp_path: Path, args: tuple[str, ...], message: str):
    ok(memrl(tmp_path / "m.db", "store", "--intent", "a task", "--experience", "a way"))
    done = memrl(tmp_path / "m.db", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_import_line_imports_nothing(tmp_path: Path):
    db = tmp_path / "m.db"
    good = json.dumps(
        {"namespace": "cli-ns", "intent": "a", "experience": "b", "kind": "note", "q": 0.2}
    )
    bad = json.dumps({"namespace": "cli-ns", "intent": "c", "experience": "d", "q": 3})
    done = memrl(db, "import", "-", stdin=good + "\n" + bad + "\n")
    assert (
        done.returncode == 2 and "line 2" in done.stderr and "nothing was imported" in done.stderr
    )
    assert memrl(db, "export").stdout == ""


def test_forget_is_verifiable(tmp_path: Path):
    db = tmp_path / "m.db"
    ok(memrl(db, "store", "--intent", "a task", "--experience", "a way"))
    out = ok(memrl(db, "forget", "1", "2"))
    assert out == {"requested": [1, 2], "deleted": 1, "still_present": [], "refused": []}
    assert ok(memrl(db, "recall", "a task"))["memories"] == []


def test_forget_from_another_namespace_is_refused(tmp_path: Path):
    db = tmp_path / "m.db"
    mid = ok(memrl(db, "store", "--intent", "a task", "--experience", "a way", "--namespace", "nsA"))["id"]
    refused = memrl(db, "forget", str(mid), "--namespace", "nsB")
    assert ok(refused) == {"requested": [mid], "deleted": 0, "still_present": [mid], "refused": [mid]}
    assert f"not deleted: {mid} belong to another namespace than 'nsB'" in refused.stderr
    assert ok(memrl(db, "forget", str(mid), "--namespace", "nsA"))["deleted"] == 1


def test_demo_shows_learning(tmp_path: Path):
    done = memrl(tmp_path / "demo.db", "demo")
    assert done.returncode == 0, done.stderr
    assert "<- the helpful one" in done.stdout
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("Success:")


def test_corrections_feedback_archive_prune_and_restore(tmp_path: Path):
    """The archive from the command line, on the real model: a correction replaces what it
    supersedes in recall; feedback archives an outdated memory; prune --dry-run explains and
    writes nothing; restore brings a memory back under its id; export --archived lists it."""
    db = tmp_path / "m.db"
    old = ok(memrl(db, "store", "--intent", "run the test suite", "--experience", "python -m unittest"))
    other = ok(memrl(db, "store", "--intent", "format the code", "--experience", "run black ."))
    bad = memrl(db, "store", "--intent", "run the tests", "--experience", "pytest", "--supersedes", "99")
    assert bad.returncode == 2 and "supersedes: no memory has id [99]" in bad.stderr
    fix = ok(
        memrl(
            db, "store", "--intent", "run the test suite", "--experience", "pytest -x -q",
            "--supersedes", str(old["id"]),
        )
    )
    assert fix["superseded"] == [old["id"]]
    recall = ok(memrl(db, "recall", "run the tests of the project"))
    assert recall["memories"][0]["id"] == fix["id"]
    assert old["id"] not in [m["id"] for m in recall["memories"]]

    report = ok(
        memrl(db, "report", recall["task_id"], "--success", "--feedback", f"{fix['id']}=outdated")
    )
    assert report["archived"] == [fix["id"]] and report["feedback"] == {str(fix["id"]): "outdated"}
    stats = ok(memrl(db, "stats"))
    assert (stats[0]["memories"], stats[0]["archived"]) == (1, 2)

    dry = memrl(db, "prune", "--capacity", "0", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["chosen"] == [] and "stays 1 above capacity 0" in dry.stderr

    restored = ok(memrl(db, "restore", str(old["id"])))
    assert restored == {"restored": [old["id"]]}
    again = ok(memrl(db, "recall", "run the tests of the project"))
    assert again["memories"][0]["id"] == old["id"]
    assert other["id"] in [m["id"] for m in again["memories"]] or len(again["memories"]) == 1

    lines = [json.loads(x) for x in memrl(db, "export", "--archived").stdout.splitlines()]
    assert [(x["id"], x.get("archived", {}).get("reason")) for x in lines] == [
        (old["id"], None), (other["id"], None), (fix["id"], "outdated")
    ]
    copy = tmp_path / "copy.db"
    imported = ok(memrl(copy, "import", "-", stdin="\n".join(json.dumps(x) for x in lines)))
    assert (imported["created"], imported["archived"]) == (3, 1)
    assert ok(memrl(copy, "stats"))[0]["archived"] == 1
