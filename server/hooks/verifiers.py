"""Which shell commands are verifiers (tests, builds, checks), and what they said.

A verdict comes from the command's exit status when the host gives one (Claude Code:
PostToolUse fires only for exit 0, PostToolUseFailure carries "Exit code N") and that
status is the verifier's own: in `pytest | tail` or `pytest; echo done` the status is the
last command's, so the verdict comes from the test runner's summary line instead
("3 failed, 10 passed", "test result: FAILED", ...). With neither, there is no verdict.

Strong verifiers run tests (pytest, npm test, cargo test, go test, make test/check, tox,
mvn/gradle test, ...). Linters and type checkers (ruff, mypy, tsc, eslint, ...) are weak:
their verdict counts only when no test ran (see `events.reward_for`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence

PASS, FAIL = "pass", "fail"
STRONG, WEAK = "strong", "weak"

STRONG_PATTERNS = (
    r"^(pytest|py\.test)\b",
    r"^python[\d.]* -m (pytest|unittest)\b",
    r"^(npm|pnpm|yarn|bun) (run )?test(\S*)?\b",
    r"^npm t\b",
    r"^cargo (test|nextest)\b",
    r"^go test\b",
    r"^(make|gmake)( -\S+)* (test|check)\S*",
    r"^(tox|nox)\b",
    r"^(mvn|mvnw) .*\b(test|verify)\b",
    r"^(gradle|gradlew) .*\b(test|check)\b",
    r"^(jest|vitest|mocha|rspec|phpunit|ctest)\b",
    r"^(dotnet|mix|swift) test\b",
)
WEAK_PATTERNS = (
    r"^ruff( check)?\b",
    r"^(mypy|pyright|flake8|pylint|tsc|eslint|golangci-lint)\b",
    r"^cargo (clippy|check)\b",
    r"^go vet\b",
    r"^(npm|pnpm|yarn|bun) (run )?(lint|typecheck|type-check)\b",
)
# Prefixes that run the next words as the command.
_WRAPPERS = re.compile(
    r"^(?:(?:\w+=\S*|env|time|nice|timeout(?: -[ks] \S+| -\S+)* \S+|uv run|poetry run|pipenv run|"
    r"hatch run|pdm run|rye run|npx|bunx|pnpm exec|yarn exec|bundle exec) )+"
)
_OPERATORS = {"&&", "||", "|", ";", "&", ";;", "|&", "(", ")", "\n"}


class Verifiers:
    """Compiled verifier patterns: the defaults, plus any given (regexes over the command
    with wrappers like `uv run` or `timeout 60` and the program's directory removed)."""

    def __init__(
        self,
        strong: Iterable[str] = (),
        weak: Iterable[str] = (),
        defaults: bool = True,
    ) -> None:
        self._sources = (
            [*(STRONG_PATTERNS if defaults else ()), *strong],
            [*(WEAK_PATTERNS if defaults else ()), *weak],
        )
        for pattern in [*strong, *weak]:
            try:
                re.compile(pattern)
            except (re.error, TypeError) as e:
                raise ValueError(f"verifier pattern {pattern!r} is not a valid regex: {e}") from e
        self._compiled: tuple[re.Pattern[str], re.Pattern[str]] | None = None

    def _patterns(self) -> tuple[re.Pattern[str], re.Pattern[str]]:
        """One alternation per strength, compiled on first use (most hook calls never
        look at a command)."""
        if self._compiled is None:
            strong, weak = (
                re.compile("|".join(f"(?:{p})" for p in group) or r"(?!x)x")
                for group in self._sources
            )
            self._compiled = (strong, weak)
        return self._compiled

    def strength(self, segment: str) -> str | None:
        """STRONG, WEAK or None for one simple command."""
        normal = normalise(segment)
        strong, weak = self._patterns()
        if strong.search(normal):
            return STRONG
        if weak.search(normal):
            return WEAK
        return None


class Verdict:
    __slots__ = ("outcome", "strength", "command")

    def __init__(self, outcome: str, strength: str, command: str) -> None:
        self.outcome = outcome  # PASS | FAIL
        self.strength = strength  # STRONG | WEAK
        self.command = command  # the verifiers of the command line, normalised

    def __repr__(self) -> str:
        return f"Verdict({self.outcome}, {self.strength}, {self.command!r})"


def normalise(segment: str) -> str:
    """`FOO=1 timeout 60 .venv/bin/python -m pytest -q` -> `python -m pytest -q`."""
    text = " ".join(segment.split())
    text = _WRAPPERS.sub("", text)
    head, _, rest = text.partition(" ")
    head = head.rsplit("/", 1)[-1]
    return f"{head} {rest}".strip()


def split_command(command: str) -> tuple[list[str], list[str]]:
    """The simple commands of a shell command line and the operators between them."""
    import shlex

    lexer = shlex.shlex(command.replace("\n", " ; "), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    segments: list[str] = []
    operators: list[str] = []
    words: list[str] = []
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: treat the whole line as one command
        return [command], []
    for token in tokens:
        if token in _OPERATORS:
            if words:
                segments.append(" ".join(words))
                operators.append(token)
                words = []
        else:
            words.append(token)
    if words:
        segments.append(" ".join(words))
    return segments, operators[: max(len(segments) - 1, 0)]


def judge(
    verifiers: Verifiers,
    command: str,
    exit_code: int | None,
    output: str,
    interrupted: bool = False,
) -> Verdict | None:
    """The verdict of one finished command, or None when it ran no verifier or its outcome
    cannot be told. `exit_code` None: the host sent none (Codex)."""
    segments, operators = split_command(command)
    found = [(i, s) for i, seg in enumerate(segments) if (s := verifiers.strength(seg))]
    if not found or interrupted:
        return None
    strongest = STRONG if any(s == STRONG for _, s in found) else WEAK
    summary = summary_outcome(output)
    if summary is None and _nothing_ran(output):
        return None
    last = found[-1][0]
    # what logs and the reminder show: the verifiers without env assignments or wrappers
    # (`API_KEY=... pytest` must not land in a log)
    shown = " && ".join(normalise(segments[i]) for i, _ in found)[:200]
    status_is_verifiers = all(op == "&&" for op in operators[last:])
    if exit_code is None or not status_is_verifiers:
        return None if summary is None else Verdict(summary, STRONG, shown)
    if exit_code == 0:
        return Verdict(PASS, strongest, shown)
    if summary == PASS and any(s == WEAK for _, s in found):
        return Verdict(FAIL, WEAK, shown)  # the tests passed; a check after them failed
    return Verdict(FAIL, STRONG if summary == FAIL else strongest, shown)


_FAIL_LINES = (
    r"^=+ .*\b\d+ (failed|errors?)\b.* in [\d.]+s",  # pytest
    r"^(\d+ (passed|failed|skipped|errors?|deselected|xfailed|xpassed|warnings?)(, )?)*"
    r"\d+ (failed|errors?)\b.* in [\d.]+s",  # pytest -q
    r"^FAILED \((failures|errors)=\d+",  # unittest
    r"^test result: FAILED\b",  # cargo
    r"^(FAIL|--- FAIL)\b",  # go test
    r"^Tests:\s+.*\b\d+ failed\b",  # jest
    r"^\s*(Tests|Test Files)\s+\d+ failed\b",  # vitest
    r"^\s*\d+ failing\b",  # mocha
)
_PASS_LINES = (
    r"^=+ .*\b\d+ passed\b.* in [\d.]+s",
    r"^(\d+ (passed|skipped|deselected|xfailed|xpassed|warnings?)(, )?)+ in [\d.]+s",
    r"^OK( \(.*\))?$",  # unittest, after "Ran N tests"
    r"^test result: ok\b",
    r"^ok\s+\S+\s+[\d.]+s",  # go test
    r"^Tests:\s+\d+ passed",
    r"^\s*Tests\s+\d+ passed\b",
    r"^\s*\d+ passing\b",
)
_NOTHING = r"\bno tests ran\b|\bcollected 0 items\b|\bno test files\b"
TAIL_CHARS = 20_000  # summaries are at the end; long logs are cut in the middle anyway


@functools.cache
def _summary_patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    def any_of(lines: Sequence[str]) -> re.Pattern[str]:
        return re.compile("|".join(f"(?:{p})" for p in lines), re.MULTILINE)

    return any_of(_FAIL_LINES), any_of(_PASS_LINES), re.compile(_NOTHING)


def summary_outcome(output: str) -> str | None:
    """FAIL if any known test runner's summary reports failures, PASS if one reports only
    passes, else None."""
    tail = output[-TAIL_CHARS:]
    failed, passed, _ = _summary_patterns()
    if failed.search(tail):
        return FAIL
    if passed.search(tail):
        return PASS
    return None


def _nothing_ran(output: str) -> bool:
    return bool(_summary_patterns()[2].search(output[-TAIL_CHARS:]))


def parse_exit_code(error: str) -> int | None:
    """N from Claude Code's PostToolUseFailure `error` ("Exit code N\\n<output>")."""
    match = re.match(r"\s*Exit code (-?\d+)", error)
    return int(match.group(1)) if match else None


def output_text(tool_response: object, error: str = "") -> str:
    """The command's output: Bash's stdout + stderr, Codex's string, or the failure text."""
    if isinstance(tool_response, dict):
        parts: Sequence[object] = [
            tool_response.get(k) for k in ("stdout", "stderr", "output", "aggregated_output")
        ]
        text = "\n".join(p for p in parts if isinstance(p, str))
    elif isinstance(tool_response, str):
        text = tool_response
    else:
        text = ""
    return f"{text}\n{error}" if error else text
