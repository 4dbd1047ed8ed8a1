"""Runs every policy of a suite, each with a fresh database (a SQLite file, or a schema of
its own in a PostgreSQL database with --db postgresql://...) and its own `memrl serve`.

The policies run concurrently in one event loop: each waits on its own server process
most of the time. An attempt is synchronous code with no await inside, so attempts never
interleave and the environments (one textworld JVM, one checker cache) are shared safely.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path

from .harness import Policy, PolicyRun, run_policy
from .memory_client import McpMemory, MemoryBackend, NoMemory
from .suites import Suite


def fresh_db(path: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def fresh_store(workdir: Path, name: str, db_url: str | None) -> Path | str:
    """A new SQLite file in workdir, or (with a postgresql:// URL) a new schema there."""
    if db_url is None:
        return fresh_db(workdir / f"{name}.db")
    from ..pgschema import fresh_schema, schema_name

    return fresh_schema(db_url, schema_name(f"eval_{name}"))


async def run_one(suite: Suite, policy: Policy, epochs: int, seed: int, workdir: Path,
                  position: int, progress: bool, db_url: str | None = None) -> PolicyRun:
    from tqdm import tqdm

    total = len(suite.train) * epochs + len(suite.held_out)
    async with AsyncExitStack() as stack:
        memory: MemoryBackend = NoMemory()
        if policy.flags is not None:
            log = stack.enter_context(open(workdir / f"{suite.env}-{policy.name}.log", "w"))
            db = fresh_store(workdir, f"{suite.env}-{policy.name}", db_url)
            memory = await stack.enter_async_context(McpMemory(db, list(policy.flags), errlog=log))
        bar = stack.enter_context(
            tqdm(total=total, desc=f"{suite.env:>9} {policy.name:<9}", file=sys.stderr,
                 disable=not progress, position=position, leave=True, dynamic_ncols=True)
        )
        return await run_policy(
            policy, suite.agent, memory, suite.train, suite.held_out, epochs, seed,
            bank=suite.bank if policy.flags is not None else (), tick=bar.update,
        )


async def run_suite(suite: Suite, policies: Sequence[Policy], epochs: int, seed: int,
                    workdir: Path, progress: bool = True,
                    db_url: str | None = None) -> dict[str, PolicyRun]:
    workdir.mkdir(parents=True, exist_ok=True)
    runs = await asyncio.gather(*(
        run_one(suite, p, epochs, seed, workdir, i, progress, db_url) for i, p in enumerate(policies)
    ))
    return {p.name: r for p, r in zip(policies, runs)}
