"""detect-secrets' patterns kept as plain data in the user cache (memrl/secret_detectors.py):
a process that finds the file redacts exactly as one that imports the library, without
importing it (its import costs ~0.14 s of a server's first recall); a file of another
library version, or a damaged one, is rebuilt from the library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from memrl import redaction, secret_detectors
from tests.secret_corpus import CAUGHT, JWT, KEPT

TEXTS = [text for text, _ in CAUGHT] + list(KEPT) + [
    "a token that only looks like a JWT: eyJhbGciOiJub25lIn0.not-base64!.x",
]


def clear_caches() -> None:
    secret_detectors._patterns.cache_clear()
    secret_detectors._regexes.cache_clear()
    secret_detectors._keyword_regexes.cache_clear()


@pytest.fixture
def patterns_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "cache" / "secret-patterns.json"
    monkeypatch.setattr(secret_detectors, "patterns_file", lambda: path)
    clear_caches()
    yield path
    clear_caches()


def redactions() -> list[tuple[str, int]]:
    clear_caches()
    return [redaction.redact(text) for text in TEXTS]


def test_the_file_gives_the_librarys_patterns_and_redactions(patterns_file: Path) -> None:
    from_library = redactions()  # no file yet: read from detect-secrets, then written
    assert patterns_file.is_file()
    kept = json.loads(patterns_file.read_text())
    assert kept["patterns"] == secret_detectors._patterns_from_the_library()
    assert kept["key"]["detect_secrets"] and kept["key"]["files"]
    assert redactions() == from_library  # now from the file
    assert sum(count for _, count in from_library) >= len(CAUGHT)


@pytest.mark.parametrize("damage", [
    lambda kept: "{cut",
    lambda kept: json.dumps({**kept, "key": {**kept["key"], "detect_secrets": "0.0.1"}}),
    lambda kept: json.dumps({**kept, "key": {**kept["key"], "files": {}}}),
    lambda kept: json.dumps({"key": kept["key"]}),
    lambda kept: json.dumps([]),
])
def test_a_file_of_another_version_or_damaged_is_rebuilt(patterns_file: Path, damage: object) -> None:
    from_library = redactions()
    pristine = json.loads(patterns_file.read_text())
    patterns_file.write_text(damage(pristine))  # type: ignore[operator]
    assert redactions() == from_library
    assert json.loads(patterns_file.read_text()) == pristine


def test_an_unwritable_cache_still_redacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setattr(secret_detectors, "patterns_file", lambda: blocked / "secret-patterns.json")
    try:
        assert redaction.redact(f"token {JWT} here")[1] == 1
        assert redactions()[: len(CAUGHT)] == [redaction.redact(t) for t, _ in CAUGHT]
    finally:
        clear_caches()


FROM_THE_FILE = """
import json, sys
from memrl import redaction
from tests.test_core_secret_patterns import TEXTS
texts = TEXTS[:-1] if sys.argv[1] == "no-jwt" else TEXTS
out = [redaction.redact(t) for t in texts if "eyJ" not in t or sys.argv[1] != "no-jwt"]
print(json.dumps({"out": out, "imported": sorted(m for m in ("detect_secrets", "requests") if m in sys.modules)}))
"""


def run_with_cache(cache_home: Path, mode: str) -> dict[str, object]:
    env = dict(os.environ, XDG_CACHE_HOME=str(cache_home))
    done = subprocess.run(
        [sys.executable, "-c", FROM_THE_FILE, mode], env=env, capture_output=True, text=True,
        check=True, timeout=120, cwd=Path(__file__).parent.parent,
    )
    return json.loads(done.stdout)


def test_a_process_with_the_file_does_not_import_detect_secrets(tmp_path: Path) -> None:
    """Until a text holds a JWT candidate: only its detector validates a match."""
    first = run_with_cache(tmp_path, "all")
    assert first["imported"] == ["detect_secrets", "requests"]
    without_jwt = run_with_cache(tmp_path, "no-jwt")
    assert without_jwt["imported"] == []
    with_jwt = run_with_cache(tmp_path, "all")
    assert with_jwt["out"] == first["out"] and "detect_secrets" in with_jwt["imported"]
    expected = [o for t, o in zip(TEXTS, first["out"]) if "eyJ" not in t]  # type: ignore[arg-type]
    assert without_jwt["out"] == expected
