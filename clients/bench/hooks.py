"""Hook latency: `memrl hook` as the host runs it (one process per event, payload on
stdin), against a real database with the real model behind the warm daemon.

Measured, each as p50/p95 over separate processes:
- first call: a prompt when no daemon runs (spawn + model load + recall);
- warm calls per event: UserPromptSubmit (recall), PostToolUse of a plain command (no
  daemon contact), PostToolUse of a test run (a verdict into the state file), Stop (the
  report through the daemon);
- baselines in the same run: the bare interpreter (`python -c pass`) and the hook without
  a daemon (`--no-daemon`, the model loaded in the hook process each time);
- context size per prompt: characters, approximate tokens (server/compact.py), and the
  count of the packaged WordPiece tokenizer as a reference.
The machine is shared and noisy: read the ratios to the interpreter baseline.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from memrl import Experience, open_memory

from . import data
from .measure import summary

NS = "bench/hooks"
_TOKENIZER = Path(__file__).resolve().parents[2] / "memrl" / "model_files" / "tokenizer.json"


class Bench:
    def __init__(self, root: Path) -> None:
        self.root = root
        # bytecode as an installed package has it (PYTHONDONTWRITEBYTECODE would recompile
        # every module of the hook on every call: ~20 ms)
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("MEMRL_") and k != "PYTHONDONTWRITEBYTECODE"
        }
        self.env.update(
            {
                "MEMRL_DB": str(root / "memrl.db"),
                "MEMRL_HOOK_DIR": str(root / "hooks"),
                "MEMRL_NAMESPACE": NS,
            }
        )
        self.cpu: list[float] = []
        script = Path(sys.executable).with_name("memrl")
        self.command = [str(script)] if script.exists() else [sys.executable, "-m", "memrl_server"]

    def hook(self, payload: dict[str, Any], *args: str) -> tuple[float, dict[str, Any] | None]:
        """Wall time of one hook process (its CPU time goes to self.cpu)."""
        raw = json.dumps({"cwd": str(self.root), **payload})
        before = _children_cpu()
        started = time.perf_counter()
        done = subprocess.run(
            [*self.command, "hook", *args], input=raw, env=self.env, capture_output=True, text=True
        )
        elapsed = time.perf_counter() - started
        self.cpu.append(_children_cpu() - before)
        if done.returncode != 0 or "memrl hook: memory unavailable" in done.stderr:
            raise RuntimeError(f"hook failed: {done.stderr}")
        return elapsed, (json.loads(done.stdout) if done.stdout.strip() else None)

    def stop_daemon(self) -> None:
        status = subprocess.run(
            [*self.command, "hook", "--status"], env=self.env, capture_output=True, text=True
        )
        pid = json.loads(status.stdout).get("pid") if status.stdout else None
        subprocess.run([*self.command, "hook", "--stop-daemon"], env=self.env, capture_output=True)
        while pid and _alive(pid):
            time.sleep(0.02)


def run_hooks_bench(
    n_memories: int = 2000,
    first_runs: int = 5,
    warm_runs: int = 40,
    local_runs: int = 3,
    quiet: bool = False,
    workdir: Path | None = None,
) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="memrl-hook-bench-", dir=workdir))
    bench = Bench(root)
    try:
        _seed(root / "memrl.db", n_memories)
        prompts = data.task_texts(first_runs + warm_runs + local_runs, seed=7)
        out: dict[str, Any] = {"memories": n_memories, "loadavg": list(os.getloadavg())}
        python_wall, python_cpu = _interpreter(first_runs * 4)
        out["python_pass"] = summary(python_wall)
        out["python_pass_cpu"] = summary(python_cpu)
        out["first_call"] = summary(_first_calls(bench, prompts[:first_runs], quiet))
        warm, cpu, contexts = _warm_calls(
            bench, prompts[first_runs : first_runs + warm_runs], quiet
        )
        out["warm"] = {event: summary(times) for event, times in warm.items()}
        out["warm_cpu"] = {event: summary(times) for event, times in cpu.items()}
        out["no_daemon_prompt"] = summary(_no_daemon(bench, prompts[-local_runs:]))
        out["context"] = _context_sizes(contexts)
        return out
    finally:
        bench.stop_daemon()
        shutil.rmtree(root, ignore_errors=True)


def _seed(db: Path, n: int) -> None:
    memory = open_memory(db)
    try:
        intents = data.task_texts(n, seed=3)
        memory.store_many(
            [Experience(t, data.experience_text(t, i), namespace=NS) for i, t in enumerate(intents)]
        )
    finally:
        memory.close()


def _interpreter(n: int) -> tuple[list[float], list[float]]:
    times, cpu = [], []
    for _ in range(n):
        before = _children_cpu()
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - started)
        cpu.append(_children_cpu() - before)
    return times, cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _first_calls(bench: Bench, prompts: list[str], quiet: bool) -> list[float]:
    times = []
    for i, text in enumerate(prompts):
        bench.stop_daemon()
        elapsed, _ = bench.hook(_prompt(f"first-{i}", text))
        times.append(elapsed)
        if not quiet:
            print(f"  first call {i + 1}/{len(prompts)}: {elapsed * 1e3:.0f} ms", file=sys.stderr)
    return times


def _warm_calls(
    bench: Bench, prompts: list[str], quiet: bool
) -> tuple[dict[str, list[float]], dict[str, list[float]], list[str]]:
    """Per event: wall times and the hook process's CPU times (the daemon's work is in the
    wall time only)."""
    events = {
        "UserPromptSubmit": lambda sid, text: _prompt(sid, text),
        "PostToolUse (plain command)": lambda sid, text: _bash(sid, "git status"),
        "PostToolUse (test run)": lambda sid, text: _bash(sid, "pytest -q"),
        "Stop (report)": lambda sid, text: _stop(sid),
    }
    times: dict[str, list[float]] = {event: [] for event in events}
    cpu: dict[str, list[float]] = {event: [] for event in events}
    contexts = []
    for i, text in enumerate(prompts):
        for event, payload in events.items():
            elapsed, answer = bench.hook(payload(f"warm-{i}", text))
            times[event].append(elapsed)
            cpu[event].append(bench.cpu[-1])
            if answer and event == "UserPromptSubmit":
                contexts.append(answer["hookSpecificOutput"]["additionalContext"])
    if not quiet:
        print(f"  {len(prompts)} warm sessions timed", file=sys.stderr)
    return times, cpu, contexts


def _no_daemon(bench: Bench, prompts: list[str]) -> list[float]:
    return [bench.hook(_prompt(f"local-{i}", t), "--no-daemon")[0] for i, t in enumerate(prompts)]


def _context_sizes(contexts: list[str]) -> dict[str, Any]:
    from memrl_server.compact import approx_tokens
    from tokenizers import Tokenizer

    wordpiece = Tokenizer.from_file(str(_TOKENIZER))
    wordpiece.no_truncation()
    chars = [len(c) for c in contexts]
    approx = [approx_tokens(c) for c in contexts]
    counted = [len(wordpiece.encode(c).ids) for c in contexts]
    return {
        "prompts_with_context": len(contexts),
        "chars_p50": _median(chars),
        "chars_max": max(chars, default=0),
        "approx_tokens_p50": _median(approx),
        "approx_tokens_max": max(approx, default=0),
        "wordpiece_tokens_p50": _median(counted),
        "approx_over_wordpiece": round(sum(approx) / max(sum(counted), 1), 3),
    }


def render_hooks(out: dict[str, Any]) -> str:
    base = out["python_pass"]["p50_ms"]
    rows = [
        f"memrl hook latency ({out['memories']:,} memories, load average "
        f"{', '.join(f'{x:.1f}' for x in out['loadavg'])})",
        f"{'call':<32} {'p50 ms':>7} {'p95 ms':>7} {'/ python':>9} {'hook CPU ms':>12}",
    ]

    def row(name: str, s: dict[str, Any], cpu: dict[str, Any] | None = None) -> None:
        cpu_cell = f"{cpu['p50_ms']:>12.0f}" if cpu else f"{'':>12}"
        rows.append(
            f"{name:<32} {s['p50_ms']:>7.0f} {s['p95_ms']:>7.0f} {s['p50_ms'] / base:>8.1f}x"
            f"{cpu_cell}"
        )

    row("python -c pass (baseline)", out["python_pass"], out["python_pass_cpu"])
    row("first call (daemon starts)", out["first_call"])
    for event, s in out["warm"].items():
        row(f"warm {event}", s, out["warm_cpu"][event])
    row("prompt with --no-daemon", out["no_daemon_prompt"])
    c = out["context"]
    rows.append(
        f"context per prompt: {c['chars_p50']:.0f} chars / ~{c['approx_tokens_p50']:.0f} tokens "
        f"p50 (max {c['approx_tokens_max']}), WordPiece {c['wordpiece_tokens_p50']:.0f} "
        f"(approx/WordPiece {c['approx_over_wordpiece']})"
    )
    return "\n".join(rows)


def _median(values: list[int]) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    mid = len(ordered) // 2
    return float(ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def _prompt(sid: str, text: str) -> dict[str, Any]:
    return {"session_id": sid, "hook_event_name": "UserPromptSubmit", "prompt": text}


def _bash(sid: str, command: str) -> dict[str, Any]:
    return {
        "session_id": sid,
        "hook_event_name": "PostToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": command},
        "tool_response": {"stdout": "3 passed in 0.1s", "stderr": "", "interrupted": False},
    }


def _stop(sid: str) -> dict[str, Any]:
    return {"session_id": sid, "hook_event_name": "Stop", "stop_hook_active": True}
