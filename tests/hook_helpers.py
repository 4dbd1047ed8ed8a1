"""Driving `memrl hook` as the host does: one process per event, a payload on stdin.

Payloads use the host's real field names (Claude Code's hooks reference and its issue
tracker: PostToolUse for Bash carries stdout/stderr/interrupted/isImage and no exit code,
a failing command fires PostToolUseFailure with error "Exit code N\\n<output>").
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MEMRL = [sys.executable, "-m", "memrl_server"]


class HookRun:
    def __init__(self, done: subprocess.CompletedProcess[str]) -> None:
        self.returncode = done.returncode
        self.stdout = done.stdout
        self.stderr = done.stderr
        self.answer: dict[str, Any] | None = (
            json.loads(done.stdout) if done.stdout.strip() else None
        )

    @property
    def context(self) -> str | None:
        if not self.answer:
            return None
        return self.answer.get("hookSpecificOutput", {}).get("additionalContext")


class HookEnv:
    """A database, a hook dir (daemon socket, lock, state, logs) and the environment."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "memrl.db"
        self.home = root / "hooks"
        self.cwd = root / "work"
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("MEMRL_") and k not in ("CLAUDE_PROJECT_DIR",)
        }
        self.env.update({"MEMRL_DB": str(self.db), "MEMRL_HOOK_DIR": str(self.home)})

    def hook(
        self, payload: dict[str, Any] | str | bytes, *args: str, namespace: str | None = None
    ) -> HookRun:
        if isinstance(payload, dict):
            raw = json.dumps({"cwd": str(self.cwd), **payload})
        else:
            raw = payload if isinstance(payload, str) else payload.decode()
        env = dict(self.env)
        if namespace:
            env["MEMRL_NAMESPACE"] = namespace
        done = subprocess.run(
            [*MEMRL, "hook", *args],
            input=raw,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return HookRun(done)

    def status(self) -> dict[str, Any]:
        done = subprocess.run(
            [*MEMRL, "hook", "--status"], env=self.env, capture_output=True, text=True, check=True
        )
        return dict(json.loads(done.stdout))

    def stop_daemon(self) -> None:
        pid = self.status().get("pid")
        subprocess.run([*MEMRL, "hook", "--stop-daemon"], env=self.env, capture_output=True)
        if pid:
            wait_gone(pid)

    def daemon_pids(self) -> list[int]:
        """Every live process started for this hook dir (daemons, and anything they left)."""
        return processes_mentioning(str(self.home))


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (entry / "status").read_text()
        except OSError:
            continue
        if text in cmdline and "State:\tZ" not in status:
            pids.append(int(entry.name))
    return pids


def wait_gone(pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still running after {timeout} s")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)


# -- payloads as the host sends them ----------------------------------------------------


def session_start(sid: str) -> dict[str, Any]:
    return {"session_id": sid, "hook_event_name": "SessionStart", "source": "startup"}


def prompt(sid: str, text: str) -> dict[str, Any]:
    return {
        "session_id": sid,
        "transcript_path": f"/tmp/{sid}.jsonl",
        "permission_mode": "default",
        "hook_event_name": "UserPromptSubmit",
        "prompt": text,
    }


def bash_ok(sid: str, command: str, stdout: str = "") -> dict[str, Any]:
    return {
        "session_id": sid,
        "hook_event_name": "PostToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": command, "description": "run it"},
        "tool_response": {"stdout": stdout, "stderr": "", "interrupted": False, "isImage": False},
        "tool_use_id": "toolu_01ABC",
    }


def bash_failed(sid: str, command: str, code: int, output: str) -> dict[str, Any]:
    return {
        "session_id": sid,
        "hook_event_name": "PostToolUseFailure",
        "tool_name": "Bash",
        "tool_input": {"command": command, "description": "run it"},
        "tool_use_id": "toolu_01DEF",
        "error": f"Exit code {code}\n{output}",
        "is_interrupt": False,
    }


def mcp_recall(sid: str, tool_name: str, structured: dict[str, Any]) -> dict[str, Any]:
    return {
        "session_id": sid,
        "hook_event_name": "PostToolUse",
        "tool_name": tool_name,
        "tool_input": {"task": structured.get("query", "the task")},
        "tool_response": [{"type": "text", "text": json.dumps(structured)}],
        "tool_use_id": "toolu_01MCP",
    }


def stop(sid: str, active: bool = False) -> dict[str, Any]:
    return {
        "session_id": sid,
        "hook_event_name": "Stop",
        "stop_hook_active": active,
        "last_assistant_message": "Done.",
    }


def session_end(sid: str, reason: str = "prompt_input_exit") -> dict[str, Any]:
    return {"session_id": sid, "hook_event_name": "SessionEnd", "reason": reason}
