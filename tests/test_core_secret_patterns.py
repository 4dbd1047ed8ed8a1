"""detect-secrets' patterns shipped as plain data (memrl/secret_patterns.json, read by
memrl/secret_detectors.py): they are the installed (pinned) library's own, a process
redacts with them exactly as with the library and without importing it (its import costs
~0.14 s of a server's first recall), and anything else installed, or a damaged file,
falls back to the library."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from memrl import redaction, secret_detectors
from tests.secret_corpus import CAUGHT, KEPT

TEXTS = [text for text, _ in CAUGHT] + list(KEPT) + [
    "a token that only looks like a JWT: eyJhbGciOiJub25lIn0.not-base64!.x",
]
REFRESH = "python -m memrl.secret_detectors > memrl/secret_patterns.json"


def clear_caches() -> None:
    secret_detectors._compiled.cache_clear()


@pytest.fixture(autouse=True)
def fresh_patterns() -> Iterator[None]:
    clear_caches()
    yield
    clear_caches()


def redactions() -> list[tuple[str, int]]:
    clear_caches()
    return [redaction.redact(text) for text in TEXTS]


@pytest.fixture
def library_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the patterns were read from the library."""
    reads: list[int] = []
    real = secret_detectors._patterns_from_the_library

    def counted() -> dict[str, Any]:
        reads.append(1)
        return real()

    monkeypatch.setattr(secret_detectors, "_patterns_from_the_library", counted)
    return reads


def test_the_shipped_patterns_are_the_installed_librarys() -> None:
    shipped = secret_detectors.shipped_patterns()
    assert shipped["key"] == secret_detectors.library_key(), f"refresh it: {REFRESH}"
    assert shipped["patterns"] == secret_detectors._patterns_from_the_library(), f"refresh it: {REFRESH}"
    assert len(shipped["patterns"]["regexes"]) >= 30 and len(shipped["patterns"]["keywords"]) >= 5


def test_the_shipped_patterns_redact_as_the_library_does(
    library_reads: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = redactions()
    assert library_reads == []
    monkeypatch.setattr(secret_detectors, "shipped_patterns", lambda: {})
    assert redactions() == shipped and library_reads == [1]
    assert sum(count for _, count in shipped) >= len(CAUGHT)


def another_version(key: dict[str, Any]) -> dict[str, Any]:
    return {**key, "detect_secrets": "1.5.1"}


def edited_sources(key: dict[str, Any]) -> dict[str, Any]:
    return {**key, "sources_sha256": "0" * 64}


@pytest.mark.parametrize("installed", [another_version, edited_sources])
def test_another_detect_secrets_reads_the_library(
    installed: Callable[[dict[str, Any]], dict[str, Any]], library_reads: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = redactions()
    key = secret_detectors.library_key()
    assert key is not None
    monkeypatch.setattr(secret_detectors, "library_key", lambda: installed(key))
    assert redactions() == expected and library_reads == [1]


def not_json() -> dict[str, Any]:
    raise json.JSONDecodeError("cut short", "{", 1)


def missing() -> dict[str, Any]:
    raise FileNotFoundError("secret_patterns.json")


SHIPPED = secret_detectors.shipped_patterns  # the real one (the tests patch it)


def patterns_cut_short() -> dict[str, Any]:
    shipped = SHIPPED()
    return {**shipped, "patterns": {"regexes": shipped["patterns"]["regexes"]}}


def a_pattern_that_does_not_compile() -> dict[str, Any]:
    shipped = SHIPPED()
    regexes = [{**shipped["patterns"]["regexes"][0], "pattern": "(unclosed"}]
    return {**shipped, "patterns": {**shipped["patterns"], "regexes": regexes}}


@pytest.mark.parametrize("damaged", [
    not_json, missing, lambda: {"key": secret_detectors.library_key()}, patterns_cut_short,
    a_pattern_that_does_not_compile,
])
def test_a_damaged_or_missing_file_reads_the_library(
    damaged: Callable[[], dict[str, Any]], library_reads: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = redactions()
    monkeypatch.setattr(secret_detectors, "shipped_patterns", damaged)
    assert redactions() == expected and library_reads == [1]


IMPORTS = """
import json, sys
from memrl import redaction
from tests.test_core_secret_patterns import TEXTS
texts = [t for t in TEXTS if "eyJ" not in t] if sys.argv[1] == "no-jwt" else TEXTS
out = [redaction.redact(t) for t in texts]
print(json.dumps({"out": out, "imported": sorted(m for m in ("detect_secrets", "requests") if m in sys.modules)}))
"""


def run(mode: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", IMPORTS, mode], capture_output=True, text=True, check=True,
        timeout=120, cwd=Path(__file__).parent.parent,
    )
    return dict(json.loads(done.stdout))


def test_a_process_imports_detect_secrets_only_for_a_jwt_candidate() -> None:
    """Only the JWT detector validates a match (`is_formally_valid`), imported on its first
    candidate; every other text is redacted without importing detect-secrets or requests."""
    without_jwt, with_jwt = run("no-jwt"), run("all")
    assert without_jwt["imported"] == []
    assert with_jwt["imported"] == ["detect_secrets", "requests"]
    assert without_jwt["out"] == [o for t, o in zip(TEXTS, with_jwt["out"]) if "eyJ" not in t]
    assert with_jwt["out"] == [list(r) for r in redactions()]
