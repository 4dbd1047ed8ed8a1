"""memrl-eval: does the learned utility raise task success? (see docs/EVALUATION.md)

Runs every policy (no memory, RAG, MemRL and the lambda ablations) on the same tasks and
seeds, each against its own `memrl serve` process and fresh database; prints a table,
writes learning curves (PNG) and, with --json, the metrics. `--seeds 0,1,2 --banks 0,0.5`
runs that matrix in one command and adds the mean and spread over seeds; `--server-python`
runs the servers with another checkout's interpreter (before/after comparisons).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import aggregate, drift, late, report
from .common import Agent
from .harness import ALL_POLICIES, POLICIES
from .humaneval import HumanEvalChecker
from .llm import ChatModel
from .runner import run_suite
from .suites import (
    ENVS,
    FULL,
    QUICK,
    SCENARIOS,
    Size,
    Suite,
    drift_suite,
    humaneval_suite,
    late_suite,
    textworld_suite,
)
from .textworld import TextWorld

SMOKE = ("memrl-eval --quick is a smoke test: small sizes that check the whole pipeline "
         "runs and the policies separate; do not draw conclusions from its figures.")


def _numbers(text: str, kind: type, what: str) -> list[Any]:
    try:
        return [kind(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{what} must be comma-separated numbers, got {text!r}") from e


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="memrl-eval", description=__doc__.split("\n")[0])
    p.add_argument("--env", choices=(*ENVS, *SCENARIOS, "all"), default="all",
                   help="an environment, a scenario (late discovery, drift), or all (default)")
    p.add_argument("--agent", choices=("scripted", "anthropic", "openai"), default="scripted")
    p.add_argument("--model", help="LLM model name (LLM agents)")
    p.add_argument("--temperature", type=float, help="LLM sampling temperature (LLM agents)")
    p.add_argument("--base-url", help="LLM API endpoint instead of the provider's (LLM agents)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=lambda t: _numbers(t, int, "--seeds"),
                   help="run a matrix over these seeds (e.g. 0,1,2) and aggregate")
    p.add_argument("--banks", type=lambda t: _numbers(t, float, "--banks"),
                   help="run a matrix over these bank fractions (e.g. 0,0.5) and aggregate")
    p.add_argument("--epochs", type=int, help="epochs over the training split (10; --quick 3)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke test: small sizes, a few minutes (CI runs it)")
    p.add_argument("--tasks", type=int, help="HumanEval problems to use (default all 164)")
    p.add_argument("--games", type=int, help="seeded games per game type (default 10)")
    p.add_argument("--late-tasks", type=int, help="tasks of the late-discovery scenario (20)")
    p.add_argument("--late-epochs", type=int, help="epochs of the late-discovery scenario (10)")
    p.add_argument("--drift-tasks", type=int, help="tasks of the drift scenario (40)")
    p.add_argument("--drift-epochs", type=int,
                   help="epochs of the drift scenario (10; the change comes at the middle)")
    p.add_argument("--policies", default=",".join(x.name for x in POLICIES),
                   help="comma-separated, from: " + ", ".join(x.name for x in ALL_POLICIES)
                   + " (default: all but memrl_used, memrl_eps)")
    p.add_argument("--bank", type=float, default=0.5, metavar="FRACTION",
                   help="fraction of training tasks with weak-verifier memories in the shared "
                   "bank (0: none)")
    p.add_argument("--server-python", metavar="PATH",
                   help="interpreter that runs `memrl serve` (e.g. another checkout's "
                   ".venv/bin/python; default: this one)")
    p.add_argument("--aggregate", nargs="+", type=Path, metavar="RUN_JSON",
                   help="print (and with --json write) the aggregate of these runs' JSON; runs nothing")
    p.add_argument("--out", type=Path, default=Path("eval-out"),
                   help="directory for curves, databases and server logs")
    p.add_argument("--plot-dir", type=Path, help="directory for the PNG curves (default: --out)")
    p.add_argument("--json", type=Path,
                   help="write the metrics here (a matrix: the aggregate; each run's own JSON "
                   "goes to --out/seed<S>-bank<B>/eval.json)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--db", help="a postgresql:// URL: each policy's memory in a fresh schema "
                   "there instead of a SQLite file in --out")
    args = p.parse_args(argv)
    check_args(p, args)
    return args


def check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.db and not args.db.lower().startswith(("postgresql://", "postgres://")):
        p.error("--db takes a postgresql:// URL (SQLite files go in --out)")
    key = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}.get(args.agent)
    if key and not os.environ.get(key) and not args.base_url:
        p.error(f"--agent {args.agent} needs {key} in the environment")
    if args.agent != "scripted" and args.env in SCENARIOS:
        p.error(f"--env {args.env} is a scripted-agent scenario (its competence model is declared)")
    known = {x.name for x in ALL_POLICIES}
    chosen = [x.strip() for x in args.policies.split(",") if x.strip()]
    if not chosen or set(chosen) - known:
        p.error(f"--policies must name some of {sorted(known)}")
    for bank in [args.bank, *(args.banks or [])]:
        if not 0.0 <= bank <= 1.0:
            p.error(f"a bank fraction must be between 0 and 1, got {bank:g}")
    if args.seeds == [] or args.banks == []:
        p.error("--seeds and --banks need at least one value")
    if args.server_python and not os.access(args.server_python, os.X_OK):
        p.error(f"--server-python {args.server_python} is not an executable file "
                "(give the path of a Python that has memrl installed, e.g. CHECKOUT/.venv/bin/python)")


def envs_of(args: argparse.Namespace) -> tuple[str, ...]:
    if args.env != "all":
        return (args.env,)
    return ENVS + (SCENARIOS if args.agent == "scripted" else ())


def size_of(args: argparse.Namespace) -> Size:
    base = QUICK if args.quick else FULL
    given = {"humaneval_tasks": args.tasks, "games_per_type": args.games, "epochs": args.epochs,
             "late_tasks": args.late_tasks, "late_epochs": args.late_epochs,
             "drift_tasks": args.drift_tasks, "drift_epochs": args.drift_epochs}
    return dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})


def build(env: str, args: argparse.Namespace, seed: int, bank: float, size: Size,
          chat: ChatModel | None) -> Suite:
    """The environment's suite, with the scripted agent or, given a chat model, an LLM agent."""
    from .llm import LLMCoder, LLMPlayer

    def coder(checker: HumanEvalChecker) -> Agent:
        assert chat is not None
        return LLMCoder(chat, checker.check)

    def player(world: TextWorld) -> Agent:
        assert chat is not None
        return LLMPlayer(chat, world)

    if env == "humaneval":
        return humaneval_suite(seed, size, coder if chat else None, bank)
    if env == late.ENV:
        return late_suite(seed, size, bank)
    if env == drift.ENV:
        return drift_suite(seed, size, bank)
    return textworld_suite(seed, size, player if chat else None, bank)


def code_version(python: str | None = None) -> str | None:
    """The git commit of the memrl source that `python` imports (default: this process's)."""
    if python is None:
        import memrl

        root: str | None = str(Path(memrl.__file__).resolve().parent)
    else:  # run outside any checkout: the working directory comes first on sys.path
        try:
            with tempfile.TemporaryDirectory() as neutral:
                found = subprocess.run([python, "-c", "import memrl; print(memrl.__file__)"],
                                       capture_output=True, text=True, timeout=60,
                                       check=False, cwd=neutral)
        except OSError:
            return None
        root = str(Path(found.stdout.strip()).parent) if found.returncode == 0 else None
    if root is None:
        return None
    try:
        out = subprocess.run(["git", "-C", root, "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return None
    return out.stdout.strip() or None


def run_once(args: argparse.Namespace, seed: int, bank: float, out: Path, plot_dir: Path,
             chat: ChatModel | None, commits: dict[str, Any]) -> dict[str, Any]:
    """One seed and bank setting over every chosen environment: the run's JSON document."""
    size = size_of(args)
    policies = [x for x in ALL_POLICIES if x.name in args.policies.split(",")]
    meta: dict[str, Any] = {"seed": seed, "bank": bank, "epochs": size.epochs,
                            "size": dataclasses.asdict(size), "smoke_test": args.quick,
                            "agent": args.agent, "model": args.model, "argv": sys.argv[1:],
                            **commits, "envs": {}}
    results: dict[str, dict[str, Any]] = {}
    late_results: dict[str, Any] = {}
    started = time.monotonic()
    for env in envs_of(args):
        t0 = time.monotonic()
        suite = build(env, args, seed, bank, size, chat)
        try:
            runs = asyncio.run(run_suite(suite, policies, seed, out, progress=not args.no_progress,
                                         server_python=args.server_python, db_url=args.db))
        finally:
            suite.close()
        if env == late.ENV:
            late_results = {name: late.summary(run) for name, run in runs.items()}
            curves = late_results
        elif env == drift.ENV:
            at = drift.drift_epoch(suite.epochs)
            results[env] = {name: drift.summary(run, at) for name, run in runs.items()}
            curves = results[env]
        else:
            results[env] = {name: run.summary() for name, run in runs.items()}
            curves = results[env]
        report.write_attempts(out / f"{env}-attempts.jsonl", runs)
        curve = report.plot(plot_dir / f"{env}-learning-curve.png", env, curves)
        meta["envs"][env] = {
            "train_tasks": len(suite.train), "held_out_tasks": len(suite.held_out),
            "epochs": suite.epochs, "bank_memories": len(suite.bank),
            "background_memories": len(suite.background), "curve": str(curve),
            "seconds": round(time.monotonic() - t0, 1),
        }
    meta["seconds"] = round(time.monotonic() - started, 1)
    return {"meta": meta, "results": results, "late_discovery": late_results}


def tables(doc: dict[str, Any]) -> str:
    """The Markdown a run prints: the environments' table, the late-discovery table, sizes."""
    parts = []
    if doc["results"]:
        parts.append(report.table(doc["results"]))
    if doc["late_discovery"]:
        parts.append("Late discovery (reachability: share of attempts after the first real "
                     "success that injected or reused the memory stored from it):\n\n"
                     + report.late_table(doc["late_discovery"]))
    lines = []
    for env, info in doc["meta"]["envs"].items():
        extra = f", {info['background_memories']} background" if info["background_memories"] else ""
        lines.append(f"{env}: {info['train_tasks']} training tasks x {info['epochs']} epochs, "
                     f"{info['held_out_tasks']} held out, {info['bank_memories']} bank "
                     f"memories{extra}, {info['seconds']}s; curve {info['curve']}")
    parts.append("\n".join(lines))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.aggregate:
        agg = aggregate.aggregate(aggregate.load(args.aggregate))
        print(report.aggregate_table(agg))
        if args.json:
            report.write_json(args.json, agg["results"], agg["meta"], late=agg["late_discovery"])
        return 0
    commits = {"client_commit": code_version(), "server_python": args.server_python,
               "server_commit": code_version(args.server_python)}
    commits["memrl_commit"] = commits["server_commit"]  # the retrieval code measured
    matrix = args.seeds is not None or args.banks is not None
    chat = None
    if args.agent != "scripted":
        from .llm import chat_model

        chat = chat_model(args.agent, args.model, args.temperature, args.base_url)
    try:
        if matrix:
            run_matrix(args, chat, commits)
        else:
            doc = run_once(args, args.seed, args.bank, args.out, args.plot_dir or args.out,
                           chat, commits)
            print(tables(doc))
            if args.json:
                report.write_json(args.json, doc["results"], doc["meta"], late=doc["late_discovery"])
    finally:
        if chat is not None:
            chat.close()
    if args.quick:
        print(f"\n{SMOKE}")
    return 0


def run_matrix(args: argparse.Namespace, chat: ChatModel | None, commits: dict[str, Any]) -> None:
    """Every seed x bank setting, each into its own folder; then the aggregate."""
    docs = []
    for seed in args.seeds if args.seeds is not None else [args.seed]:
        for bank in args.banks if args.banks is not None else [args.bank]:
            folder = args.out / f"seed{seed}-bank{aggregate.bank_key(bank)}"
            doc = run_once(args, seed, bank, folder, folder, chat, commits)
            report.write_json(folder / "eval.json", doc["results"], doc["meta"],
                              late=doc["late_discovery"])
            (folder / "tables.md").write_text(tables(doc) + "\n")
            print(f"seed {seed}, bank {bank:g}: {folder / 'eval.json'} ({doc['meta']['seconds']}s)",
                  file=sys.stderr)
            docs.append(doc)
    agg = aggregate.aggregate(docs)
    print(report.aggregate_table(agg))
    path = args.json or args.out / "aggregate.json"
    report.write_json(path, agg["results"], agg["meta"], late=agg["late_discovery"])
    print(f"\naggregate of {len(docs)} runs: {path}; per run: {args.out}/seed<S>-bank<B>/")


if __name__ == "__main__":
    sys.exit(main())
