"""`memrl hook`: read one hook payload on stdin, do what its event asks, answer on stdout.

It never blocks the host: every failure (a malformed payload, an unknown event, a daemon
that cannot start, a bug) is one line on stderr and in the hooks log, no output, exit 0.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import output, transport
from .events import HANDLERS, Context, append_log
from .options import HookOptions
from .payload import HookEvent, PayloadError, read_payload
from .verifiers import Verifiers


def options_from(args: argparse.Namespace) -> HookOptions:
    return HookOptions(
        db=args.db,
        namespace=args.namespace,
        budget=args.budget,
        remind=not args.no_stop_reminder,
        host=args.host,
        verifiers=Verifiers(args.verifier, args.weak_verifier, not args.no_default_verifiers),
        weak_reward=args.weak_reward,
        daemon=not args.no_daemon,
        idle=args.idle,
        disabled=args.disable,
    )


def run(args: argparse.Namespace) -> int:
    """The hook; always exit code 0."""
    options: HookOptions | None = None
    try:
        options = options_from(args)
        if args.status or args.stop_daemon:
            return _maintenance(options, args.stop_daemon)
        event = HookEvent(read_payload(sys.stdin.buffer))
        if event.name in options.disabled:
            return 0
        handler = HANDLERS.get(event.name)
        if handler is None:
            _complain(options, f"ignored: unknown hook event {event.name!r}")
            return 0
        context = Context(options, event)
        try:
            answer = handler(event, context)
        finally:
            context.close()
        output.emit(answer, sys.stdout)
    except PayloadError as e:
        _complain(options, f"ignored: {e}")
    except (transport.DaemonUnavailable, transport.DaemonError) as e:
        _complain(options, f"memory unavailable, nothing done: {e}")
    except Exception as e:  # noqa: BLE001 -- a hook must never break the host
        import traceback

        _complain(options, f"internal error, nothing done: {e!r}\n{traceback.format_exc()}")
    return 0


def _maintenance(options: HookOptions, stop: bool) -> int:
    loc = options.locations
    if stop:
        print(json.dumps({"stopped": transport.stop(loc), "db": str(loc.db or "default")}))
        return 0
    try:
        answer = transport.call(loc, {"op": "ping"}, start=False)
        status = {"running": True, "pid": answer["pid"], "db": answer["db"]}
    except (transport.DaemonUnavailable, transport.DaemonError):
        status = {"running": False, "db": str(loc.db or "default")}
    print(json.dumps({**status, "socket": str(loc.socket), "log": str(loc.log)}))
    return 0


def _complain(options: HookOptions | None, message: str) -> None:
    line = f"memrl hook: {message}"
    print(line, file=sys.stderr)
    if options is not None:
        append_log(options, line.splitlines()[0])


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="database file (env MEMRL_DB; default: the user data directory)")
    p.add_argument(
        "--namespace", help="memory scope (env MEMRL_NAMESPACE; default: the git repo of cwd)"
    )
    p.add_argument(
        "--budget",
        type=int,
        help="tokens of memories injected per prompt (env MEMRL_HOOK_BUDGET; default 600)",
    )
    p.add_argument(
        "--no-stop-reminder",
        action="store_true",
        help="never block a stop to ask for store_experience (env MEMRL_HOOK_STOP_REMINDER=0)",
    )
    p.add_argument(
        "--host",
        default="claude",
        choices=("claude", "codex"),
        help="payload dialect: codex sends no exit status (verdicts from test summaries only)",
    )
    p.add_argument(
        "--verifier", action="append", default=[], help="extra test command regex (repeatable)"
    )
    p.add_argument(
        "--weak-verifier", action="append", default=[], help="extra lint/check regex (repeatable)"
    )
    p.add_argument(
        "--no-default-verifiers",
        action="store_true",
        help="only the --verifier / --weak-verifier patterns count as verifiers",
    )
    p.add_argument(
        "--weak-reward",
        type=float,
        default=0.5,
        help="reward of a lint/type-check verdict when no test ran (default 0.5)",
    )
    p.add_argument(
        "--disable",
        action="append",
        default=[],
        help="an event to ignore, e.g. Stop (repeatable; env MEMRL_HOOK_DISABLE=Stop,SessionStart)",
    )
    p.add_argument(
        "--no-daemon",
        action="store_true",
        help="work in this process (loads the model on every call; env MEMRL_HOOK_DAEMON=0)",
    )
    p.add_argument(
        "--idle", type=float, help="seconds before an unused daemon exits (default 1800)"
    )
    p.add_argument("--status", action="store_true", help="print the daemon's status and exit")
    p.add_argument("--stop-daemon", action="store_true", help="stop this database's daemon")
