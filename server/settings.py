"""Settings, read once at the entry point (flags and environment) and passed down.

This is the only place that reads the environment; the core (memrl/) reads none.

| variable | flag | meaning |
|---|---|---|
| MEMRL_DB | --db | database file, or a postgresql:// URL |
| MEMRL_NAMESPACE | --namespace | default namespace (else derived from the git repository) |
| MEMRL_MODEL_DIR | --model-dir | a directory with model.onnx + tokenizer.json |
| MEMRL_ALLOW_DOWNLOAD=1 | | let fastembed download its model if the packaged one is missing |
| MEMRL_HTTP_TOKEN | --token | bearer token for --http |
| MEMRL_TOKEN_FILE | --token-file | tokens scoped to namespaces, for a team server |
| MEMRL_LOG_LEVEL | --log-level | DEBUG, INFO, WARNING or ERROR |
| MEMRL_QUERY_BATCHING=0 | --no-query-batching | one model call per concurrent query (serve) |
| MEMRL_EMBED_THREADS | --embed-threads | ONNX Runtime intra-op threads (serve) |
| MEMRL_EMBED_SPINNING | --embed-spinning | on/off: idle ONNX threads spin (serve) |
| MEMRL_STDIO_FRONT=0 | | the SDK answers the stdio handshake itself, never a cache (serve) |
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from memrl import InvalidInputError, MemoryConfig, db_target

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
CONFIG_FLAGS = (
    "alpha", "lam", "q_init", "k1", "k2", "delta", "epsilon", "explore", "explore_weight",
    "alpha_recent", "change_threshold", "capacity",
)


@dataclass(frozen=True)
class ServerSettings:
    db_path: Path | str  # a SQLite file, or a postgresql:// URL (memrl.db_target)
    namespace: str  # the default for calls that name none
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    model_dir: Path | None = None
    allow_download: bool = False
    model_wait_seconds: float = 60.0  # a call that arrives before the model is loaded waits
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None  # bearer token for streamable HTTP
    token_file: Path | None = None  # tokens scoped to namespaces (team.py)
    log_level: str = "INFO"
    batch_queries: bool = True  # concurrent recalls share model calls (memrl.batching)
    embed_threads: int | None = None  # None: memrl.embeddings.DEFAULT_THREADS
    embed_spinning: bool | None = None  # None: memrl.embeddings.DEFAULT_SPINNING
    stdio_front: bool = True  # answer the stdio handshake from its cache (stdio_front.py)

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS


def log_level(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    """--log-level, else MEMRL_LOG_LEVEL, else INFO; a bad value is an error that says so."""
    level = (getattr(args, "log_level", None) or environ.get("MEMRL_LOG_LEVEL") or "INFO").upper()
    if level not in LOG_LEVELS:
        raise InvalidInputError(
            f"MEMRL_LOG_LEVEL {level!r:.40} is not a log level: use one of {', '.join(LOG_LEVELS)}"
        )
    return level


def memory_config(args: argparse.Namespace) -> MemoryConfig:
    """The learning and retrieval parameters given as flags (the command's own flags only)."""
    overrides = {k: getattr(args, k) for k in CONFIG_FLAGS if getattr(args, k, None) is not None}
    if getattr(args, "no_change_detection", False):
        overrides["change_threshold"] = None
    return MemoryConfig(
        learning=not getattr(args, "no_learning", False),
        gate_learning=bool(getattr(args, "learn_gate", False)),
        **overrides,
    )


def model_source(flag: str | None, environ: Mapping[str, str]) -> tuple[Path | None, bool]:
    """The embedding model's directory (--model-dir, else MEMRL_MODEL_DIR; None: the
    packaged model) and whether fastembed may download one (MEMRL_ALLOW_DOWNLOAD=1)."""
    chosen = flag or environ.get("MEMRL_MODEL_DIR")
    return (Path(chosen).expanduser() if chosen else None), environ.get("MEMRL_ALLOW_DOWNLOAD") == "1"


def embedding_options(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> tuple[bool, int | None, bool | None]:
    """Query batching, ONNX threads and spinning: flags first, then the environment."""
    batch = not getattr(args, "no_query_batching", False) and environ.get(
        "MEMRL_QUERY_BATCHING", "1"
    ).strip().lower() not in ("0", "off", "false", "no")
    raw = getattr(args, "embed_threads", None) or environ.get("MEMRL_EMBED_THREADS") or None
    threads = None
    if raw is not None:
        try:
            threads = int(raw)
        except ValueError:
            threads = 0
        if threads < 1:
            raise InvalidInputError(
                f"MEMRL_EMBED_THREADS {str(raw)!r:.20} is not a thread count: give 1, 2, ..."
            )
    spin_raw = getattr(args, "embed_spinning", None) or environ.get("MEMRL_EMBED_SPINNING")
    spinning = None
    if spin_raw is not None:
        value = str(spin_raw).strip().lower()
        if value not in ("on", "off", "1", "0"):
            raise InvalidInputError(
                f"MEMRL_EMBED_SPINNING {value!r:.20} is not on or off: give on or off"
            )
        spinning = value in ("on", "1")
    return batch, threads, spinning


def settings_from(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    namespace_of_cwd: Callable[[], str],
) -> ServerSettings:
    """Flags first, then the environment, then defaults. `namespace_of_cwd` is called only
    when neither names a namespace (it runs git)."""
    db = getattr(args, "db", None) or environ.get("MEMRL_DB")
    model_dir, allow_download = model_source(getattr(args, "model_dir", None), environ)
    namespace = getattr(args, "namespace", None) or environ.get("MEMRL_NAMESPACE")
    token = getattr(args, "token", None) or environ.get("MEMRL_HTTP_TOKEN")
    token_file = getattr(args, "token_file", None) or environ.get("MEMRL_TOKEN_FILE")
    batch, threads, spinning = embedding_options(args, environ)
    return ServerSettings(
        db_path=db_target(db),
        namespace=namespace or namespace_of_cwd(),
        memory=memory_config(args),
        model_dir=model_dir,
        allow_download=allow_download,
        host=getattr(args, "host", "127.0.0.1"),
        port=getattr(args, "port", 8765),
        token=token or None,
        token_file=Path(token_file).expanduser() if token_file else None,
        log_level=log_level(args, environ),
        batch_queries=batch,
        embed_threads=threads,
        embed_spinning=spinning,
        stdio_front=environ.get("MEMRL_STDIO_FRONT", "1").strip().lower()
        not in ("0", "off", "false", "no"),
    )
