"""The command line as a person meets it: per-command flags, help, one-line errors (exit 2,
no traceback) for every failure a user can cause or meet, pipes, rounded numbers, the demo's
own database, and commands that never load the model."""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mcp_helpers import server_env
from memrl_server.cli import build_parser
from needs import fill, remount_read_only, small_filesystem

from memrl import SqliteStorage


def cli(*args: object, env: dict[str, str] | None = None, stdin: str | None = None):
    return subprocess.run(
        [sys.executable, "-m", "memrl_server", *map(str, args)],
        env=server_env(env),
        capture_output=True,
        text=True,
        timeout=180,
        input=stdin,
    )


def ok(done: subprocess.CompletedProcess[str]):
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else None


def one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 2 and exactly one line on stderr that names the problem, without a traceback."""
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr and 'File "' not in done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def store(db: Path, intent: str = "release to PyPI", experience: str = "bump, tag, upload"):
    return cli("store", "--db", db, "--namespace", "ns", "--intent", intent, "--experience", experience)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- flags and help ------------------------------------------------------------------------


def _commands() -> dict[str, argparse.ArgumentParser]:
    return build_parser().commands  # type: ignore[attr-defined]


def test_every_argument_of_every_command_has_help():
    for name, parser in _commands().items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"memrl {name}: {action.dest} has no help"


@pytest.mark.parametrize(
    ("command", "present", "absent"),
    [
        ("serve", {"--http", "--token", "--alpha", "--k1", "--model-dir"}, set()),
        ("stats", {"--all", "--namespace", "--db"}, {"--http", "--alpha", "--k1", "--model-dir"}),
        ("forget", {"--namespace"}, {"--http", "--alpha", "--model-dir", "--epsilon"}),
        ("export", {"--output"}, {"--http", "--alpha", "--model-dir"}),
        ("recall", {"--k", "--k1", "--delta"}, {"--http", "--alpha", "--token"}),
        ("report", {"--alpha", "--no-learning", "--reflection"}, {"--http", "--k1", "--delta"}),
        ("store", {"--q-init", "--metadata", "--supersedes"}, {"--http", "--alpha", "--k1"}),
        ("prune", {"--capacity", "--dry-run", "--namespace"}, {"--http", "--alpha", "--model-dir"}),
        ("archive", {"--namespace"}, {"--capacity", "--model-dir", "--alpha"}),
        ("restore", {"--namespace"}, {"--capacity", "--model-dir", "--alpha"}),
    ],
)
def test_each_command_takes_only_its_own_flags(command: str, present: set[str], absent: set[str]):
    flags = {o for a in _commands()[command]._actions for o in a.option_strings}
    assert present <= flags and not (absent & flags)


def test_version():
    done = cli("--version")
    assert done.returncode == 0 and re.fullmatch(r"memrl \S+\n", done.stdout)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("stats", "--alpha", "0.5"), ("memrl stats: error: unrecognized arguments: '--alpha 0.5'",)),
        (("stats", "--log-level", "bogus"), ("memrl stats: error", "--log-level", "invalid choice")),
        (("report", "t-1"), ("memrl report: error", "one of the arguments --success")),
        (("forget", "one"), ("memrl forget: error", "invalid int value")),
        (("frobnicate",), ("memrl: error", "invalid choice")),
        (("recall", "x", "--k1", "many"), ("memrl recall: error", "--k1")),
    ],
)
def test_bad_flags_and_arguments_are_one_line(args: tuple[str, ...], needles: tuple[str, ...]):
    line = one_line_error(cli(*args), *needles)
    assert "--help` lists the options" in line


def test_bad_log_level_in_the_environment(tmp_path: Path):
    ok(store(tmp_path / "m.db"))
    done = cli("stats", "--db", tmp_path / "m.db", env={"MEMRL_LOG_LEVEL": "bogus"})
    one_line_error(done, "MEMRL_LOG_LEVEL 'BOGUS' is not a log level")


# -- the database file -----------------------------------------------------------------------


def test_a_database_path_that_cannot_exist(tmp_path: Path):
    one_line_error(store(Path("/proc/nope/m.db")), "cannot create the folder", "/proc/nope/m.db")


def test_read_commands_do_not_create_a_database(tmp_path: Path):
    for command in ("stats", "export"):
        one_line_error(cli(command, "--db", tmp_path / "none.db"), "no database at")
    one_line_error(cli("report", "t-1", "--success", "--db", tmp_path / "none.db"), "no database")
    assert not (tmp_path / "none.db").exists()


def test_an_empty_file_is_refused_not_reinitialised(tmp_path: Path):
    db = tmp_path / "m.db"
    db.touch()
    for done in (store(db), cli("stats", "--db", db), cli("recall", "x", "--db", db)):
        one_line_error(done, "is an empty file (0 bytes)", "restore it from a backup")
    assert db.stat().st_size == 0


def test_a_damaged_file_is_refused(tmp_path: Path):
    db = tmp_path / "m.db"
    db.write_bytes(b"this is not a database, just text\n" * 200)
    before = sha(db)
    one_line_error(store(db), "is damaged or is not a memrl database")
    one_line_error(cli("stats", "--db", db), "is damaged or is not a memrl database")
    assert sha(db) == before


def test_a_read_only_database(tmp_path: Path):
    with small_filesystem(tmp_path / "disk") as disk:
        db = disk / "m.db"
        ok(store(db))
        remount_read_only(disk)
        before = sha(db)
        for done in (
            store(db, "another task", "another way"),
            cli("recall", "release", "--db", db, "--namespace", "ns"),
            cli("forget", "1", "--db", db, "--namespace", "ns"),
        ):
            one_line_error(done, "is read-only", "make it writable")
        assert sha(db) == before


def test_a_full_disk(tmp_path: Path):
    with small_filesystem(tmp_path / "disk") as disk:
        db = disk / "m.db"
        ok(store(db))
        filler = fill(disk)
        done = store(db, "a much longer task " * 20, "a much longer experience " * 200)
        one_line_error(done, "is full: free some space on it")
        filler.unlink()
        assert ok(store(db, "a task after the disk was freed", "works"))["created"] is True
        check = SqliteStorage(db, 384, "x")
        try:
            assert check._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert check._conn.execute("SELECT count(*) FROM memories").fetchone()[0] == 2
        finally:
            check.close()


# -- output ----------------------------------------------------------------------------------


def test_numbers_are_rounded_and_counts_read_well(tmp_path: Path):
    db = tmp_path / "m.db"
    ok(store(db))
    done = cli("recall", "publish to PyPI", "--db", db, "--namespace", "ns")
    task = ok(done)
    assert task["message"].startswith("1 memory selected from 1 candidate;")
    floats = re.findall(r"-?\d+\.\d+", done.stdout)
    assert floats and all(len(f.split(".")[1]) <= 4 for f in floats), done.stdout
    report = ok(cli("report", task["task_id"], "--reward", "0.7", "--db", db, "--namespace", "ns"))
    assert "1 memory credited" in report["message"]


def test_metadata_from_the_command_line_is_filtered(tmp_path: Path):
    db = tmp_path / "m.db"
    key = "AIza" + "SyB1c2D3e4F5g6H7i8J9k0LmNoPqRsTuVwX"
    metadata = json.dumps({"GOOGLE_API_KEY": key, "url": f"https://maps.example/?key={key}"})
    done = cli("store", "--db", db, "--namespace", "ns", "--intent", "geocode an address",
               "--experience", "call the maps API", "--metadata", metadata)
    assert ok(done)["redacted"] == 2
    exported = cli("export", "--db", db).stdout
    assert key not in exported and exported.count("[REDACTED]") == 2


def test_rounding_walks_the_output():
    from memrl_server.output import rounded

    noisy = {"q": 0.8319300000000001, "ids": [1, 2], "rows": [{"mean_q": 1 / 3, "n": None}]}
    assert rounded(noisy) == {"q": 0.8319, "ids": [1, 2], "rows": [{"mean_q": 0.3333, "n": None}]}


def test_stats_shows_the_gate_recall_uses(tmp_path: Path):
    db = tmp_path / "m.db"
    ok(store(db))
    ok(cli("store", "--db", db, "--namespace", "other", "--intent", "a", "--experience", "b"))
    [row] = ok(cli("stats", "--db", db, "--namespace", "ns"))
    task = ok(cli("recall", "publish to PyPI", "--db", db, "--namespace", "ns"))
    assert row["delta"] == task["delta"] == 0.35
    assert row["delta_source"] == "default until the namespace has 20 distinct intents"
    assert [r["namespace"] for r in ok(cli("stats", "--db", db, "--all"))] == ["ns", "other"]


def test_a_closed_pipe_is_no_error(tmp_path: Path):
    db = tmp_path / "m.db"
    lines = [
        json.dumps({"namespace": "ns", "intent": f"task {i}", "experience": "x" * 400})
        for i in range(300)
    ]
    ok(cli("import", "-", "--db", db, stdin="\n".join(lines)))
    memrl = f"{sys.executable} -m memrl_server"
    for command in (f"{memrl} export --db {db} | head -1", f"{memrl} stats --db {db} --all | head -3"):
        done = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, env=server_env(), timeout=120
        )
        assert done.stderr == "" and done.stdout.strip(), (command, done.stderr)


def test_commands_that_embed_nothing_never_load_the_model(tmp_path: Path):
    """With a model directory whose model.onnx is garbage, only commands that embed fail."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.onnx").write_bytes(b"not an onnx model")
    (model / "tokenizer.json").write_text("{}")
    env = {"MEMRL_MODEL_DIR": str(model)}
    db = tmp_path / "m.db"
    # a database bound to that model id, written without embedding: an import of no line
    ok(cli("import", "-", "--db", db, "--namespace", "ns", env=env, stdin=""))
    ok(cli("stats", "--db", db, "--all", env=env))
    ok(cli("export", "--db", db, env=env))
    assert ok(cli("forget", "7", "--db", db, "--namespace", "ns", env=env))["deleted"] == 0
    one_line_error(
        cli("recall", "a task", "--db", db, "--namespace", "ns", env=env),
        "cannot load the embedding model",
    )


# -- the demo --------------------------------------------------------------------------------


def test_the_demo_never_touches_files_it_did_not_create(tmp_path: Path):
    mine, demo = tmp_path / "memrl.db", tmp_path / "demo.db"
    ok(store(mine))
    demo.write_bytes(b"a file the user named demo.db")
    before = {p: sha(p) for p in (mine, demo)}
    done = cli("demo", env={"MEMRL_DB": str(mine)})
    assert done.returncode == 0, done.stderr
    assert "temporary: removed after the run" in done.stdout and "Success:" in done.stdout
    temporary = Path(re.search(r"\((\S+demo\.db), temporary", done.stdout).group(1))
    assert not temporary.exists() and not temporary.parent.exists()
    assert {p: sha(p) for p in (mine, demo)} == before
    one_line_error(cli("demo", "--db", demo), "already exists", "pass a path that does not exist")
    assert sha(demo) == before[demo]


def test_the_demo_keeps_a_database_it_was_asked_to_create(tmp_path: Path):
    kept = tmp_path / "new" / "demo.db"
    done = cli("demo", "--db", kept)
    assert done.returncode == 0, done.stderr and f"({kept}, kept)" in done.stdout
    assert kept.exists() and ok(cli("stats", "--db", kept, "--namespace", "demo"))[0]["tasks"] > 0


def test_no_environment_variable_is_read_by_the_core():
    """Configuration is read once, by the CLI (server/settings.py); memrl/ reads none."""
    core = Path(__file__).resolve().parents[1] / "memrl"
    for source in core.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
                pytest.fail(f"{source.name}:{node.lineno} reads the environment")


def test_the_model_loads_on_the_first_embedding_only(tmp_path: Path):
    from memrl_server.commands import open_cli_memory
    from memrl_server.settings import ServerSettings

    settings = ServerSettings(db_path=tmp_path / "m.db", namespace="ns")
    memory = open_cli_memory(settings, create=True)
    try:
        embedder = memory.embedder
        memory.stats()
        memory.forget([1], "ns")
        list(memory.iter_memories())
        assert embedder.loaded is False  # type: ignore[attr-defined]
        memory.recall("a task", "ns")
        assert embedder.loaded is True  # type: ignore[attr-defined]
    finally:
        memory.close()
