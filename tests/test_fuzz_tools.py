"""A bounded fuzz of the three tools, through a real in-process client session.

Every call mixes plausible arguments (real task ids and memory ids from earlier answers)
with adversarial ones: wrong types, NaN and infinities, huge and empty texts, NUL, lone
surrogates, trailing newlines, control and right-to-left characters, SQL, JSON, deep
nesting, unknown arguments and planted credentials. Each answer must be a result or a tool
error that says what to fix: no traceback, no internal path, no "internal error", bounded
in size. Afterwards the database must be consistent: SQLite's integrity check, the
ledger's invariants, every Q replayable from the ledger, and no planted secret stored.

The generator is a seeded random.Random over hand-picked adversarial values rather than
hypothesis: one client session must live across all calls (state from earlier answers feeds
later calls), which does not fit hypothesis' one-example-per-test-run model, and the cases
that matter here are known shapes more than random search. A different seed each run can
be had with MEMRL_FUZZ_SEED; a failure prints the seed and the call.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from pathlib import Path
from typing import Any

from mcp import Client
from memrl_server.app import build_server
from memrl_server.settings import ServerSettings
from secret_corpus import CAUGHT

from memrl import MemoryConfig, SqliteStorage

CALLS = 240
SEED = int(os.environ.get("MEMRL_FUZZ_SEED", "20261129"))
NAMESPACES = ["fuzz", "fuzz/other", "github.com/org/repo"]
SECRETS = [secret for _, secret in CAUGHT]
LEAKS = re.compile(r"Traceback|File \"|site-packages|/work/|\.py\b|internal error")


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"d": value}
    return value


ODD_STRINGS = [
    "",
    " ",
    "\n\t ",
    "x",
    "\x00",
    "a\x00b",
    "lone \ud800 surrogate",
    "\udfff",
    "t-0123456789abcdef\n",
    "\u202eevil\u202c",
    "é漢字🙂 emoji",
    "'; DROP TABLE memories; --",
    '{"jsonrpc": "2.0", "id": 1}',
    "../../etc/passwd",
    "%s%n%x",
    "null",
    "true",
    "1e309",
    "\r\n" * 50,
    "z" * 4001,
    "y" * 20_001,
    "w" * 200_000,
]
ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**63,
    10**30,
    1.5,
    -1.0000001,
    float("nan"),
    float("inf"),
    -0.0,
    [],
    [1, 2],
    ["a"],
    [[1]],
    list(range(1500)),
    {},
    {"a": [1, {"b": None}]},
    _deep(60),
    _deep(240),  # the client cannot send deeper (pydantic serialises ~250 levels)
]


class Fuzzer:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.tasks: list[str] = []
        self.injected: dict[str, list[int]] = {}
        self.memories: list[int] = []
        self.oddness = 0.5

    def odd(self) -> Any:
        pool = ODD_STRINGS if self.rng.random() < 0.6 else ODD_VALUES
        return self.rng.choice(pool)

    def text(self) -> str:
        words = ["fix", "the", "flaky", "test", "deploy", "with", "token", "cache", "build"]
        sentence = " ".join(self.rng.choices(words, k=self.rng.randint(1, 12)))
        if self.rng.random() < 0.3:  # a credential in the context that makes it one
            sentence += " " + self.rng.choice(CAUGHT)[0]
        return sentence

    def pick(self, plausible: Any) -> Any:
        return plausible if self.rng.random() > self.oddness else self.odd()

    def recall(self) -> dict[str, Any]:
        return {
            "task": self.pick(self.text()),
            "namespace": self.pick(self.rng.choice(NAMESPACES)),
            "k": self.pick(self.rng.randint(1, 20)),
        }

    def report(self) -> dict[str, Any]:
        task = self.rng.choice(self.tasks) if self.tasks else "t-0000000000000000"
        injected = self.injected.get(task, [])
        args = {"task_id": self.pick(task), **self.outcome()}
        if self.rng.random() < 0.5:
            used = self.rng.sample(injected, self.rng.randint(0, len(injected)))
            args["used_ids"] = self.pick(used)
        if self.rng.random() < 0.3:
            args["reflection"] = self.pick(self.text())
        return args

    def outcome(self) -> dict[str, Any]:
        if self.rng.random() < 0.5:
            return {"success": self.pick(self.rng.random() < 0.5)}
        return {"reward": self.pick(round(self.rng.uniform(-1, 1), 3))}

    def store(self) -> dict[str, Any]:
        return {
            "intent": self.pick(self.text()),
            "experience": self.pick(self.text()),
            "kind": self.pick(self.rng.choice(["success", "failure", "note"])),
            "namespace": self.pick(self.rng.choice(NAMESPACES)),
            "task_id": self.pick(self.rng.choice(self.tasks) if self.tasks else None),
            "metadata": self.pick({"source": self.text(), "token": self.rng.choice(SECRETS)}),
        }

    def call(self) -> tuple[str, dict[str, Any]]:
        # two calls in five are plausible throughout, so the state (tasks, memories,
        # outcomes) keeps growing; the others carry odd values in some arguments
        self.oddness = 0.0 if self.rng.random() < 0.4 else self.rng.choice([0.2, 0.5, 0.9])
        tool = self.rng.choice(["recall_experience", "report_outcome", "store_experience"])
        args = getattr(self, tool.split("_")[0])()
        if self.oddness:
            args = {k: v for k, v in args.items() if self.rng.random() < 0.85}  # some left out
        if self.rng.random() < 0.08:
            args[self.rng.choice(["extra", "__proto__", "task_id\n"])] = self.odd()
        return tool, args

    def learn(self, tool: str, answer: dict[str, Any]) -> None:
        if tool == "recall_experience":
            self.tasks.append(answer["task_id"])
            self.injected[answer["task_id"]] = [m["id"] for m in answer["memories"]]
        elif tool == "store_experience":
            self.memories.append(answer["id"])


def _check_answer(tool: str, args: dict[str, Any], result: Any) -> None:
    where = f"seed {SEED}: {tool}({json.dumps(args, default=repr)[:300]})"
    if result.is_error:
        text = result.content[0].text
        assert not LEAKS.search(text), f"{where} -> {text[:500]}"
        assert len(text) < 1500, f"{where} -> an error of {len(text)} characters"
    else:
        assert result.structured_content is not None, where


def _leaks(secret: str, text: str) -> bool:
    if len(secret) < 12:
        return secret in text
    return any(secret[i : i + 12] in text for i in range(len(secret) - 11))


def _replayed_q(rows: list[tuple[float, float]], config: MemoryConfig) -> float:
    q = config.q_init
    for reward, _ in rows:
        q += config.alpha * (reward - q)
    return q


def check_database(db: Path) -> None:
    """The consistency the fuzz must leave: integrity, the ledger's rules, Q from the ledger."""
    store = SqliteStorage(db, 384, "check")
    try:
        sql = store._conn.execute
        assert sql("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert sql("PRAGMA foreign_key_check").fetchall() == []
        assert sql("SELECT count(*) FROM task_candidates WHERE credited AND NOT injected").fetchone()[0] == 0
        assert sql(
            "SELECT count(*) FROM tasks WHERE reward IS NOT NULL AND (outcome IS NULL "
            "OR reported_at IS NULL OR reward < -1 OR reward > 1)"
        ).fetchone()[0] == 0
        assert sql(
            "SELECT count(*) FROM memories WHERE q < -1 OR q > 1 OR n_updates < 0 "
            "OR namespace NOT IN (SELECT namespace FROM namespaces)"
        ).fetchone()[0] == 0
        config = MemoryConfig()
        for mid, q, n_updates in sql("SELECT id, q, n_updates FROM memories").fetchall():
            history = sql(
                "SELECT t.reward, t.reported_at FROM task_candidates c JOIN tasks t USING (task_id) "
                "WHERE c.memory_id = ? AND c.credited AND t.reward IS NOT NULL "
                "ORDER BY t.reported_at",
                (mid,),
            ).fetchall()
            assert n_updates == len(history), mid
            assert math.isclose(q, _replayed_q(history, config), abs_tol=1e-9), mid
        dump = json.dumps(
            [list(r) for t in ("memories", "tasks") for r in sql(f"SELECT * FROM {t}").fetchall()]
        )
        leaked = [s for s in SECRETS if _leaks(s, dump)]
        assert not leaked, leaked
    finally:
        store.close()


async def test_the_tools_survive_random_and_adversarial_calls(tmp_path: Path, real_model):
    db = tmp_path / "fuzz.db"
    fuzzer = Fuzzer(random.Random(SEED))
    settings = ServerSettings(db_path=db, namespace="fuzz")
    answered = errors = 0
    async with Client(build_server(settings, lambda: real_model)) as client:
        for _ in range(CALLS):
            tool, args = fuzzer.call()
            result = await client.call_tool(tool, args)
            _check_answer(tool, args, result)
            if result.is_error:
                errors += 1
            else:
                answered += 1
                fuzzer.learn(tool, result.structured_content)
    assert answered > CALLS // 10 and errors > CALLS // 4  # both paths were exercised
    assert fuzzer.tasks and fuzzer.memories
    check_database(db)
