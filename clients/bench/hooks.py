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
        script = Path(sys.executable).with_name("memrl")
        self.command = [str(script)] if script.exists() else [sys.executable, "-m", "memrl_server"]

    def hook(self, payload: dict[str, Any], *args: str) -> tuple[float, dict[str, Any] | None]:
        raw = json.dumps({"cwd": str(self.root), **payload})
        started = time.perf_counter()
        done = subprocess.run(
            [*self.command, "hook", *args], input=raw, env=self.env, capture_output=True, text=True
        )
        elapsed = time.perf_counter() - started
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
    n_memories: int = 2000, first_runs: int = 5, warm_runs: int = 40, quiet: bool = False
) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="memrl-hook-bench-"))
    bench = Bench(root)
    try:
        _seed(root / "memrl.db", n_memories)
        prompts = data.task_texts(first_runs + warm_runs + 10, seed=7)
        out: dict[str, Any] = {"memories": n_memories, "loadavg": list(os.getloadavg())}
        out["python_pass"] = summary(_interpreter(first_runs * 4))
        out["first_call"] = summary(_first_calls(bench, prompts[:first_runs], quiet))
        warm, contexts = _warm_calls(bench, prompts[first_runs : first_runs + warm_runs], quiet)
        out["warm"] = {event: summary(times) for event, times in warm.items()}
        out["no_daemon_prompt"] = summary(_no_daemon(bench, prompts[-3:]))
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


def _interpreter(n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - started)
    return times


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
) -> tuple[dict[str, list[float]], list[str]]:
    times: dict[str, list[float]] = {
        "UserPromptSubmit": [],
        "PostToolUse (plain command)": [],
        "PostToolUse (test run)": [],
        "Stop (report)": [],
    }
    contexts = []
    for i, text in enumerate(prompts):
        sid = f"warm-{i}"
        elapsed, answer = bench.hook(_prompt(sid, text))
        times["UserPromptSubmit"].append(elapsed)
        if answer:
            contexts.append(answer["hookSpecificOutput"]["additionalContext"])
        times["PostToolUse (plain command)"].append(bench.hook(_bash(sid, "git status"))[0])
        times["PostToolUse (test run)"].append(bench.hook(_bash(sid, "pytest -q"))[0])
        times["Stop (report)"].append(bench.hook(_stop(sid))[0])
    if not quiet:
        print(f"  {len(prompts)} warm sessions timed", file=sys.stderr)
    return times, contexts


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
        f"{'call':<30} {'p50 ms':>8} {'p95 ms':>8} {'p50 / python':>13}",
    ]

    def row(name: str, s: dict[str, Any]) -> None:
        rows.append(
            f"{name:<30} {s['p50_ms']:>8.0f} {s['p95_ms']:>8.0f} {s['p50_ms'] / base:>12.1f}x"
        )

    row("python -c pass (baseline)", out["python_pass"])
    row("first call (daemon starts)", out["first_call"])
    for event, s in out["warm"].items():
        row(f"warm {event}", s)
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
