"""Bad input gets a specific error whose message says what to fix, and changes nothing."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from memrl import (
    Experience,
    InvalidInputError,
    Memory,
    MemoryConfig,
    MemrlError,
    UnknownTaskError,
)
from memrl.storage import NewTask


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"x": value}
    return value


LIMITS = MemoryConfig(max_intent_chars=50, max_experience_chars=80, max_metadata_chars=40, delta=-1.0)


@pytest.fixture
def seeded(open_memory, real_model) -> tuple[Memory, str]:
    """A memory (real model) with two stored experiences and one open (unreported) task."""
    memory = open_memory(real_model, LIMITS)
    memory.store_experience("fix the build", "pin the compiler version")
    memory.store_experience("fix the tests", "clear the cache first", namespace="other")
    task = memory.recall("fix the build again")
    return memory, task.task_id


Call = Callable[[Memory, str], Any]

BAD_REPORTS: list[tuple[str, Call, type[MemrlError], str]] = [
    ("unknown task", lambda m, t: m.report("t-0000000000000000", success=True),
     UnknownTaskError, r"unknown task id 't-0000000000000000': pass the task_id that recall"),
    ("malformed task id", lambda m, t: m.report("no spaces allowed", success=True),
     InvalidInputError, r"task id 'no spaces allowed' is invalid"),
    ("task id not a string", lambda m, t: m.report(42, success=True),
     InvalidInputError, r"task id 42 is invalid"),
    ("task id with a trailing newline", lambda m, t: m.report(t + "\n", success=True),
     InvalidInputError, r"task id 't-[0-9a-f]+\\n' is invalid"),
    ("a 1 MB task id is not echoed whole", lambda m, t: m.report("x" * 2**20, success=True),
     InvalidInputError, r"^task id 'x{50,60}… \(1048576 characters\) is invalid: pass the task_id"),
    ("reward above 1", lambda m, t: m.report(t, reward=1.5),
     InvalidInputError, r"reward must be a number in \[-1, 1\], got 1\.5"),
    ("reward below -1", lambda m, t: m.report(t, reward=-1.0001),
     InvalidInputError, r"reward must be a number in \[-1, 1\], got -1\.0001"),
    ("reward NaN", lambda m, t: m.report(t, reward=math.nan),
     InvalidInputError, r"reward must be a number in \[-1, 1\], got nan"),
    ("reward infinite", lambda m, t: m.report(t, reward=math.inf),
     InvalidInputError, r"reward must be a number in \[-1, 1\], got inf"),
    ("reward bool", lambda m, t: m.report(t, reward=True),
     InvalidInputError, r"reward must be a number in \[-1, 1\], got True"),
    ("reward string", lambda m, t: m.report(t, reward="1"),
     InvalidInputError, r"reward must be a number in \[-1, 1\], got '1'"),
    ("success not bool", lambda m, t: m.report(t, success=1),
     InvalidInputError, r"success must be true or false, got 1"),
    ("no outcome", lambda m, t: m.report(t),
     InvalidInputError, r"give success \(true/false\) or a reward in \[-1, 1\]"),
    ("both outcomes", lambda m, t: m.report(t, success=True, reward=1.0),
     InvalidInputError, r"give either success or reward, not both"),
    ("used_ids not ints", lambda m, t: m.report(t, success=True, used_ids=["1"]),
     InvalidInputError, r"used_ids must be a list of integer memory ids"),
    ("used_ids bools", lambda m, t: m.report(t, success=True, used_ids=[True]),
     InvalidInputError, r"used_ids must be a list of integer memory ids"),
    ("used_ids not a list", lambda m, t: m.report(t, success=True, used_ids=3),
     InvalidInputError, r"used_ids must be a list of integer memory ids"),
    ("used_ids not injected", lambda m, t: m.report(t, success=True, used_ids=[2]),
     InvalidInputError, r"used_ids \[2\] were not injected for task t-"),
    ("empty reflection", lambda m, t: m.report(t, success=False, reflection="  \n "),
     InvalidInputError, r"reflection is empty: give a non-empty text"),
    ("oversized reflection", lambda m, t: m.report(t, success=False, reflection="x" * 81),
     InvalidInputError, r"reflection has 81 characters, more than the limit of 80"),
]

BAD_STORES: list[tuple[str, Call, type[MemrlError], str]] = [
    ("empty intent", lambda m, t: m.store_experience("   ", "e"),
     InvalidInputError, r"intent is empty: give a non-empty text"),
    ("empty experience", lambda m, t: m.store_experience("i", ""),
     InvalidInputError, r"experience is empty: give a non-empty text"),
    ("oversized intent", lambda m, t: m.store_experience("i" * 51, "e"),
     InvalidInputError, r"intent has 51 characters, more than the limit of 50: shorten it"),
    ("oversized experience", lambda m, t: m.store_experience("i", "e" * 81),
     InvalidInputError, r"experience has 81 characters, more than the limit of 80"),
    ("intent not a string", lambda m, t: m.store_experience(b"bytes", "e"),
     InvalidInputError, r"intent must be a string, got bytes"),
    ("NUL in text", lambda m, t: m.store_experience("i\x00j", "e"),
     InvalidInputError, r"intent contains a NUL character: remove it"),
    ("lone surrogate in text", lambda m, t: m.store_experience("i", "a\ud800b"),
     InvalidInputError, r"experience contains an invalid character \(a lone UTF-16 surrogate\)"),
    ("metadata nested too deep", lambda m, t: m.store_experience("i", "e", metadata=_deep(5000)),
     InvalidInputError, r"metadata is nested too deeply: flatten it"),
    ("bad kind", lambda m, t: m.store_experience("i", "e", kind="lesson"),
     InvalidInputError, r"kind 'lesson' is invalid: use one of success, failure, note"),
    ("metadata not a dict", lambda m, t: m.store_experience("i", "e", metadata=["a"]),
     InvalidInputError, r"metadata must be a JSON object \(a dict\)"),
    ("metadata NaN", lambda m, t: m.store_experience("i", "e", metadata={"x": math.nan}),
     InvalidInputError, r"metadata is not JSON-serialisable"),
    ("metadata object", lambda m, t: m.store_experience("i", "e", metadata={"x": object()}),
     InvalidInputError, r"metadata is not JSON-serialisable"),
    ("metadata oversized", lambda m, t: m.store_experience("i", "e", metadata={"x": "y" * 40}),
     InvalidInputError, r"metadata is 49 characters of JSON, more than the limit of 40"),
    ("unknown linked task", lambda m, t: m.store_experience("i", "e", task_id="t-nope"),
     InvalidInputError, r"task id 't-nope' is unknown: link a memory only to a task id"),
    ("one bad item spoils the batch",
     lambda m, t: m.store_many([Experience("good", "fine"), Experience("bad", "x", kind="?")]),
     InvalidInputError, r"kind '\?' is invalid"),
]

BAD_NAMESPACES = ["", " lead", "has space", "-dash-first", "x" * 201, "tab\t", None, 7, "ünï"]

BAD_RECALLS: list[tuple[str, Call, type[MemrlError], str]] = [
    ("empty task", lambda m, t: m.recall(" "),
     InvalidInputError, r"task is empty: give a non-empty text"),
    ("oversized task", lambda m, t: m.recall("q" * 51),
     InvalidInputError, r"task has 51 characters, more than the limit of 50"),
    ("reused task id", lambda m, t: m.recall("fix it", task_id=t),
     InvalidInputError, r"task id 't-[0-9a-f]+' is already used: pick a new one"),
    ("malformed task id", lambda m, t: m.recall("fix it", task_id="bad id"),
     InvalidInputError, r"task id 'bad id' is invalid"),
    ("k2 above k1", lambda m, t: m.recall("fix it", k1=2, k2=3),
     InvalidInputError, r"k2 must be in 1\.\.k1 \(2\), got 3"),
    ("k1 not an integer", lambda m, t: m.recall("fix it", k1=2.5),
     InvalidInputError, r"k1 must be an integer, got 2\.5"),
    ("k2 a bool", lambda m, t: m.recall("fix it", k2=True),
     InvalidInputError, r"k2 must be an integer, got True"),
    ("lambda a string", lambda m, t: m.recall("fix it", lam="0.5"),
     InvalidInputError, r"lam must be a number, got '0\.5'"),
    ("k1 zero", lambda m, t: m.recall("fix it", k1=0),
     InvalidInputError, r"k1 must be in 1\.\.1000, got 0"),
    ("lambda out of range", lambda m, t: m.recall("fix it", lam=1.5),
     InvalidInputError, r"lam must be in \[0, 1\], got 1\.5"),
    ("delta NaN", lambda m, t: m.recall("fix it", delta=math.nan),
     InvalidInputError, r"delta must be a finite number, got nan"),
    ("epsilon out of range", lambda m, t: m.recall("fix it", epsilon=-0.1),
     InvalidInputError, r"epsilon must be in \[0, 1\], got -0\.1"),
]

ALL = (
    BAD_REPORTS
    + BAD_STORES
    + BAD_RECALLS
    + [(f"store namespace {ns!r:.20}", lambda m, t, ns=ns: m.store_experience("i", "e", namespace=ns),
        InvalidInputError, r"namespace .* is invalid: use 1-200 characters") for ns in BAD_NAMESPACES]
    + [(f"recall namespace {ns!r:.20}", lambda m, t, ns=ns: m.recall("fix it", ns),
        InvalidInputError, r"namespace .* is invalid: use 1-200 characters") for ns in BAD_NAMESPACES]
)


@pytest.mark.parametrize(("call", "error", "message"), [c[1:] for c in ALL], ids=[c[0] for c in ALL])
def test_bad_input_is_refused_and_changes_nothing(
    seeded, snapshot, call: Call, error: type[MemrlError], message: str
) -> None:
    memory, task_id = seeded
    before = snapshot(memory.storage)
    with pytest.raises(error, match=message):
        call(memory, task_id)
    assert snapshot(memory.storage) == before


def test_the_open_task_still_works_after_refusals(seeded, sql) -> None:
    memory, task_id = seeded
    for _, call, error, _ in BAD_REPORTS:
        with pytest.raises(error):
            call(memory, task_id)
    assert memory.report(task_id, reward=0.5).applied is True
    assert sql(memory.storage, "SELECT reward FROM tasks WHERE task_id = ?", task_id) == [(0.5,)]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("alpha", 0.0, r"alpha must be in \(0, 1\], got 0\.0"),
        ("alpha", math.inf, r"alpha must be a finite number, got inf"),
        ("q_init", 2.0, r"q_init must be in \[-1, 1\], got 2\.0"),
        ("k2", 0, r"k2 must be in 1\.\.k1 \(5\), got 0"),
        ("success_reward", 1.5, r"success_reward must be in \[-1, 1\], got 1\.5"),
    ],
)
def test_bad_config_is_refused(field: str, value: float, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        MemoryConfig(**{field: value})


def test_errors_are_value_and_lookup_errors() -> None:
    assert issubclass(InvalidInputError, ValueError)
    assert issubclass(UnknownTaskError, LookupError)


def test_a_task_id_taken_meanwhile_is_refused_by_the_store(seeded, snapshot) -> None:
    """The store checks the id inside its transaction, so two processes choosing the same id
    cannot both record it (nor get a raw driver error)."""
    memory, task_id = seeded
    before = snapshot(memory.storage)
    task = NewTask(task_id, "default", "another query", 5, 3, 0.5, 0.1, 0.0, False, 1.0)
    with pytest.raises(InvalidInputError, match=rf"task id '{task_id}' is already used"):
        with memory.storage.write() as tx:
            tx.record_task(task)
    with pytest.raises(InvalidInputError, match=rf"task id '{task_id}' is already used"):
        memory.recall("another query", task_id=task_id)
    assert snapshot(memory.storage) == before
