"""The `memrl` command's entry point.

`memrl hook` runs on every prompt and tool call of a host, so it is answered here without
importing the rest of the command line, which pulls in the core (numpy, the SQLite
extension, the model code: ~150 ms a call). Everything else goes to `cli.main`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def hook_parser() -> argparse.ArgumentParser:
    """The parser of `memrl hook` alone: building every subcommand's costs ~10 ms a call."""
    from .hooks.client import add_arguments

    parser = argparse.ArgumentParser(prog="memrl hook")
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["hook"] and not {"-h", "--help"} & set(words):
        from .hooks.client import run

        return run(hook_parser().parse_args(words[1:]))
    if words[:1] == ["serve"]:
        from .startup_gc import pause

        pause()  # until the memory is loaded (server/startup_gc.py)
    from .cli import main as cli_main

    return cli_main(words)
