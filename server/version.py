"""The installed memrl version (for --version and the MCP handshake)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _installed


def version() -> str:
    try:
        return _installed("memrl")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"
