"""memrl-eval: does the learned utility raise task success? (see docs/EVALUATION.md)

Runs every policy (no memory, RAG, MemRL and the lambda ablations) on the same tasks and
seeds, each against its own `memrl serve` process and fresh database; prints a table,
writes learning curves (PNG) and, with --json, the metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import report
from .common import Agent
from .harness import ALL_POLICIES, POLICIES
from .humaneval import HumanEvalChecker
from .llm import ChatModel
from .runner import run_suite
from .suites import ENVS, FULL, QUICK, Size, Suite, humaneval_suite, textworld_suite
from .textworld import TextWorld


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="memrl-eval", description=__doc__.split("\n")[0])
    p.add_argument("--env", choices=(*ENVS, "all"), default="all")
    p.add_argument("--agent", choices=("scripted", "anthropic", "openai"), default="scripted")
    p.add_argument("--model", help="LLM model name (LLM agents)")
    p.add_argument("--temperature", type=float, help="LLM sampling temperature (LLM agents)")
    p.add_argument("--base-url", help="LLM API endpoint instead of the provider's (LLM agents)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, help="epochs over the training split (10; --quick 3)")
    p.add_argument("--quick", action="store_true", help="a small run (about two minutes)")
    p.add_argument("--tasks", type=int, help="HumanEval problems to use (default all 164)")
    p.add_argument("--games", type=int, help="seeded games per game type (default 10)")
    p.add_argument("--policies", default=",".join(x.name for x in POLICIES),
                   help="comma-separated, from: " + ", ".join(x.name for x in ALL_POLICIES)
                   + " (default: all but memrl_used)")
    p.add_argument("--bank", type=float, default=0.5, metavar="FRACTION",
                   help="fraction of tasks with weak-verifier memories in the shared bank (0: none)")
    p.add_argument("--out", type=Path, default=Path("eval-out"),
                   help="directory for curves, databases and server logs")
    p.add_argument("--plot-dir", type=Path, help="directory for the PNG curves (default: --out)")
    p.add_argument("--json", type=Path, help="write the metrics here")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--db", help="a postgresql:// URL: each policy's memory in a fresh schema "
                   "there instead of a SQLite file in --out")
    args = p.parse_args(argv)
    if args.db and not args.db.lower().startswith(("postgresql://", "postgres://")):
        p.error("--db takes a postgresql:// URL (SQLite files go in --out)")
    key = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}.get(args.agent)
    if key and not os.environ.get(key) and not args.base_url:
        p.error(f"--agent {args.agent} needs {key} in the environment")
    known = {x.name for x in ALL_POLICIES}
    chosen = [x.strip() for x in args.policies.split(",") if x.strip()]
    if not chosen or set(chosen) - known:
        p.error(f"--policies must name some of {sorted(known)}")
    return args


def size_of(args: argparse.Namespace) -> Size:
    base = QUICK if args.quick else FULL
    return dataclasses.replace(
        base,
        humaneval_tasks=args.tasks if args.tasks is not None else base.humaneval_tasks,
        games_per_type=args.games if args.games is not None else base.games_per_type,
        epochs=args.epochs if args.epochs is not None else base.epochs,
    )


def build(env: str, args: argparse.Namespace, size: Size, chat: ChatModel | None) -> Suite:
    """The environment's suite, with the scripted agent or, given a chat model, an LLM agent."""
    from .llm import LLMCoder, LLMPlayer

    def coder(checker: HumanEvalChecker) -> Agent:
        assert chat is not None
        return LLMCoder(chat, checker.check)

    def player(world: TextWorld) -> Agent:
        assert chat is not None
        return LLMPlayer(chat, world)

    if env == "humaneval":
        return humaneval_suite(args.seed, size, coder if chat else None, args.bank)
    return textworld_suite(args.seed, size, player if chat else None, args.bank)


def code_version() -> str | None:
    """The git commit of the installed memrl source (the server's retrieval code), if any."""
    import subprocess

    import memrl

    root = Path(memrl.__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return None
    return out.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    size = size_of(args)
    policies = [x for x in ALL_POLICIES if x.name in args.policies.split(",")]
    envs = ENVS if args.env == "all" else (args.env,)
    results: dict[str, dict[str, Any]] = {}
    meta: dict[str, Any] = {"seed": args.seed, "epochs": size.epochs, "agent": args.agent,
                            "model": args.model, "bank": args.bank, "argv": sys.argv[1:],
                            "memrl_commit": code_version(),
                            "envs": {}}
    started = time.monotonic()
    chat = None
    if args.agent != "scripted":
        from .llm import chat_model

        chat = chat_model(args.agent, args.model, args.temperature, args.base_url)
    try:
        for env in envs:
            t0 = time.monotonic()
            suite = build(env, args, size, chat)
            try:
                runs = asyncio.run(run_suite(suite, policies, size.epochs, args.seed,
                                             args.out, progress=not args.no_progress,
                                             db_url=args.db))
            finally:
                suite.close()
            results[env] = {name: run.summary() for name, run in runs.items()}
            report.write_attempts(args.out / f"{env}-attempts.jsonl", runs)
            curve = report.plot((args.plot_dir or args.out) / f"{env}-learning-curve.png", env,
                                results[env])
            meta["envs"][env] = {
                "train_tasks": len(suite.train), "held_out_tasks": len(suite.held_out),
                "bank_memories": len(suite.bank), "curve": str(curve),
                "seconds": round(time.monotonic() - t0, 1),
            }
    finally:
        if chat is not None:
            chat.close()
    meta["seconds"] = round(time.monotonic() - started, 1)
    print(report.table(results))
    for env, info in meta["envs"].items():
        print(f"{env}: {info['train_tasks']} training tasks x {size.epochs} epochs, "
              f"{info['held_out_tasks']} held out, {info['bank_memories']} bank memories, "
              f"{info['seconds']}s; curve {info['curve']}")
    if args.json:
        report.write_json(args.json, results, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
