"""The CLI's commands: each takes its parsed flags and the settings, and prints JSON.

The embedding model loads on the first text embedded (memrl.LazyEmbedder), so commands
that embed nothing (stats, export, forget, a report without reflection) never load it.
Commands that only read or change what exists refuse a database file that does not exist
instead of creating an empty one.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from memrl import DatabaseError, InvalidInputError, open_memory

from .models import RecallOutput
from .output import print_json
from .settings import ServerSettings

if TYPE_CHECKING:
    from memrl import Memory

log = logging.getLogger("memrl")
Command = Callable[[argparse.Namespace, ServerSettings, "Memory"], None]


def open_cli_memory(settings: ServerSettings, *, create: bool) -> Memory:
    path = settings.db_path
    if not create and isinstance(path, Path) and not path.exists():
        raise DatabaseError(
            f"no database at {str(path)!r}: nothing has been stored there yet (a store or a "
            "recall creates it); pass --db to use another file"
        )
    from memrl.embeddings import LazyEmbedder

    embedder = LazyEmbedder(settings.model_dir, settings.allow_download)
    return open_memory(path, settings.memory, embedder)


def recall(args: argparse.Namespace, settings: ServerSettings, memory: Memory) -> None:
    result = memory.recall(args.task, settings.namespace, k=args.k, dry_run=args.dry_run)
    print_json(RecallOutput.from_result(result).model_dump())


def _ids(flag: str, text: str | None) -> list[int] | None:
    """`--used 12,15`, `--supersedes 12,15`: comma-separated memory ids."""
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise InvalidInputError(
            f"{flag} must be comma-separated memory ids like 12,15, got {text!r:.60}"
        ) from e


def _feedback(text: str | None) -> dict[int, str] | None:
    """`--feedback 12=useful,15=outdated`."""
    if text is None:
        return None
    out: dict[int, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        mid, sep, verdict = part.partition("=")
        try:
            key = int(mid)
        except ValueError:
            key = None
        if not sep or key is None:
            raise InvalidInputError(
                f"--feedback must be ID=VERDICT pairs like 12=useful,15=outdated, got "
                f"{part!r:.60}"
            )
        if key in out:
            raise InvalidInputError(f"--feedback names memory {key} twice: give one verdict")
        out[key] = verdict.strip()
    return out


def report(args: argparse.Namespace, settings: ServerSettings, memory: Memory) -> None:
    out = memory.report(
        args.task_id,
        success=True if args.success else False if args.failure else None,
        reward=args.reward,
        used_ids=_ids("--used", args.used),
        reflection=args.reflection,
        namespace=settings.namespace,
        feedback=_feedback(args.feedback),
    )
    print_json(
        {
            "task_id": out.task_id,
            "status": "updated" if out.applied else "already_reported",
            "reward": out.reward,
            "credited": [{"id": i, "q": q} for i, q in out.credited.items()],
            "reflection_id": out.reflection_id,
            "forgotten": out.forgotten,
            "feedback": {str(k): v for k, v in out.feedback.items()},
            "archived": out.archived,
            "message": out.message,
        }
    )


def store(args: argparse.Namespace, settings: ServerSettings, memory: Memory) -> None:
    try:
        metadata = None if args.metadata is None else json.loads(args.metadata)
    except json.JSONDecodeError as e:
        raise InvalidInputError(f"--metadata is not valid JSON ({e}): give a JSON object") from e
    out = memory.store_experience(
        args.intent,
        args.experience,
        args.kind,
        settings.namespace,
        task_id=args.task_id,
        metadata=metadata,
        supersedes=_ids("--supersedes", args.supersedes),
    )
    print_json(asdict(out))


def stats(args: argparse.Namespace, settings: ServerSettings, memory: Memory) -> None:
    namespace = None if args.all else settings.namespace
    rows = memory.stats(namespace)
    print_json(rows)
    if not rows and namespace is not None:
        print(
            f"memrl: namespace {namespace!r} has no memories or tasks yet; "
            "`memrl stats --all` lists every namespace",
            file=sys.stderr,
        )


def export(args: argparse.Namespace, settings: ServerSettings, memory: Memory) -> None:
    from memrl.transfer import archived_count, export_jsonl

    if not args.output:
        export_jsonl(memory, sys.stdout, args.namespace, args.archived)
        return
    try:
        with open(args.output, "w", encoding="utf-8") as fh:
            count = export_jsonl(memory, fh, args.namespace, args.archived)
    except OSError as e:
        raise InvalidInputError(
            f"cannot write {args.output!r}: {e.strerror}; pass -o a file you can write"
        ) from e
    shelved = archived_count(memory, args.namespace)
    print_json(
        {
            "exported": count,
            "archived": shelved,  # archived memories in scope
            "archived_exported": shelved if args.archived else 0,
            "file": args.output,
        }
    )


def import_(args: argparse.Namespace, settings: ServerSettings, memory: Memory) -> None:
    from memrl.transfer import import_jsonl

    if args.file == "-":
        result = import_jsonl(memory, sys.stdin, args.namespace)
    else:
        try:
            with open(args.file, encoding="utf-8") as fh:
                result = import_jsonl(memory, fh, args.namespace)
        except OSError as e:
            raise InvalidInputError(f"cannot read {args.file!r}: {e.strerror}") from e
        except UnicodeDecodeError as e:
            raise InvalidInputError(
                f"{args.file!r} is not UTF-8 text: import a file written by `memrl export`"
            ) from e
    print_json(asdict(result))


def forget(args: argparse.Namespace, settings: ServerSettings, memory: Memory) -> None:
    result = memory.forget(args.ids, settings.namespace)
    print_json(asdict(result))
    if result.refused:
        ids = ", ".join(map(str, result.refused))
        print(
            f"memrl: not deleted: {ids} belong to another namespace than "
            f"{settings.namespace!r}; pass that namespace with --namespace",
            file=sys.stderr,
        )


def replay(args: argparse.Namespace, settings: ServerSettings, memory: Memory) -> None:
    from memrl import replay as offpolicy

    namespace = settings.namespace
    targets = offpolicy.grid(args.target_lam, args.target_k2, args.target_delta, args.target_epsilon)
    if not memory.stats(namespace):
        raise InvalidInputError(
            f"namespace {namespace!r} has no memories or tasks in {settings.db_path}: pass "
            "--namespace (`memrl stats --all` lists every namespace) or --db"
        )
    report = offpolicy.replay(namespace, offpolicy.ledger(memory, namespace), targets,
                              bootstrap=args.bootstrap, seed=args.seed)
    if args.json:
        print_json(offpolicy.as_json(report))
    else:
        print(offpolicy.render(report), flush=True)


def archive(args: argparse.Namespace, settings: ServerSettings, memory: Memory) -> None:
    print_json(asdict(memory.archive(args.ids, settings.namespace)))


def restore(args: argparse.Namespace, settings: ServerSettings, memory: Memory) -> None:
    print_json(asdict(memory.restore(args.ids, settings.namespace)))


def prune(args: argparse.Namespace, settings: ServerSettings, memory: Memory) -> None:
    """Prints one line per memory on stderr (id, rule, Q, n_updates, last injected, why),
    then the JSON result on stdout."""
    import time

    out = memory.prune(settings.namespace, args.capacity, dry_run=args.dry_run)
    verb = "would archive" if out.dry_run else "archived"
    for c in out.chosen:
        last = (
            "never"
            if c.last_injected is None
            else time.strftime("%Y-%m-%d %H:%M", time.gmtime(c.last_injected)) + " UTC"
        )
        print(
            f"{verb} {c.id}: {c.rule}; Q {c.q:+.3f}, {c.n_updates} updates, last injected "
            f"{last}; {c.why}",
            file=sys.stderr,
        )
    if out.over:
        print(
            f"memrl: {out.namespace!r} stays {out.over} above capacity {out.capacity}: no "
            "other memory is superseded, of low Q with evidence, or stale",
            file=sys.stderr,
        )
    print_json(asdict(out))


# command -> (function, may it create the database file?)
COMMANDS: dict[str, tuple[Command, bool]] = {
    "recall": (recall, True),
    "report": (report, False),
    "store": (store, True),
    "stats": (stats, False),
    "export": (export, False),
    "import": (import_, True),
    "forget": (forget, False),
    "replay": (replay, False),
    "archive": (archive, False),
    "restore": (restore, False),
    "prune": (prune, False),
}


def demo(args: argparse.Namespace, settings: ServerSettings) -> None:
    """The demo writes only into a file of its own: a temporary one (removed afterwards),
    or a new --db path (kept). It never reads MEMRL_DB and never deletes a file it did not
    create in this run."""
    if not args.db:
        with tempfile.TemporaryDirectory(prefix="memrl-demo-") as folder:
            path = Path(folder) / "demo.db"
            _run_demo(settings, path, f"{path}, temporary: removed after the run")
        return
    path = Path(args.db).expanduser()
    if path.exists():
        raise InvalidInputError(
            f"{str(path)!r} already exists: the demo writes its own memories into a new file; "
            "pass a path that does not exist yet, or leave out --db for a temporary database"
        )
    _run_demo(settings, path, f"{path}, kept")


def _run_demo(settings: ServerSettings, path: Path, where: str) -> None:
    from memrl.embeddings import LazyEmbedder

    from .demo import run_demo

    embedder = LazyEmbedder(settings.model_dir, settings.allow_download)
    memory = open_memory(path, settings.memory, embedder)
    try:
        run_demo(memory, where)
    finally:
        memory.close()


def serve(args: argparse.Namespace, settings: ServerSettings) -> None:
    if not args.http:
        serve_stdio(settings)
        return
    import anyio

    from .app import build_server
    from .http import check_bind
    from .runtime import MemoryRuntime

    check_bind(settings)
    runtime = MemoryRuntime(settings)  # one memory for the MCP server and the page at /ui
    server = build_server(settings, runtime=runtime)
    ui = None
    if settings.token_file is None or settings.token:
        from .ui import build_ui  # the page at /ui (not imported for stdio)

        ui = build_ui(runtime, settings)
    else:  # the page shows every namespace: only a token for all of them may open it
        log.info("no page at /ui: a token file alone scopes tokens to namespaces; add --token")
    from .http import serve_http

    anyio.run(serve_http, server, settings, ui)


def serve_stdio(settings: ServerSettings) -> None:
    """The stdio server. On POSIX the front (stdio_front.py) starts before the SDK is
    imported and answers the handshake from its cache. (Starting the model's load here too,
    beside the SDK's import, measured no faster first recall: both are Python imports that
    share one interpreter lock; docs/PERFORMANCE.md.)"""
    from .stdio_front import start

    front = start(settings)
    try:
        from .app import build_server
        from .runtime import MemoryRuntime

        build_server(settings, runtime=MemoryRuntime(settings)).run("stdio")
    finally:
        if front is not None:
            front.close()


def ui(args: argparse.Namespace, settings: ServerSettings) -> None:
    from .ui.serve import run_ui

    run_ui(settings)


def run(args: argparse.Namespace, settings: ServerSettings) -> int:
    if args.command == "serve":
        serve(args, settings)
        return 0
    if args.command == "demo":
        demo(args, settings)
        return 0
    if args.command == "ui":
        ui(args, settings)
        return 0
    if args.command == "hook":
        from .hooks.client import run as run_hook

        return run_hook(args)
    command, creates = COMMANDS[args.command]
    memory = open_cli_memory(settings, create=creates)
    try:
        command(args, settings, memory)
    finally:
        memory.close()
    return 0
