"""Runs every policy of a suite, each with a fresh database (a SQLite file, or a schema of
its own in a PostgreSQL database with --db postgresql://...) and its own `memrl serve`.

The policies run concurrently in one event loop: each waits on its own server process
most of the time. An attempt is synchronous code with no await inside, so attempts never
interleave and the environments (one textworld JVM, one checker cache) are shared safely.
"""

from __future__ import annotations

import asyncio
import shutil
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


async def background_db(suite: Suite, workdir: Path, server_python: str | None) -> Path | None:
    """The suite's background memories stored once, by the server under test, into a
    database that every policy's database starts as a copy of (the same ids for every
    policy; one server session instead of one per policy: 240 stores took 10 s here on a
    quiet machine, 30 s under load; a batched `memrl import` was no faster, its embedding
    of 240 intents in batches took as long)."""
    if not suite.background:
        return None
    db = fresh_db(workdir / f"{suite.env}-background.db")
    with open(workdir / f"{suite.env}-background.log", "w") as log:
        async with McpMemory(db, list(suite.server_flags), errlog=log, python=server_python) as m:
            for draft in suite.background:
                await m.store(draft)
    return db


def copy_db(template: Path | None, db: Path) -> None:
    if template is not None:
        for suffix in ("", "-wal"):
            if Path(f"{template}{suffix}").exists():
                shutil.copyfile(f"{template}{suffix}", f"{db}{suffix}")


async def run_one(suite: Suite, policy: Policy, seed: int, workdir: Path, position: int,
                  progress: bool, server_python: str | None, template: Path | None,
                  db_url: str | None = None) -> PolicyRun:
    from tqdm import tqdm

    epochs = suite.epochs
    total = len(suite.train) * epochs + len(suite.held_out)
    async with AsyncExitStack() as stack:
        memory: MemoryBackend = NoMemory()
        if policy.flags is not None:
            log = stack.enter_context(open(workdir / f"{suite.env}-{policy.name}.log", "w"))
            db = fresh_store(workdir, f"{suite.env}-{policy.name}", db_url)
            flags = [*policy.flags, *suite.server_flags]
            if isinstance(db, Path):
                copy_db(template, db)
            memory = await stack.enter_async_context(
                McpMemory(db, flags, errlog=log, python=server_python))
            if db_url is not None:  # a schema is not a file to copy: store the background
                for draft in suite.background:
                    await memory.store(draft)
        bar = stack.enter_context(
            tqdm(total=total, desc=f"{suite.env:>9} {policy.name:<9}", file=sys.stderr,
                 disable=not progress, position=position, leave=True, dynamic_ncols=True)
        )
        return await run_policy(
            policy, suite.agent, memory, suite.train, suite.held_out, epochs, seed,
            bank=suite.bank if policy.flags is not None else (), tick=bar.update,
        )


async def run_suite(suite: Suite, policies: Sequence[Policy], seed: int, workdir: Path,
                    progress: bool = True, server_python: str | None = None,
                    db_url: str | None = None) -> dict[str, PolicyRun]:
    """`server_python`: the interpreter that runs `memrl serve` (default: this one), e.g. the
    venv of another checkout, to measure an older server with this client. `db_url`: each
    policy's memory in a fresh schema of this PostgreSQL database instead of a SQLite file."""
    workdir.mkdir(parents=True, exist_ok=True)
    template = None
    if db_url is None and any(p.flags is not None for p in policies):
        template = await background_db(suite, workdir, server_python)
    runs = await asyncio.gather(*(
        run_one(suite, p, seed, workdir, i, progress, server_python, template, db_url)
        for i, p in enumerate(policies)
    ))
    return {p.name: r for p, r in zip(policies, runs)}
