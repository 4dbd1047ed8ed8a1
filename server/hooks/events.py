"""What each hook event does. One task per user prompt:

- SessionStart: start the daemon in the background (the first prompt then finds it warm)
  and tell the model, in one short note, that recall is automatic.
- UserPromptSubmit: finish the session's previous task (report it if a verdict is pending,
  else close it unreported), recall with the prompt, open a task, inject the memories
  (compact, under the token budget). A short prompt ("yes", "go on") continues the open
  task instead; after a reported one, it recalls again with that task's query.
- PostToolUse / PostToolUseFailure on Bash: a verifier's verdict goes on the open task.
  On the memory server's recall_experience: the model's own task ids are noted, so the
  turn's outcome credits them too, never a memory twice (service.report_turn).
- Stop: no verdict -> nothing reported, the task stays open (logged). A verdict -> once
  per task, the stop is blocked with a short request to store the lesson (never when
  `stop_hook_active`); then the task is reported from its latest verdict.
- SessionEnd: report what has a verdict, close the rest.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import output, transport
from .options import HookOptions
from .payload import HookEvent

if TYPE_CHECKING:
    from .state import SessionState, Task
from .verifiers import PASS, judge, output_text, parse_exit_code

TASK_ID_RE = re.compile(r"\bt-[0-9a-f]{16}\b")
MODEL_RECALL_RE = re.compile(r"__recall_experience$")
LOG_ROTATE_BYTES = 1_000_000

SESSION_NOTE = (
    "memrl memory is active{count}: with each prompt it adds the most useful past experiences "
    "of this project, with their ids and a task_id, so there is no need to call "
    "recall_experience for the prompt. The tests you run report the outcome by themselves; "
    "if you call report_outcome, use that task_id and cite the memory ids you relied on as "
    "used_ids."
)
REMIND_SUCCESS = (
    "memrl: the checks passed ({verifier}). Before you stop: if this task taught something "
    "reusable, call store_experience once with kind='success', task_id='{task_id}', a "
    "one-sentence intent and 3-5 short steps as the experience (no secrets). Otherwise just stop."
)
REMIND_FAILURE = (
    "memrl: the last check failed ({verifier}). Before you stop: call store_experience once "
    "with kind='failure', task_id='{task_id}', a one-sentence intent, and as the experience "
    "what went wrong and what to avoid next time (no secrets). Then stop, or keep fixing."
)


class Context:
    """What a handler works with: the options, the state file, the memory (through the
    daemon, or in this process with --no-daemon) and the log."""

    def __init__(self, options: HookOptions, event: HookEvent) -> None:
        self.options = options
        self.event = event
        self._state: SessionState | None = None
        self._local: Any = None

    @property
    def state(self) -> SessionState:
        if self._state is None:
            from .state import SessionState  # sqlite3: only for events that need the state

            self.options.locations.ensure_home()
            self._state = SessionState(self.options.locations.state)
        return self._state

    def memory_op(self, op: str, **fields: Any) -> dict[str, Any]:
        request = {"op": op, "namespace": self.options.namespace, "cwd": self.event.cwd, **fields}
        if self.options.daemon:
            return transport.call(
                self.options.locations,
                request,
                idle=self.options.idle,
                start_timeout=self.options.start_timeout,
            )
        answer = self._local_service().handle(request)
        if not answer.get("ok"):
            raise transport.DaemonError(str(answer.get("error")))
        return dict(answer)

    def _local_service(self) -> Any:
        if self._local is None:
            from .service import HookService, open_hook_memory

            self._local = HookService(*open_hook_memory(self.options.locations.db))
        return self._local

    def log(self, message: str) -> None:
        line = f"memrl hook {self.event.name} [{self.event.session_id[:8]}]: {message}"
        print(line, file=sys.stderr)
        append_log(self.options, line)

    def close(self) -> None:
        if self._state is not None:
            self._state.close()
        if self._local is not None:
            self._local.memory.close()


def append_log(options: HookOptions, line: str) -> None:
    """Also keep the line in <hook dir>/hooks.log (what the hooks did, for the user)."""
    path = options.locations.home / "hooks.log"
    try:
        if path.exists() and path.stat().st_size > LOG_ROTATE_BYTES:
            path.replace(path.with_suffix(".log.1"))
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")
    except OSError:
        pass


def on_session_start(ev: HookEvent, ctx: Context) -> dict[str, Any] | None:
    """The note, with the project's memory count when a daemon already runs (else one is
    started in the background, so the first prompt finds it warm)."""
    count = ""
    if ctx.options.daemon and transport.ensure_running(ctx.options.locations, ctx.options.idle):
        try:
            stats = ctx.memory_op("stats")
            count = f" ({stats['memories']} memories in {stats['namespace']})"
        except (transport.DaemonUnavailable, transport.DaemonError) as e:
            ctx.log(f"no memory count: {e}")
    return output.add_context("SessionStart", SESSION_NOTE.format(count=count))


def on_prompt(ev: HookEvent, ctx: Context) -> dict[str, Any] | None:
    state, prompt = ctx.state, ev.prompt.strip()
    if len(prompt) < ctx.options.min_prompt_chars:
        if state.current(ev.session_id) is not None:
            ctx.log("short prompt: the open task continues")
            return None
        previous = state.latest(ev.session_id)
        if previous is None:
            ctx.log("short prompt and no earlier task: nothing recalled")
            return None
        prompt = previous.query
    finish_open_tasks(ev, ctx, "a new prompt started another task")
    answer = ctx.memory_op("recall", prompt=prompt, budget=ctx.options.budget)
    state.open_task(
        answer["task_id"], ev.session_id, answer["namespace"], answer["query"], answer["shown"]
    )
    ctx.log(
        f"task {answer['task_id']} in {answer['namespace']}: showed {answer['shown']} of "
        f"{answer['injected']} ({answer['tokens']} tokens)"
    )
    if not answer["context"]:
        return None
    return output.add_context("UserPromptSubmit", answer["context"])


def on_tool(ev: HookEvent, ctx: Context) -> dict[str, Any] | None:
    if MODEL_RECALL_RE.search(ev.tool_name):
        note_model_recall(ev, ctx)
        return None
    if ev.tool_name != "Bash" or not ev.command:
        return None
    if ev.tool_input.get("run_in_background") is True:
        return None  # it fired when the command started; its outcome is not known yet
    if ctx.options.host == "codex":
        exit_code = None  # Codex fires PostToolUse for failures too, with no exit status
    elif ev.name == "PostToolUse":
        exit_code = 0
    else:
        exit_code = parse_exit_code(ev.error)
    output_seen = output_text(ev.tool_response, ev.error)
    verdict = judge(ctx.options.verifiers, ev.command, exit_code, output_seen, ev.interrupted)
    if verdict is None:
        return None
    task = ctx.state.current(ev.session_id)
    if task is None:
        ctx.log(f"{verdict.strength} {verdict.outcome} ({verdict.command!r}) but no open task")
        return None
    ctx.state.record_verdict(task.task_id, verdict.outcome, verdict.strength, verdict.command)
    ctx.log(f"task {task.task_id}: {verdict.strength} {verdict.outcome} ({verdict.command!r})")
    return None


def note_model_recall(ev: HookEvent, ctx: Context) -> None:
    found = TASK_ID_RE.findall(json.dumps(ev.tool_response))
    task = ctx.state.current(ev.session_id)
    if not found or task is None:
        return
    ctx.state.add_model_tasks(task.task_id, found)
    ctx.log(f"task {task.task_id}: the model recalled itself as {sorted(set(found))}")


def on_stop(ev: HookEvent, ctx: Context) -> dict[str, Any] | None:
    task = ctx.state.current(ev.session_id)
    if task is None:
        return None
    if not task.has_verdict:
        ctx.log(f"task {task.task_id}: no verifier ran; nothing reported, the task stays open")
        return None
    if ctx.options.remind and not ev.stop_hook_active and not task.reminded:
        if ctx.state.mark_reminded(task.task_id):
            return output.block_stop(reminder(task))
    report(task, ctx)
    return None


def on_session_end(ev: HookEvent, ctx: Context) -> dict[str, Any] | None:
    finish_open_tasks(ev, ctx, f"the session ended ({ev.reason or 'no reason given'})")
    return None


def finish_open_tasks(ev: HookEvent, ctx: Context, why: str) -> None:
    """Report the session's open tasks that have a verdict, close the others. A report the
    memory refuses closes its task (logged) instead of blocking every later prompt; no
    daemon at all leaves it open for the next try."""
    for task in ctx.state.open_tasks(ev.session_id):
        if not task.has_verdict:
            ctx.state.set_status(task.task_id, "closed")
            ctx.log(f"task {task.task_id}: closed without a verdict, nothing reported ({why})")
            continue
        try:
            report(task, ctx)
        except transport.DaemonError as e:
            ctx.state.set_status(task.task_id, "closed")
            ctx.log(f"task {task.task_id}: closed, its report was refused: {e}")


def report(task: Task, ctx: Context) -> None:
    answer = ctx.memory_op(
        "report",
        task_id=task.task_id,
        shown=task.shown,
        model_tasks=task.model_tasks,
        **reward_for(task, ctx.options.weak_reward),
    )
    ctx.state.set_status(task.task_id, "reported")
    for r in answer["reports"]:
        ctx.log(f"task {r['task_id']}: {r['status']}, credited {r['credited']}")


def reward_for(task: Task, weak_reward: float) -> dict[str, Any]:
    """A test verdict is a success or failure (+1 / -1); a linter's or type checker's,
    when no test ran, a reward of +-weak_reward (0.5 by default)."""
    if task.strong is not None:
        return {"success": task.strong == PASS}
    return {"reward": weak_reward if task.weak == PASS else -weak_reward}


def reminder(task: Task) -> str:
    passed = (task.strong if task.strong is not None else task.weak) == PASS
    template = REMIND_SUCCESS if passed else REMIND_FAILURE
    return template.format(verifier=(task.verifier or "")[:80], task_id=task.task_id)


HANDLERS: dict[str, Callable[[HookEvent, Context], dict[str, Any] | None]] = {
    "SessionStart": on_session_start,
    "UserPromptSubmit": on_prompt,
    "PostToolUse": on_tool,
    "PostToolUseFailure": on_tool,
    "Stop": on_stop,
    "SessionEnd": on_session_end,
}
