"""Concurrent recalls on one shared server: `memrl serve --http` with N MCP client sessions.

Two real servers are started on the same SQLite file, one with query batching (the
default: memrl.batching) and one without (`MEMRL_QUERY_BATCHING=0`). For each N (1, 4, 16
by default) and each server in turn, N client sessions (streamable HTTP, the MCP SDK's
client, all in this process) call `recall_experience` in a loop for a fixed time; every
call gets a task text no earlier call sent (the server remembers query vectors by text, and
a timed recall must pay for its embedding). Reported per N and server: recalls/s and the
round trip's p50/p95, and the ratios measured in the same run: recalls/s at N over
recalls/s at 1 client, and with batching over without.

The clients share the machine with the server (so, on 2 cores, they take CPU from it): the
figures are those of agents and a team server on one host, the worst case for throughput.
Before the servers start, `model_bound` measures what the model alone lets N clients gain
over one on this machine, printed beside the ratios. Benchmarks print figures; nothing here
asserts a speed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from memrl.embeddings import available_cpus

from .measure import server_env, summary

CLIENTS = (1, 4, 16)
# model_bound: single-text calls timed, and the batch size and count of the batched calls
BOUND_SINGLES, BOUND_BATCH, BOUND_BATCHES = 48, 16, 8
BOUND_TEXTS = BOUND_SINGLES + BOUND_BATCH * BOUND_BATCHES
MODES = {"batching": "1", "no batching": "0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def http_server(
    db: Path, namespace: str, batching: bool, log_path: Path, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[int, int]]:
    """A `memrl serve --http` process on a free port; yields (port, pid) once it listens."""
    port = _free_port()
    env = server_env()
    env["MEMRL_QUERY_BATCHING"] = "1" if batching else "0"
    env.update(extra_env or {})
    cmd = [sys.executable, "-m", "memrl_server", "serve", "--http", "--port", str(port),
           "--db", str(db), "--namespace", namespace, "--log-level", "WARNING"]
    with log_path.open("a") as errlog:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=errlog)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"memrl serve --http exited with {proc.returncode}; see {log_path}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("memrl serve --http did not listen within 120 s") from None
                time.sleep(0.05)
        yield port, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def process_cpu_s(pid: int) -> float | None:
    """CPU time (user + system, all threads) a process has used so far: /proc on Linux,
    else psutil, else None."""
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        return None
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


class _Texts:
    """Task texts handed out in order, each once."""

    def __init__(self, texts: Sequence[str]) -> None:
        self._texts = texts
        self.next = 0

    def take(self) -> str:
        if self.next >= len(self._texts):
            raise RuntimeError("the concurrency tier ran out of distinct task texts")
        self.next += 1
        return self._texts[self.next - 1]


async def _clients(
    port: int, n: int, seconds: float, texts: _Texts, namespace: str
) -> dict[str, Any]:
    """n sessions recalling in a loop for `seconds`; their round trips."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    url = f"http://127.0.0.1:{port}/mcp"
    times: list[float] = []
    errors = 0
    ready = anyio.Event()
    connected = 0
    window: dict[str, float] = {}

    async def session(http: Any) -> None:
        nonlocal connected, errors
        first = True
        while first or time.perf_counter() < window["end"]:
            try:
                async with Client(streamable_http_client(url, http_client=http)) as client:
                    if first:
                        first = False
                        connected += 1
                        if connected == n:
                            window["start"] = time.perf_counter()
                            window["end"] = window["start"] + seconds
                            ready.set()
                        await ready.wait()
                    while time.perf_counter() < window["end"]:
                        t0 = time.perf_counter()
                        result = await client.call_tool(
                            "recall_experience", {"task": texts.take(), "namespace": namespace}
                        )
                        if result.is_error:
                            errors += 1
                        times.append(time.perf_counter() - t0)
            except Exception:  # noqa: BLE001 -- a dropped connection: counted, then a new session
                errors += 1
                if first:
                    raise
        window["last"] = max(window.get("last", 0.0), time.perf_counter())

    # keep-alive connections expire on the client before uvicorn closes them (5 s): a
    # request sent on a connection the server is closing fails with a read error
    limits = httpx2.Limits(
        max_connections=2 * n + 4, max_keepalive_connections=2 * n + 4, keepalive_expiry=2.0
    )
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(300.0), limits=limits) as http:
        async with anyio.create_task_group() as tg:
            for _ in range(n):
                tg.start_soon(session, http)
    elapsed = window["last"] - window["start"]
    out: dict[str, Any] = {"clients": n, "recalls": len(times), "errors": errors,
                           "seconds": round(elapsed, 2),
                           "recalls_per_s": round(len(times) / elapsed, 1)}
    out.update(summary(times))
    return out


async def _one_recall(port: int, text: str, namespace: str) -> None:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with httpx2.AsyncClient(timeout=httpx2.Timeout(300.0)) as http:
        url = f"http://127.0.0.1:{port}/mcp"
        async with Client(streamable_http_client(url, http_client=http)) as client:
            result = await client.call_tool("recall_experience", {"task": text, "namespace": namespace})
            if result.is_error:
                raise RuntimeError(f"recall_experience failed: {result.content}")


def _warm(port: int, namespace: str, texts: _Texts) -> None:
    """Two recalls: the model is loaded and the namespace's vectors read before timing."""
    for _ in range(2):
        anyio.run(_one_recall, port, texts.take(), namespace)


def run(
    db: Path,
    namespace: str,
    texts: Sequence[str],
    clients: Sequence[int] = CLIENTS,
    seconds: float = 5.0,
    log_path: Path | None = None,
    say: Callable[[str], None] = lambda s: None,
    extra_env: dict[str, str] | None = None,
    embedder: Any = None,
) -> dict[str, Any]:
    """The tier: both servers up at once, then for each N both measured one after the other
    (so load that changes during the run hits both alike). With `embedder` (the servers'
    model and settings), first what the model alone allows (`model_bound`)."""
    log_path = log_path or db.with_suffix(".http.log")
    bound = None
    if embedder is not None:
        spare = len(texts) - BOUND_TEXTS
        bound = model_bound(embedder, texts[spare:])
        texts = texts[:spare]
    pool = _Texts(texts)
    rows: dict[str, dict[str, Any]] = {mode: {} for mode in MODES}
    load_start = _loadavg()
    with http_server(db, namespace, True, log_path, extra_env) as on_port, \
            http_server(db, namespace, False, log_path, extra_env) as off_port:
        servers = {"batching": on_port, "no batching": off_port}
        for port, _ in servers.values():
            _warm(port, namespace, pool)
        for n in clients:
            for mode, (port, pid) in servers.items():
                server0, client0 = process_cpu_s(pid), time.process_time()
                row = anyio.run(_clients, port, n, seconds, pool, namespace)
                server1, client1 = process_cpu_s(pid), time.process_time()
                row.update(_cpu_per_recall(row["recalls"], server0, server1, client1 - client0))
                rows[mode][str(n)] = row
                say(f"  {mode:<11} {n:>3} clients: {row['recalls_per_s']:>7.1f} recalls/s, "
                    f"p50 {row['p50_ms']:.1f} ms, p95 {row['p95_ms']:.1f} ms")
    out: dict[str, Any] = {
        "clients": list(clients),
        "seconds_per_run": seconds,
        "load_average_at_start": load_start,
        "load_average_at_end": _loadavg(),
        "rows": rows,
        "ratios": {},
        "model_bound": bound,
    }
    first = str(clients[0])
    for key in map(str, clients):
        on, off = rows["batching"][key], rows["no batching"][key]
        out["ratios"][key] = {
            "batching_over_no_batching": _ratio(on["recalls_per_s"], off["recalls_per_s"]),
            "batching_over_its_1_client": _ratio(
                on["recalls_per_s"], rows["batching"][first]["recalls_per_s"]
            ),
            "no_batching_over_its_1_client": _ratio(
                off["recalls_per_s"], rows["no batching"][first]["recalls_per_s"]
            ),
        }
    return out


def model_bound(embedder: Any, texts: Sequence[str]) -> dict[str, Any] | None:
    """What the model alone lets N clients gain over one, measured in this process with the
    server's settings (the same embedder, no query cache): a lone recall waits for a
    single-text call (its wall time), a busy server spends the CPU of its share of a batch.

    With X the rest of a recall's work (server and clients, the same at 1 and N clients:
    nothing else is batched), 1 client makes 1 / (X + wall) recalls/s and N clients at most
    cpus / (X + cpu per text in a batch), so N over 1 is at most
    cpus * (X + wall) / (X + batched), which never exceeds cpus * max(1, wall / batched):
    the `ratio_bound`, reached only if X were free. Call before the servers start (an idle
    machine); texts must not be in the server's query cache (they are not sent to it).
    None when the batches took no measurable CPU (an embedder that computes nothing, or a
    clock too coarse for them): there is then no bound to state."""
    texts = list(texts)
    if len(texts) < BOUND_TEXTS:
        raise ValueError(f"model_bound needs {BOUND_TEXTS} texts")
    batch = BOUND_BATCH
    embedder.embed(texts[:batch])  # warm
    singles: list[float] = []
    for text in texts[:BOUND_SINGLES]:
        t0 = time.perf_counter()
        embedder.embed_query(text)
        singles.append(time.perf_counter() - t0)
    rest = texts[BOUND_SINGLES:BOUND_TEXTS]
    c0 = time.process_time()
    for start in range(0, len(rest), batch):
        embedder.embed(rest[start : start + batch])
    batched_cpu = (time.process_time() - c0) / len(rest)
    if batched_cpu <= 0.0:
        return None
    wall = float(np.median(singles))
    cpus = available_cpus()
    return {
        "single_call_wall_ms": round(wall * 1e3, 2),
        "batch": batch,
        "batched_cpu_ms_per_text": round(batched_cpu * 1e3, 2),
        "cpus": cpus,
        "ratio_bound": round(cpus * max(1.0, wall / batched_cpu), 2),
    }


def _cpu_per_recall(
    recalls: int, server0: float | None, server1: float | None, client_s: float
) -> dict[str, Any]:
    """CPU per recall of the server process (all its threads: HTTP, MCP, the recall, the
    model's) and of the clients (this process), and the rate those costs allow on every
    available CPU: the throughput bound of clients and server sharing this machine."""
    if not recalls or server0 is None or server1 is None:
        return {}
    server_ms = (server1 - server0) / recalls * 1e3
    client_ms = client_s / recalls * 1e3
    cpus = available_cpus()
    return {
        "server_cpu_ms_per_recall": round(server_ms, 2),
        "client_cpu_ms_per_recall": round(client_ms, 2),
        "cpu_bound_recalls_per_s": round(cpus * 1e3 / (server_ms + client_ms), 1),
    }


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def render(out: dict[str, Any]) -> list[str]:
    lines = [
        f"concurrent recalls over streamable HTTP ({out['seconds_per_run']:g} s per row; load "
        f"average {out['load_average_at_start']} -> {out['load_average_at_end']}):",
        f"  {'clients':>7} | {'batching: recalls/s':>19} {'p50':>7} {'p95':>7} | "
        f"{'no batching: recalls/s':>22} {'p50':>7} {'p95':>7} | {'on/off':>6} | "
        f"{'on: x 1 client':>14} | {'off: x 1 client':>15}",
    ]
    for n in map(str, out["clients"]):
        on, off = out["rows"]["batching"][n], out["rows"]["no batching"][n]
        r = out["ratios"][n]
        lines.append(
            f"  {n:>7} | {on['recalls_per_s']:>19.1f} {on['p50_ms']:>7.1f} {on['p95_ms']:>7.1f} | "
            f"{off['recalls_per_s']:>22.1f} {off['p50_ms']:>7.1f} {off['p95_ms']:>7.1f} | "
            f"{_fmt(r['batching_over_no_batching']):>6} | {_fmt(r['batching_over_its_1_client']):>14} | "
            f"{_fmt(r['no_batching_over_its_1_client']):>15}"
        )
    lines.append("  (p50/p95: recall_experience round trip in ms, client side)")
    for mode in MODES:
        cells = []
        for n in map(str, out["clients"]):
            row = out["rows"][mode][n]
            if "server_cpu_ms_per_recall" in row:
                cells.append(
                    f"{n}: server {row['server_cpu_ms_per_recall']:.1f} + clients "
                    f"{row['client_cpu_ms_per_recall']:.1f} ms -> at most "
                    f"{row['cpu_bound_recalls_per_s']:.0f}/s"
                )
        if cells:
            lines.append(f"  CPU per recall, {mode}: " + "; ".join(cells))
    b = out.get("model_bound")
    if b:
        lines.append(
            f"  the model alone: one text {b['single_call_wall_ms']:.2f} ms wall, "
            f"{b['batched_cpu_ms_per_text']:.2f} ms CPU per text in batches of {b['batch']}, "
            f"{b['cpus']} CPUs -> N clients over 1 at most {b['ratio_bound']:.2f}x "
            "(if nothing else a recall does cost anything)"
        )
    return lines


def render_markdown(out: dict[str, Any]) -> list[str]:
    rows = [
        "| clients | batching: recalls/s | p50 / p95 ms | no batching: recalls/s | p50 / p95 ms "
        "| batching / no batching | batching: x 1 client | no batching: x 1 client |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in map(str, out["clients"]):
        on, off = out["rows"]["batching"][n], out["rows"]["no batching"][n]
        r = out["ratios"][n]
        rows.append(
            f"| {n} | {on['recalls_per_s']:.1f} | {on['p50_ms']:.1f} / {on['p95_ms']:.1f} | "
            f"{off['recalls_per_s']:.1f} | {off['p50_ms']:.1f} / {off['p95_ms']:.1f} | "
            f"{_fmt(r['batching_over_no_batching'])} | {_fmt(r['batching_over_its_1_client'])} | "
            f"{_fmt(r['no_batching_over_its_1_client'])} |"
        )
    b = out.get("model_bound")
    if b:
        rows += [
            "",
            f"The model alone (same process, before the servers start): one text "
            f"{b['single_call_wall_ms']:.2f} ms wall; {b['batched_cpu_ms_per_text']:.2f} ms CPU "
            f"per text in batches of {b['batch']}; {b['cpus']} CPUs. N clients over 1 can be "
            f"at most {b['ratio_bound']:.2f}x even if nothing else a recall does cost anything.",
        ]
    return rows


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def texts_for(n_calls: int, avoid: Sequence[str]) -> list[str]:
    """Distinct task texts, none of them stored (seeded like the bench's queries)."""
    from . import data

    taken = set(avoid)
    pool = data.task_texts(min(96_000, n_calls + len(taken) + 1000), seed=7)
    out = [t for t in pool if t not in taken][:n_calls]
    np.random.default_rng(7).shuffle(out)
    return out


def build_db(
    path: Path, texts: Sequence[str], embedder: Any, cache_dir: Path, namespace: str,
    say: Callable[[str], None] = lambda s: None,
) -> None:
    """A fresh database of `texts` stored through `Memory.store_many`, with their real-model
    vectors read from (or added to) the bench's embedding cache."""
    from memrl import Memory, MemoryConfig, SqliteStorage
    from memrl.memory import Experience

    from . import build, data
    from .embed_cache import embed_cached
    from .measure import _Precomputed

    say(f"embedding {len(texts)} task texts (cached in {cache_dir}) ...")
    vectors = embed_cached(embedder, texts, cache_dir, say).vectors
    build.fresh(path)
    store = SqliteStorage(path, embedder.dim, embedder.model_id)
    try:
        memory = Memory(store, _Precomputed.of(embedder, texts, vectors), MemoryConfig())
        for start in range(0, len(texts), 1000):
            memory.store_many(
                Experience(intent=t, experience=data.experience_text(t, start + i), namespace=namespace)
                for i, t in enumerate(texts[start : start + 1000])
            )
    finally:
        store.close()
