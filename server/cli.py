"""`memrl`: the MCP server and the same memory from the command line.

    memrl serve [--http]                    the MCP server (stdio by default)
    memrl ui [--port 8766]                  the inspection page on http://127.0.0.1:8766/ui/
    memrl recall TASK                       two-phase recall; prints the task id and memories
    memrl report TASK_ID --success|--failure|--reward R [--used 1,2] [--reflection TEXT]
    memrl store --intent T --experience E [--kind success|failure|note]
    memrl stats | export [-o FILE] | import FILE | forget ID... | demo

Every command but `serve` prints JSON on stdout, so scripts, CI and host hooks can feed
rewards without the LLM. Errors go to stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from memrl import Memory, MemoryConfig, MemrlError, default_db_path, open_memory
from memrl.transfer import export_jsonl, import_jsonl

from .models import RecallOutput
from .namespaces import namespace_for
from .settings import ServerSettings

log = logging.getLogger("memrl")


def _config(args: argparse.Namespace) -> MemoryConfig:
    overrides = {
        k: getattr(args, k)
        for k in ("alpha", "lam", "q_init", "k1", "k2", "delta", "epsilon")
        if getattr(args, k) is not None
    }
    return MemoryConfig(learning=not args.no_learning, **overrides)


def _namespace(args: argparse.Namespace) -> str:
    return args.namespace or os.environ.get("MEMRL_NAMESPACE") or namespace_for(Path.cwd())


def settings_from(args: argparse.Namespace) -> ServerSettings:
    model_dir = args.model_dir or os.environ.get("MEMRL_MODEL_DIR")
    return ServerSettings(
        db_path=Path(args.db).expanduser() if args.db else default_db_path(),
        namespace=_namespace(args),
        memory=_config(args),
        model_dir=Path(model_dir) if model_dir else None,
        host=args.host,
        port=args.port,
        token=args.token or os.environ.get("MEMRL_HTTP_TOKEN") or None,
    )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="database file (env MEMRL_DB; default: the user data directory)")
    p.add_argument("--namespace", help="memory scope (env MEMRL_NAMESPACE; default: this git repo)")
    p.add_argument(
        "--model-dir",
        help="directory with model.onnx + tokenizer.json (env MEMRL_MODEL_DIR)",
    )
    p.add_argument("--alpha", type=float, help="learning rate (default 0.3)")
    p.add_argument("--lam", type=float, help="weight of Q in selection (default 0.5)")
    p.add_argument("--q-init", type=float, dest="q_init", help="Q of a new memory (default 0)")
    p.add_argument("--k1", type=int, help="phase-A candidate pool size (default 5)")
    p.add_argument("--k2", type=int, help="memories injected (default 3)")
    p.add_argument(
        "--delta",
        type=float,
        help="similarity gate (default: calibrated per namespace)",
    )
    p.add_argument("--epsilon", type=float, help="epsilon-greedy exploration (default 0)")
    p.add_argument("--no-learning", action="store_true", help="record outcomes, leave Q unchanged")
    p.add_argument("--log-level", default=os.environ.get("MEMRL_LOG_LEVEL", "INFO"))
    p.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    p.add_argument("--token", help="bearer token required over HTTP (env MEMRL_HTTP_TOKEN)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memrl", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the MCP server (stdio, or --http)")
    _common(p)
    p.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")

    p = sub.add_parser("ui", help="serve the inspection page (http://127.0.0.1:8766/ui/)")
    _common(p)
    p.set_defaults(port=8766)

    p = sub.add_parser("recall", help="recall memories for a task")
    _common(p)
    p.add_argument("task")
    p.add_argument("--k", type=int, help="memories to inject")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="rank as a recall would, write nothing to the ledger (no task id)",
    )

    p = sub.add_parser("report", help="report a task's outcome")
    _common(p)
    p.add_argument("task_id")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--success", action="store_true")
    group.add_argument("--failure", action="store_true")
    group.add_argument("--reward", type=float)
    p.add_argument("--used", help="comma-separated ids of the memories actually used")
    p.add_argument("--reflection", help="a lesson to store with the outcome")

    p = sub.add_parser("store", help="store an experience")
    _common(p)
    p.add_argument("--intent", required=True)
    p.add_argument("--experience", required=True)
    p.add_argument("--kind", default="success", choices=("success", "failure", "note"))
    p.add_argument("--task-id")
    p.add_argument("--metadata", help="a JSON object")

    p = sub.add_parser("stats", help="per-namespace statistics")
    _common(p)
    p.add_argument("--all", action="store_true", help="every namespace (default: all)")

    p = sub.add_parser("export", help="export memories as JSON Lines")
    _common(p)
    p.add_argument("-o", "--output", help="file (default stdout)")

    p = sub.add_parser("import", help="import memories from JSON Lines")
    _common(p)
    p.add_argument("file", help="a file written by `memrl export` ('-' for stdin)")

    p = sub.add_parser("forget", help="delete memories by id (the ledger keeps its history)")
    _common(p)
    p.add_argument("ids", nargs="+", type=int)

    p = sub.add_parser("demo", help="watch the memory learn which experience helps")
    _common(p)
    return parser


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False))


def _open(args: argparse.Namespace) -> Memory:
    settings = settings_from(args)
    from memrl import load_embedder

    return open_memory(settings.db_path, settings.memory, load_embedder(settings.model_dir))


def cmd_serve(args: argparse.Namespace) -> None:
    import anyio

    from .app import build_server
    from .http import check_bind, serve_http
    from .runtime import MemoryRuntime

    settings = settings_from(args)
    if args.http:
        check_bind(settings)
    runtime = MemoryRuntime(settings)  # one memory for the MCP server and the page at /ui
    server = build_server(settings, runtime=runtime)
    log.info("memrl serving db=%s namespace=%s", settings.db_path, settings.namespace)
    if args.http:
        from .ui import build_ui  # the page at /ui (not imported for stdio)

        anyio.run(serve_http, server, settings, build_ui(runtime, settings))
    else:
        server.run("stdio")


def cmd_recall(args: argparse.Namespace, memory: Memory) -> None:
    r = memory.recall(args.task, _namespace(args), k=args.k, dry_run=args.dry_run)
    _print(RecallOutput.from_result(r).model_dump())


def cmd_report(args: argparse.Namespace, memory: Memory) -> None:
    used = None
    if args.used is not None:
        try:
            used = [int(x) for x in args.used.split(",") if x.strip()]
        except ValueError as e:
            raise MemrlError(
                f"--used must be comma-separated integer ids, got {args.used!r}"
            ) from e
    success = True if args.success else False if args.failure else None
    out = memory.report(
        args.task_id,
        success=success,
        reward=args.reward,
        used_ids=used,
        reflection=args.reflection,
        namespace=_namespace(args),
    )
    _print(
        {
            "task_id": out.task_id,
            "status": "updated" if out.applied else "already_reported",
            "reward": out.reward,
            "credited": [{"id": i, "q": q} for i, q in out.credited.items()],
            "reflection_id": out.reflection_id,
            "forgotten": out.forgotten,
            "message": out.message,
        }
    )


def cmd_store(args: argparse.Namespace, memory: Memory) -> None:
    try:
        metadata = None if args.metadata is None else json.loads(args.metadata)
    except json.JSONDecodeError as e:
        raise MemrlError(f"--metadata is not valid JSON: {e}") from e
    out = memory.store_experience(
        args.intent,
        args.experience,
        args.kind,
        _namespace(args),
        task_id=args.task_id,
        metadata=metadata,
    )
    _print(asdict(out))


def cmd_stats(args: argparse.Namespace, memory: Memory) -> None:
    _print(memory.stats(args.namespace))


def cmd_export(args: argparse.Namespace, memory: Memory) -> None:
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            count = export_jsonl(memory, fh, args.namespace)
        print(json.dumps({"exported": count, "file": args.output}))
    else:
        export_jsonl(memory, sys.stdout, args.namespace)


def cmd_import(args: argparse.Namespace, memory: Memory) -> None:
    if args.file == "-":
        report = import_jsonl(memory, sys.stdin, args.namespace)
    else:
        try:
            with open(args.file, encoding="utf-8") as fh:
                report = import_jsonl(memory, fh, args.namespace)
        except OSError as e:
            raise MemrlError(f"cannot read {args.file}: {e.strerror}") from e
    _print(asdict(report))


def cmd_forget(args: argparse.Namespace, memory: Memory) -> None:
    _print(asdict(memory.forget(args.ids, _namespace(args))))


def cmd_demo(args: argparse.Namespace, memory: Memory) -> None:
    from .demo import run_demo

    run_demo(memory)


COMMANDS: dict[str, Callable[[argparse.Namespace, Memory], None]] = {
    "recall": cmd_recall,
    "report": cmd_report,
    "store": cmd_store,
    "stats": cmd_stats,
    "export": cmd_export,
    "import": cmd_import,
    "forget": cmd_forget,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        if args.command == "serve":
            cmd_serve(args)
            return 0
        if args.command == "ui":
            from .ui.serve import run_ui

            run_ui(settings_from(args))
            return 0
        if args.command == "demo" and not args.db:
            args.db = str(default_db_path().with_name("demo.db"))
            Path(args.db).unlink(missing_ok=True)
            for suffix in ("-wal", "-shm"):
                Path(args.db + suffix).unlink(missing_ok=True)
        memory = _open(args)
        try:
            COMMANDS[args.command](args, memory)
        finally:
            memory.close()
    except MemrlError as e:
        print(f"memrl: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
