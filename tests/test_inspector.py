"""A third-party MCP client: the MCP Inspector CLI drives `memrl serve` over stdio.

Needs the npm package @modelcontextprotocol/inspector (0.15.0 runs on Node 20): .ci/run
installs it into .ci/node_modules. Elsewhere the test is skipped unless
MEMRL_REQUIRE_INSPECTOR=1, which turns a missing Inspector into a failure (CI sets it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mcp_helpers import server_env

ROOT = Path(__file__).resolve().parents[1]


def _inspector() -> str | None:
    candidates = [
        os.environ.get("MEMRL_INSPECTOR"),
        str(ROOT / ".ci/node_modules/.bin/mcp-inspector"),
        shutil.which("mcp-inspector"),
    ]
    for c in candidates:
        if c and Path(c).exists():
            return c
    if os.environ.get("MEMRL_REQUIRE_INSPECTOR") == "1":
        pytest.fail(
            "MCP Inspector CLI not found: npm install @modelcontextprotocol/inspector@0.15.0"
        )
    pytest.skip(
        "MCP Inspector CLI not installed (npm install @modelcontextprotocol/inspector@0.15.0)"
    )
    return None


def run(inspector: str, db: Path, *method: str) -> dict:
    done = subprocess.run(
        [
            inspector,
            "--cli",
            sys.executable,
            "-m",
            "memrl_server",
            "serve",
            "--db",
            str(db),
            "--namespace",
            "inspector",
            *method,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=server_env(),
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_inspector_lists_tools_and_runs_the_loop(tmp_path: Path):
    inspector = _inspector()
    assert inspector
    db = tmp_path / "m.db"
    tools = run(inspector, db, "--method", "tools/list")
    assert sorted(t["name"] for t in tools["tools"]) == [
        "recall_experience",
        "report_outcome",
        "store_experience",
    ]

    def call(tool: str, **args: str) -> dict:
        flags = [x for k, v in args.items() for x in ("--tool-arg", f"{k}={v}")]
        out = run(inspector, db, "--method", "tools/call", "--tool-name", tool, *flags)
        assert out["isError"] is False, out
        return out["structuredContent"]

    stored = call(
        "store_experience",
        intent="rotate the TLS certificate of the staging server",
        experience="certbot renew --cert-name staging && systemctl reload nginx",
    )
    assert stored["created"] is True
    recalled = call("recall_experience", task="renew the staging TLS certificate")
    assert [m["id"] for m in recalled["memories"]] == [stored["id"]]
    reported = call("report_outcome", task_id=recalled["task_id"], success="true")
    assert reported["status"] == "updated"
    assert reported["credited"] == [{"id": stored["id"], "q": pytest.approx(0.3)}]
