"""The hooks' pure parts: verifier recognition and verdicts, the compact formatter and its
budget, payload reading, locations, and the session state file."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from memrl_server.compact import MIN_BUDGET, approx_tokens, compact_recall
from memrl_server.hooks.locations import Locations, database_path, hook_home
from memrl_server.hooks.payload import HookEvent, PayloadError, read_payload
from memrl_server.hooks.state import SessionState
from memrl_server.hooks.verifiers import (
    FAIL,
    PASS,
    STRONG,
    WEAK,
    Verifiers,
    judge,
    normalise,
    output_text,
    parse_exit_code,
    split_command,
    summary_outcome,
)

from memrl.memory import Recalled

V = Verifiers()


@pytest.mark.parametrize(
    ("command", "strength"),
    [
        ("pytest -q", STRONG),
        (".venv/bin/python -m pytest tests/test_x.py", STRONG),
        ("python3.11 -m unittest discover", STRONG),
        ("uv run pytest", STRONG),
        ("FOO=1 timeout 120 pytest -x", STRONG),
        ("npm test", STRONG),
        ("npm run test:unit", STRONG),
        ("pnpm test", STRONG),
        ("yarn test --watch=false", STRONG),
        ("cargo test --all", STRONG),
        ("go test ./...", STRONG),
        ("make test", STRONG),
        ("make -j4 check", STRONG),
        ("tox -e py311", STRONG),
        ("nox -s tests", STRONG),
        ("mvn -q test", STRONG),
        ("./gradlew test", STRONG),
        ("npx jest", STRONG),
        ("ruff check .", WEAK),
        ("mypy memrl", WEAK),
        ("npx tsc --noEmit", WEAK),
        ("npx eslint src", WEAK),
        ("cargo clippy", WEAK),
        ("ls -la", None),
        ("git commit -m 'run pytest later'", None),
        ("cat pytest.ini", None),
        ("pip install pytest", None),
        ("echo make test", None),
    ],
)
def test_verifier_recognition(command, strength):
    assert V.strength(command) == strength


def test_normalise_strips_wrappers_and_directories():
    assert normalise("FOO=1 BAR=2 timeout -k 5 60 .venv/bin/python -m pytest -q") == (
        "python -m pytest -q"
    )
    assert normalise("poetry run   pytest") == "pytest"


def test_split_command_keeps_operators_and_quoted_text():
    segments, ops = split_command("cd app && pytest -q 'a && b' | tail -5; echo done")
    assert segments == ["cd app", "pytest -q a && b", "tail -5", "echo done"]
    assert ops == ["&&", "|", ";"]


def test_custom_patterns_add_to_or_replace_the_defaults():
    custom = Verifiers(strong=[r"^check-all\b"], weak=[r"^shellcheck\b"])
    assert custom.strength("bin/check-all --fast") == STRONG
    assert custom.strength("shellcheck x.sh") == WEAK
    assert custom.strength("pytest") == STRONG
    only = Verifiers(strong=[r"^check-all\b"], defaults=False)
    assert only.strength("pytest") is None
    with pytest.raises(ValueError, match="not a valid regex"):
        Verifiers(strong=["(unclosed"])


PYTEST_FAIL = "FAILED tests/test_a.py::test_x\n===== 1 failed, 3 passed in 0.12s ====="
PYTEST_PASS = "....\n4 passed in 0.10s"


@pytest.mark.parametrize(
    ("command", "exit_code", "output", "expected"),
    [
        ("pytest -q", 0, PYTEST_PASS, (PASS, STRONG)),
        ("pytest -q", 1, PYTEST_FAIL, (FAIL, STRONG)),
        ("pytest -q", 2, "ERROR: usage", (FAIL, STRONG)),
        ("cd app && pytest", 0, "", (PASS, STRONG)),
        ("pytest && ruff check .", 0, "", (PASS, STRONG)),
        ("pytest && ruff check .", 1, PYTEST_PASS + "\nFound 2 errors.", (FAIL, WEAK)),
        ("ruff check .", 1, "Found 2 errors.", (FAIL, WEAK)),
        # the exit status is tail's: the summary decides, or nothing does
        ("pytest -q 2>&1 | tail -5", 0, PYTEST_FAIL, (FAIL, STRONG)),
        ("pytest -q | tail -5", 0, PYTEST_PASS, (PASS, STRONG)),
        ("pytest -q | tail -5", 0, "no summary here", None),
        ("pytest || true", 0, PYTEST_FAIL, (FAIL, STRONG)),
        ("pytest; echo done", 0, "done", None),
        # Codex sends no exit status
        ("pytest", None, PYTEST_FAIL, (FAIL, STRONG)),
        ("pytest", None, "", None),
        ("cargo test", 101, "test result: FAILED. 1 passed; 1 failed", (FAIL, STRONG)),
        ("go test ./...", None, "ok  \texample.com/x\t0.01s", (PASS, STRONG)),
        ("npm test", None, "Tests:       1 failed, 9 passed, 10 total", (FAIL, STRONG)),
        ("pytest -q", 5, "no tests ran in 0.01s", None),
        ("ls", 0, PYTEST_PASS, None),
    ],
)
def test_judge(command, exit_code, output, expected):
    verdict = judge(V, command, exit_code, output)
    got = None if verdict is None else (verdict.outcome, verdict.strength)
    assert got == expected


def test_a_verdict_names_its_verifiers_without_secrets():
    verdict = judge(V, "cd app && API_KEY=s3cret uv run pytest -q && ruff check .", 0, "")
    assert verdict.command == "pytest -q && ruff check ."


def test_an_interrupted_command_has_no_verdict():
    assert judge(V, "pytest", 1, PYTEST_FAIL, interrupted=True) is None


def test_summaries_of_other_runners():
    assert summary_outcome("Ran 3 tests in 0.001s\n\nFAILED (failures=1)") == FAIL
    assert summary_outcome("Ran 3 tests in 0.001s\n\nOK") == PASS
    assert summary_outcome("  3 passing (12ms)\n  1 failing") == FAIL
    assert summary_outcome(" Test Files  1 failed | 2 passed (3)") == FAIL


def test_exit_code_and_output_of_real_payload_shapes():
    assert parse_exit_code("Exit code 1\nnode:internal/modules/cjs/loader:1424\r\n") == 1
    assert parse_exit_code("Command timed out after 2m") is None
    bash = {"stdout": "4 passed", "stderr": "warn", "interrupted": False, "isImage": False}
    assert output_text(bash) == "4 passed\nwarn"
    assert output_text("codex output") == "codex output"
    assert output_text(None, "Exit code 1\nboom").endswith("boom")


# -- the compact formatter ----------------------------------------------------------------


def memory(i: int, experience: str, intent: str = "", kind: str = "success") -> Recalled:
    return Recalled(i, kind, intent or f"intent {i}", experience, 0.1 * i, 0.5, 0.0, True)


def test_compact_recall_names_the_task_and_every_id_in_rank_order():
    out = compact_recall("t-0123456789abcdef", [memory(7, "a"), memory(3, "b")], 600)
    assert "task_id t-0123456789abcdef" in out.text
    assert out.shown == [7, 3]
    assert out.text.index("#7 success (q +0.70)") < out.text.index("#3 success (q +0.30)")
    assert out.tokens == approx_tokens(out.text)


@pytest.mark.parametrize("seed", range(25))
def test_compact_recall_never_exceeds_its_budget(seed):
    rng = random.Random(seed)
    words = ["alpha", "pytest", "naïve", "데이터", "fix", "import", "\n", "—"]
    memories = [
        memory(i, " ".join(rng.choice(words) for _ in range(rng.randint(1, 3000))))
        for i in range(rng.randint(1, 6))
    ]
    budget = rng.randint(MIN_BUDGET, 1500)
    out = compact_recall("t-0123456789abcdef", memories, budget)
    assert approx_tokens(out.text) <= budget
    assert out.shown == [m.id for m in memories][: len(out.shown)]


def test_a_long_memory_is_cut_and_short_ones_are_kept_whole():
    long_one, short_one = memory(1, "x " * 5000), memory(2, "keep me whole")
    out = compact_recall("t-0123456789abcdef", [long_one, short_one], 300)
    assert out.shown == [1, 2]
    assert "keep me whole" in out.text
    assert "…" in out.text.split("#2")[0]


def test_a_tiny_budget_drops_the_lowest_ranked():
    memories = [memory(i, "word " * 200) for i in range(1, 6)]
    out = compact_recall("t-0123456789abcdef", memories, 120)
    assert 1 <= len(out.shown) < 5
    assert out.shown == [1, 2, 3, 4, 5][: len(out.shown)]


def test_nothing_recalled_gives_no_text():
    assert compact_recall("t-0123456789abcdef", [], 600).text == ""
    with pytest.raises(ValueError, match="at least"):
        compact_recall("t-0123456789abcdef", [memory(1, "a")], MIN_BUDGET - 1)


def test_approx_tokens():
    assert approx_tokens("") == 0
    assert approx_tokens("abcd") == 1
    assert approx_tokens("abcde") == 2
    assert approx_tokens("데이터") == 3


# -- payloads -----------------------------------------------------------------------------


def test_a_payload_is_read_without_waiting_for_end_of_file():
    """A host that keeps stdin open after writing must not make the hook wait."""
    read, write = os.pipe()
    os.write(write, json.dumps({"hook_event_name": "SessionEnd", "session_id": "s"}).encode())
    started = time.monotonic()
    with os.fdopen(read, "rb") as stream:
        data = read_payload(stream, timeout=5)
    os.close(write)
    assert data["hook_event_name"] == "SessionEnd"
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty payload"),
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON list"),
        (b'{"session_id": "s"}', "hook_event_name"),
        (b'{"hook_event_name": "Stop"}', "session_id"),
        (b'{"hook_event_name": "Stop", "session_id": "s", "prompt": 3}', "prompt"),
    ],
)
def test_bad_payloads_are_refused_with_a_reason(raw, message):
    read, write = os.pipe()
    os.write(write, raw)
    os.close(write)
    with os.fdopen(read, "rb") as stream, pytest.raises(PayloadError, match=message):
        HookEvent(read_payload(stream, timeout=2))


def test_bash_failure_payload_fields():
    event = HookEvent(
        {
            "session_id": "abc",
            "transcript_path": "/x.jsonl",
            "cwd": "/repo",
            "permission_mode": "default",
            "hook_event_name": "PostToolUseFailure",
            "tool_name": "Bash",
            "tool_input": {"command": "npm test", "description": "Run test suite"},
            "tool_use_id": "toolu_01",
            "error": "Exit code 1\n1 failing",
            "is_interrupt": False,
        }
    )
    assert (event.command, event.error, event.interrupted) == (
        "npm test",
        "Exit code 1\n1 failing",
        False,
    )


# -- locations ----------------------------------------------------------------------------


def test_the_database_is_the_flag_or_memrl_db_or_the_default(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MEMRL_DB", raising=False)
    assert database_path(None) is None  # the daemon resolves it with memrl.default_db_path
    assert database_path(str(tmp_path / "x.db")) == (tmp_path / "x.db").resolve()
    monkeypatch.setenv("MEMRL_DB", "~/elsewhere/mem.db")
    assert database_path(None) == (tmp_path / "elsewhere" / "mem.db").resolve()
    assert Locations(None, tmp_path).key != Locations(tmp_path / "x.db", tmp_path).key


def test_the_hook_dir_follows_xdg_state_home(monkeypatch, tmp_path):
    monkeypatch.delenv("MEMRL_HOOK_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    expected = "state" if sys.platform != "darwin" else "Library"
    assert expected in hook_home().parts and hook_home().parts[-2:] == ("memrl", "hooks")
    monkeypatch.setenv("MEMRL_HOOK_DIR", "~/h")
    assert hook_home() == tmp_path / "h"


def test_a_socket_path_too_long_moves_to_a_private_temp_dir(tmp_path):
    deep = tmp_path / ("d" * 120)
    loc = Locations(tmp_path / "m.db", deep)
    assert len(str(loc.socket)) <= 100
    assert loc.socket.parent.name == f"memrl-{os.getuid()}"
    assert Locations(tmp_path / "m.db", tmp_path).socket.parent == tmp_path


def test_the_hooks_import_nothing_heavy():
    """The hook process (`memrl hook`, answered by entry.py without the rest of the command
    line) must not import the core, numpy or the MCP SDK (~150 ms)."""
    code = (
        "import sys, memrl_server.entry, memrl_server.hooks.client, memrl_server.hooks.events;"
        "print(sorted(m for m in ('memrl', 'numpy', 'mcp', 'pydantic', 'sqlite_vec') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# -- session state ------------------------------------------------------------------------


def test_state_tracks_one_task_per_prompt(tmp_path):
    state = SessionState(tmp_path / "s.db")
    state.open_task("t-1", "s", "ns", "fix it", [3, 4])
    time.sleep(0.01)
    state.open_task("t-2", "s", "ns", "then this", [5])
    assert state.current("s").task_id == "t-2"
    state.record_verdict("t-2", FAIL, STRONG, "pytest")
    state.record_verdict("t-2", PASS, WEAK, "ruff check")
    state.add_model_tasks("t-2", ["t-9", "t-2", "t-9"])
    task = state.get("t-2")
    assert (task.strong, task.weak, task.model_tasks, task.shown) == (FAIL, PASS, ["t-9"], [5])
    assert state.mark_reminded("t-2") is True
    assert state.mark_reminded("t-2") is False
    state.set_status("t-2", "reported")
    assert state.current("s").task_id == "t-1"
    assert [t.task_id for t in state.open_tasks("s")] == ["t-1"]
    assert state.latest("s").task_id == "t-2"
    state.close()


def test_parallel_hooks_of_one_session_lose_no_update(tmp_path):
    path = tmp_path / "s.db"
    setup = SessionState(path)
    setup.open_task("t-1", "s", "ns", "q", [])
    setup.close()

    def note(i: int) -> None:
        state = SessionState(path)
        state.add_model_tasks("t-1", [f"t-{100 + i}"])
        state.close()

    threads = [threading.Thread(target=note, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state = SessionState(path)
    assert sorted(state.get("t-1").model_tasks) == sorted(f"t-{100 + i}" for i in range(8))
    state.close()


STATE_OPENERS, STATE_ROUNDS = 4, 400


def open_new_state_files(paths: list[str], barrier, results, worker: int) -> None:
    """Open each new state file at the same moment as the other workers, and write to it."""
    errors = []
    for round_no, path in enumerate(paths):
        barrier.wait()
        try:
            state = SessionState(Path(path))
            try:
                state.open_task(f"t-{worker}", f"s-{worker}", "ns", "a prompt", [worker])
            finally:
                state.close()
        except Exception as e:  # noqa: BLE001 - reported to the parent
            errors.append(f"round {round_no}: {type(e).__name__}: {e}")
    results.put(errors)


def test_hooks_opening_a_new_state_file_at_once_all_succeed(tmp_path):
    """Parallel first prompts of several sessions create one state file at the same moment
    (a hook's first SQLite statements, the switch to WAL included): none is refused with
    "database is locked", and every write is there."""
    paths = [str(tmp_path / f"new-{n}.state.db") for n in range(STATE_ROUNDS)]
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(STATE_OPENERS), ctx.Queue()
    procs = [
        ctx.Process(target=open_new_state_files, args=(paths, barrier, results, w))
        for w in range(STATE_OPENERS)
    ]
    for p in procs:
        p.start()
    errors = [e for _ in procs for e in results.get(timeout=120)]
    for p in procs:
        p.join(timeout=30)
    assert errors == []
    for path in paths:
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
            tasks = conn.execute("SELECT task_id FROM tasks ORDER BY task_id").fetchall()
            assert tasks == [(f"t-{w}",) for w in range(STATE_OPENERS)]
        finally:
            conn.close()


def test_state_files_live_in_a_private_directory(tmp_path):
    loc = Locations(tmp_path / "m.db", tmp_path / "home")
    loc.ensure_home()
    assert (loc.home.stat().st_mode & 0o777) == 0o700
    (tmp_path / "open").mkdir(mode=0o777)
    os.chmod(tmp_path / "open", 0o777)
    with pytest.raises(PermissionError, match="not a private directory"):
        Locations(tmp_path / "m.db", tmp_path / "open").ensure_home()
