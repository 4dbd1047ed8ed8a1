"""`memrl demo`: a small, real run of the learning loop on the local model and a SQLite file.

Five stored experiences look alike to similarity search; only one actually fixes the
problem, and it is the least similar. The agent tries the k2 injected memories; the check
passes only if the helpful one was among them. A failure is reported against everything
injected; a success names the memory that worked (used_ids), so only it is credited. Q
moves and the selection changes until the helpful memory is injected. Nothing is scripted about the ranking: it is what the two-phase
retrieval and the Q updates produce.
"""

from __future__ import annotations

from memrl import Memory

NAMESPACE = "demo"
HELPFUL = (
    "Install the project in editable mode (pip install -e .) in the active venv, then rerun pytest."
)
EXPERIENCES = [
    (
        "pytest fails with ModuleNotFoundError for the project's own package",
        "Add the tests folder to sys.path at the top of conftest.py.",
    ),
    (
        "pytest cannot import the package: ModuleNotFoundError in tests",
        "Rename the tests/__init__.py file to avoid a package name clash.",
    ),
    (
        "ModuleNotFoundError for my package when running pytest",
        "Pin an older pytest release in requirements-dev.txt.",
    ),
    (
        "pytest ModuleNotFoundError: the package module is not found by the tests",
        "Set PYTHONPATH=tests before running pytest.",
    ),
    (
        "pytest raises ModuleNotFoundError because the package is not installed in the venv",
        HELPFUL,
    ),
]
TASKS = [
    "pytest fails with ModuleNotFoundError: no module named my package",
    "running the test suite raises ModuleNotFoundError for the package",
    "pytest can't import my package, ModuleNotFoundError",
    "fresh clone: ModuleNotFoundError for the project package under pytest",
    "ModuleNotFoundError when pytest imports the package under test",
    "pytest collection error: ModuleNotFoundError for the package",
]


def _line(text: str) -> None:
    print(text, flush=True)


def run_demo(memory: Memory, where: str, rounds: int = 8) -> None:
    """Run the demo on `memory` (a database of its own, described by `where`)."""
    ids = [memory.store_experience(i, e, "success", NAMESPACE).id for i, e in EXPERIENCES]
    helpful_id = ids[-1]
    _line(
        f"Stored {len(ids)} similar-looking experiences in namespace '{NAMESPACE}' "
        f"({where}); only memory {helpful_id} really fixes the problem."
    )
    _line(
        "Each task: recall -> the agent tries the injected memories -> the check passes only "
        "if the helpful one was injected -> report_outcome (a success credits only the memory "
        "that worked).\n"
    )
    wins = []
    for n in range(rounds):
        task = TASKS[n % len(TASKS)]
        recall = memory.recall(task, NAMESPACE)
        if not recall.injected:
            _line(f"task {n + 1}: nothing passed the similarity gate (delta={recall.delta:.2f})")
            continue
        injected = [m.id for m in recall.injected]
        success = helpful_id in injected
        wins.append(success)
        assert recall.task_id is not None  # not a dry run
        memory.report(recall.task_id, success=success, used_ids=[helpful_id] if success else None)
        ranking = "  ".join(
            f"{'*' if c.injected else ' '}#{c.id}(sim {c.similarity:.2f}, Q {c.q:+.2f})"
            for c in recall.candidates
        )
        _line(f"task {n + 1}: {task!r}")
        _line(f"  pool (* = injected): {ranking}")
        _line(f"  -> {'SUCCESS' if success else 'failure'}")
    final = {m.id: m for m in memory.recall(TASKS[0], NAMESPACE).candidates}
    _line("\nLearned utility Q after the run:")
    for mid in ids:
        mark = "  <- the helpful one" if mid == helpful_id else ""
        q = final[mid].q if mid in final else memory.get(mid).q  # type: ignore[union-attr]
        _line(f"  memory {mid}: Q = {q:+.3f}{mark}")
    _line(f"\nSuccess: {sum(wins)}/{len(wins)} tasks; first {wins[:2]}, last {wins[-2:]}.")
