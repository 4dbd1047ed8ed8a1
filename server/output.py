"""What the CLI prints: JSON on stdout with numbers rounded for people, errors on stderr."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

DECIMALS = 4  # q, similarity, score, rates: 0.8319 reads better than 0.8319300000000001


def rounded(value: Any) -> Any:
    """`value` with every float rounded to DECIMALS places (dicts and lists walked)."""
    if isinstance(value, float):
        return round(value, DECIMALS)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v) for v in value]
    return value


def print_json(value: Any) -> None:
    print(json.dumps(rounded(value), indent=2, ensure_ascii=False), flush=True)


def error(message: str) -> None:
    """One line on stderr: what happened and what to do."""
    print(f"memrl: error: {message}", file=sys.stderr, flush=True)


def silence_stdout() -> None:
    """After a closed pipe (`memrl export | head`): point stdout at /dev/null so the
    interpreter's final flush does not fail again with a traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
