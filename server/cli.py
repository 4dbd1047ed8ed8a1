"""`memrl`: the MCP server and the same memory from the command line.

    memrl serve [--http]                    the MCP server (stdio by default)
    memrl recall TASK                       two-phase recall; prints the task id and memories
    memrl report TASK_ID --success|--failure|--reward R [--used 1,2] [--reflection TEXT]
                 [--feedback 12=useful,15=outdated]
    memrl store --intent T --experience E [--kind success|failure|note] [--supersedes 12,15]
    memrl stats [--all] | export [-o FILE] [--archived] | import FILE | forget ID... | demo
    memrl archive ID... | restore ID... | prune [--capacity N] [--dry-run]
    memrl replay --lam 0,0.5,1 [--k2 ...] [--delta ...] [--json]   other settings, from the ledger

Every command but `serve`, `demo` and `replay` (a table; JSON with --json) prints JSON on stdout, so scripts, CI and host hooks
can feed rewards without the LLM. Errors are one line on stderr with exit code 2. Each
command takes only the flags that matter to it (`memrl COMMAND --help`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

from memrl.config import EXPLORE_MODES
from memrl.storage import explain
from memrl.validation import shown

from . import commands
from .hooks.client import add_arguments as add_hook_arguments
from .namespaces import namespace_for
from .output import error, silence_stdout
from .settings import LOG_LEVELS, ServerSettings
from .settings import settings_from as _settings_from
from .version import version

log = logging.getLogger("memrl")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors that point at the command's help."""

    commands: Mapping[str, argparse.ArgumentParser] = MappingProxyType({})  # set on the top

    def error(self, message: str) -> NoReturn:
        print(
            f"{self.prog}: error: {message} (`{self.prog} --help` lists the options)",
            file=sys.stderr,
        )
        sys.exit(2)

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        """As argparse, but an unknown flag is reported by the command it was given to."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = self.commands.get(getattr(parsed, "command", None) or "", self)
            command.error(f"unrecognized arguments: {shown(' '.join(extras))}")
        return parsed


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        metavar="FILE|URL",
        help="database file, or a postgresql:// URL (env MEMRL_DB; default: user data folder)",
    )
    p.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        help="log detail on stderr (env MEMRL_LOG_LEVEL; default INFO)",
    )


def _namespace(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--namespace", metavar="NS", help=f"{what} (env MEMRL_NAMESPACE)")


def _model(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model-dir",
        metavar="DIR",
        help="embedding model: a folder with model.onnx + tokenizer.json (env MEMRL_MODEL_DIR; "
        "default: the packaged all-MiniLM-L6-v2)",
    )


def _retrieval(p: argparse.ArgumentParser) -> None:
    p.add_argument("--k1", type=int, help="phase-A candidate pool size (default 5)")
    p.add_argument("--k2", type=int, help="memories injected (default 3)")
    p.add_argument("--lam", type=float, help="weight of Q against similarity (default 0.5)")
    p.add_argument(
        "--delta", type=float, help="similarity gate (default: calibrated per namespace)"
    )
    p.add_argument("--epsilon", type=float, help="epsilon-greedy exploration (default 0)")
    p.add_argument(
        "--explore",
        choices=EXPLORE_MODES,
        help="directed exploration from each memory's uncertainty: ucb (Q + w * q_sd), "
        "thompson (a draw of Q + w * q_sd * N(0,1)) or none (the paper's rule) (default: ucb)",
    )
    p.add_argument(
        "--explore-weight", type=float, dest="explore_weight", metavar="W",
        help="w of --explore (default 2)",
    )


def _learning(p: argparse.ArgumentParser) -> None:
    p.add_argument("--alpha", type=float, help="learning rate of Q (default 0.3)")
    p.add_argument(
        "--change-threshold", type=float, dest="change_threshold", metavar="T",
        help="change detection: when the last outcomes (a fast average) differ from a "
        "memory's record by more than T, Q restarts from them (default 1.2)",
    )
    p.add_argument(
        "--no-change-detection", action="store_true", dest="no_change_detection",
        help="Q follows the paper's single average only (with --explore none: the paper's rule)",
    )
    p.add_argument(
        "--alpha-recent", type=float, dest="alpha_recent", metavar="RATE",
        help="rate of the fast average that change detection compares (default 0.7)",
    )
    p.add_argument(
        "--no-learning",
        action="store_true",
        help="record outcomes but leave Q unchanged (a similarity-only baseline)",
    )
    _learn_gate(p)


def _learn_gate(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--learn-gate",
        action="store_true",
        dest="learn_gate",
        help="the similarity gate delta learned from outcomes per namespace: learn it (serve, report), apply it (serve, recall), show it (stats); default off",
    )


def _capacity(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--capacity", type=int, metavar="N", help=what)


def _q_init(p: argparse.ArgumentParser) -> None:
    p.add_argument("--q-init", type=float, dest="q_init", help="Q of a new memory (default 0)")


def _serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the MCP server (stdio, or --http)")
    _common(p)
    _namespace(p, "default memory scope of calls that name none (default: this git repo)")
    _model(p)
    _retrieval(p)
    _learning(p)
    _q_init(p)
    _capacity(
        p,
        "memories per namespace: a store above it prunes the namespace (`memrl prune`; "
        "default: no limit)",
    )
    p.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    p.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    p.add_argument("--token", help="bearer token required over HTTP (env MEMRL_HTTP_TOKEN)")
    p.add_argument(
        "--token-file",
        metavar="FILE",
        help="HTTP tokens scoped to namespaces, one `TOKEN PATTERN...` per line "
        "(env MEMRL_TOKEN_FILE; see README: Team memory)",
    )
    p.add_argument(
        "--no-query-batching",
        action="store_true",
        help="embed each concurrent recall's query in a call of its own (env "
        "MEMRL_QUERY_BATCHING=0; default: queries that arrive during a model call share the next)",
    )
    p.add_argument(
        "--embed-threads",
        type=int,
        metavar="N",
        help="ONNX Runtime intra-op threads of the model (env MEMRL_EMBED_THREADS; default: "
        "one per core)",
    )
    p.add_argument(
        "--embed-spinning",
        choices=("on", "off"),
        help="whether the model's idle threads spin waiting for work (env MEMRL_EMBED_SPINNING; "
        "default: see docs/PERFORMANCE.md)",
    )


def _ui(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help="serve the inspection page (http://127.0.0.1:8766/ui/)")
    _common(p)
    _namespace(p, "namespace shown first (default: this git repo)")
    _model(p)
    _retrieval(p)
    p.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8766, help="HTTP port (default 8766)")
    p.add_argument(
        "--token",
        help="token the page asks for once (env MEMRL_HTTP_TOKEN; required off 127.0.0.1)",
    )


def _recall(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recall", help="recall memories for a task (starts the task)")
    _common(p)
    _namespace(p, "memory scope (default: this git repo)")
    _model(p)
    _retrieval(p)
    _learn_gate(p)
    p.add_argument("task", help="one-sentence description of the task")
    p.add_argument("--k", type=int, help="memories to inject (overrides --k2)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="rank as a recall would, write nothing to the ledger (no task id)",
    )


def _report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="report a task's outcome (updates Q)")
    _common(p)
    _namespace(p, "the namespace the task was recalled in (default: this git repo)")
    _model(p)
    _learning(p)
    _q_init(p)
    p.add_argument("task_id", help="the task_id that `memrl recall` printed")
    outcome = p.add_mutually_exclusive_group(required=True)
    outcome.add_argument("--success", action="store_true", help="the task succeeded (reward +1)")
    outcome.add_argument("--failure", action="store_true", help="the task failed (reward -1)")
    outcome.add_argument("--reward", type=float, help="a reward in [-1, 1] instead")
    p.add_argument(
        "--used", metavar="IDS", help="comma-separated ids of the memories actually used"
    )
    p.add_argument("--reflection", help="a lesson to store with the outcome (loads the model)")
    p.add_argument(
        "--feedback",
        metavar="ID=VERDICT,...",
        help="per-memory verdicts, e.g. 12=useful,15=outdated: useful gets the success "
        "reward, incorrect the failure reward, outdated is archived",
    )


def _store(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("store", help="store an experience")
    _common(p)
    _namespace(p, "memory scope (default: this git repo)")
    _model(p)
    _q_init(p)
    p.add_argument("--intent", required=True, help="one sentence: the task it helps with")
    p.add_argument("--experience", required=True, help="the reusable steps, or the lesson")
    p.add_argument(
        "--kind",
        default="success",
        choices=("success", "failure", "note"),
        help="success: a script that worked; failure: what to avoid; note: a fact",
    )
    p.add_argument("--task-id", help="the task this came from (a task_id from recall)")
    p.add_argument("--metadata", metavar="JSON", help='a JSON object, e.g. \'{"lang": "py"}\'')
    p.add_argument(
        "--supersedes",
        metavar="IDS",
        help="comma-separated ids of memories this one corrects: they are archived "
        "(restorable with `memrl restore`) and recall returns this one instead",
    )


def _others(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stats", help="statistics of this project's namespace (or --all)")
    _common(p)
    _namespace(p, "namespace to show (default: this git repo)")
    p.add_argument("--all", action="store_true", help="every namespace in the database")
    _learn_gate(p)

    p = sub.add_parser("export", help="export memories as JSON Lines")
    _common(p)
    _namespace(p, "export only this namespace (default: every namespace)")
    p.add_argument("-o", "--output", metavar="FILE", help="file to write (default: stdout)")
    p.add_argument(
        "--archived", action="store_true", help="export archived memories too (after the others)"
    )

    p = sub.add_parser("import", help="import memories from JSON Lines")
    _common(p)
    _namespace(p, "file every memory under this namespace (default: each line's own)")
    _model(p)
    _q_init(p)
    p.add_argument("file", help="a file written by `memrl export` ('-' for stdin)")

    p = sub.add_parser(
        "forget", help="delete memories by id, archived ones too (the ledger keeps its history)"
    )
    _common(p)
    _namespace(p, "only memories of this namespace are deleted (default: this git repo)")
    p.add_argument("ids", nargs="+", type=int, metavar="ID", help="memory ids to delete")

    p = sub.add_parser(
        "archive", help="move memories out of retrieval into the archive (restorable)"
    )
    _common(p)
    _namespace(p, "the memories' namespace (default: this git repo)")
    p.add_argument("ids", nargs="+", type=int, metavar="ID", help="memory ids to archive")

    p = sub.add_parser("restore", help="bring archived memories back into retrieval (same ids)")
    _common(p)
    _namespace(p, "the memories' namespace (default: this git repo)")
    p.add_argument("ids", nargs="+", type=int, metavar="ID", help="archived memory ids")

    p = sub.add_parser(
        "prune",
        help="archive memories down to a capacity: superseded leftovers, then low Q with "
        "evidence, then stale (see README: Archive and forgetting)",
    )
    _common(p)
    _namespace(p, "namespace to prune (default: this git repo)")
    _capacity(p, "memories kept in retrieval (required unless the config sets one)")
    p.add_argument(
        "--dry-run", action="store_true", help="print what would go and why; write nothing"
    )

    p = sub.add_parser("demo", help="watch the memory learn which experience helps")
    _common(p)
    _model(p)

    p = sub.add_parser(
        "hook",
        help="a Claude Code / Codex hook: reads one payload on stdin (see README, Claude Code plugin)",
    )
    add_hook_arguments(p)


def _values(kind: type, what: str) -> Any:
    def parse(text: str) -> list[Any]:
        try:
            values = [kind(x) for x in text.split(",") if x.strip()]
        except ValueError:
            values = []
        if not values:
            raise argparse.ArgumentTypeError(
                f"{what} takes comma-separated {kind.__name__}s like {'1,3' if kind is int else '0,0.5,1'}"
                f", got {shown(text)}"
            )
        return values

    return parse


def _replay(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="estimate from the ledger how other settings would have done (off-policy replay)",
        description="Estimate, from the namespace's reported tasks and their recorded pools, the "
        "success rate and mean reward other settings would have had (IPS, self-normalised IPS, "
        "doubly robust; bootstrap intervals). An axis not given keeps each task's logged value. "
        "See docs/EVALUATION.md, Replay of the ledger.",
    )
    _common(p)
    _namespace(p, "namespace whose ledger is replayed (default: this git repo)")
    p.add_argument("--lam", dest="target_lam", type=_values(float, "--lam"), metavar="L,...",
                   help="lambda values to evaluate, e.g. 0,0.25,0.5,0.75,1")
    p.add_argument("--k2", dest="target_k2", type=_values(int, "--k2"), metavar="K,...",
                   help="memories injected, e.g. 1,3,5 (another k2 than the logged one has no "
                   "IPS support: only DR's reward model speaks for it)")
    p.add_argument("--delta", dest="target_delta", type=_values(float, "--delta"), metavar="D,...",
                   help="similarity gates, at or above the logged gate (candidates below it "
                   "were never recorded)")
    p.add_argument("--epsilon", dest="target_epsilon", type=_values(float, "--epsilon"),
                   metavar="E,...", help="exploration of the target policy (default 0: greedy)")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="memrl", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"memrl {version()}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    for add in (_serve, _ui, _recall, _report, _store, _others, _replay):
        add(sub)
    parser.commands = dict(sub.choices)
    return parser


def settings_from(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> ServerSettings:
    """This run's settings: flags, then the environment, then this folder's git repository."""
    return _settings_from(
        args, os.environ if environ is None else environ, lambda: namespace_for(Path.cwd())
    )


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings: ServerSettings | None = None
    try:
        settings = settings_from(args)
        _configure_logging(settings.log_level)
        return commands.run(args, settings)
    except BrokenPipeError:  # `memrl export | head`: the reader has all it wanted
        silence_stdout()
        return 141
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 -- the CLI's boundary: one line, never a traceback
        failure = explain(e, settings.db_path if settings else "?")
        if failure is None:
            log.debug("internal error", exc_info=True)
            error(f"internal error ({type(e).__name__}); rerun with --log-level DEBUG for details")
            return 1
        error(str(failure))
        return 2


if __name__ == "__main__":
    sys.exit(main())
