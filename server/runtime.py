"""Process-wide state of the server: the database opens at once, the model loads in the background.

The handshake never waits for the embedding model: `MemoryRuntime.start()` only opens the
SQLite file (milliseconds) and starts a thread that imports ONNX Runtime and loads the model.
A tool call that needs the model before it is ready waits for it, up to a bound.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.to_thread

from memrl import MemrlError
from memrl.storage import explain

if TYPE_CHECKING:  # the core itself loads in the loader thread, not before the handshake
    from memrl import Embedder, Memory, Storage

from . import startup_gc
from .settings import ServerSettings

log = logging.getLogger(__name__)
T = TypeVar("T")


def _open_and_preload(settings: ServerSettings, dim: int, model_id: str) -> tuple[Storage, int]:
    """The database, and the default namespace's search rows read into memory so the first
    recall does not load them (a 1M-row namespace: 0.2-0.6 s from its snapshot); the exact
    scan's projection is left until the memory is ready (`MemoryRuntime._finish_preload`)."""
    from memrl import open_storage, validation

    storage = open_storage(settings.db_path, dim, model_id)
    try:
        rows = storage.preload(validation.namespace(settings.namespace), finish_later=True)
    except MemrlError as e:  # only an optimisation: the first recall loads them
        log.warning("could not preload namespace %r: %s", settings.namespace, e)
        rows = 0
    except BaseException:
        storage.close()
        raise
    return storage, rows


class _EarlyStorage:
    """`_open_and_preload` run in a thread of its own, for a model whose identity is known
    before it loads; `result()` waits for it and returns self (or raises its error)."""

    def __init__(self, settings: ServerSettings, dim: int, model_id: str) -> None:
        self.dim, self.model_id = dim, model_id
        self.storage: Storage | None = None
        self.rows = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(settings,), name="memrl-storage-opener", daemon=True
        )
        self._thread.start()

    def _run(self, settings: ServerSettings) -> None:
        try:
            self.storage, self.rows = _open_and_preload(settings, self.dim, self.model_id)
        except BaseException as e:  # noqa: BLE001 -- raised by result() in the loader
            self._error = e

    def result(self) -> _EarlyStorage:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self

    def fits(self, embedder: Embedder) -> bool:
        return embedder.dim == self.dim and embedder.model_id == self.model_id

    def close(self) -> None:
        """Wait for the thread and close what it opened, whatever happened to it."""
        self._thread.join()
        if self.storage is not None:
            self.storage.close()


class ModelNotReady(MemrlError):
    """The embedding model did not finish loading in time."""


def _load_embedder(settings: ServerSettings) -> Embedder:
    from memrl import embeddings

    return embeddings.load_embedder(
        settings.model_dir,
        allow_download=settings.allow_download,
        threads=settings.embed_threads or embeddings.DEFAULT_THREADS,
        spinning=(
            embeddings.DEFAULT_SPINNING
            if settings.embed_spinning is None
            else settings.embed_spinning
        ),
        # a server's tool calls run in worker threads: concurrent recalls share model calls
        batch_queries=settings.batch_queries,
    )


class MemoryRuntime:
    def __init__(
        self,
        settings: ServerSettings,
        embedder_factory: Callable[[], Embedder] | None = None,
    ) -> None:
        self.settings = settings
        self._factory = embedder_factory or (lambda: _load_embedder(settings))
        self._factory_is_default = embedder_factory is None
        self._ready = threading.Event()
        self._memory: Memory | None = None
        self._error: BaseException | None = None
        self.storage: Storage | None = None
        self.load_seconds: float | None = None
        self._users = 0
        self._users_lock = threading.Lock()

    def acquire(self) -> None:
        """Start loading on first use (idempotent); pair every call with `release()`."""
        with self._users_lock:
            self._users += 1
            if self._users == 1:
                self._ready.clear()
                self._memory, self._error = None, None
                threading.Thread(target=self._load, name="memrl-model-loader", daemon=True).start()

    def release(self) -> None:
        """Close the database when the last session (lifespan) using it ends."""
        with self._users_lock:
            self._users -= 1
            if self._users == 0:
                self._ready.wait()
                self.close()

    def _load(self) -> None:
        started = time.perf_counter()
        early = self._open_early()
        try:
            try:
                embedder = self._factory()
            except BaseException:
                if early is not None:
                    early.close()  # the model's error is the one to report
                raise
            opened = early.result() if early is not None else None
            from memrl import Memory

            if opened is not None and opened.storage is not None and opened.fits(embedder):
                storage, rows = opened.storage, opened.rows
            else:
                if opened is not None:
                    opened.close()
                storage, rows = _open_and_preload(self.settings, embedder.dim, embedder.model_id)
            self.storage = storage
            memory = Memory(storage, embedder, self.settings.memory)
            self._memory = memory
            self.load_seconds = time.perf_counter() - started
            log.info(
                "memory ready in %.2fs (model %s, db %s, %d search rows of %r in memory)",
                self.load_seconds,
                embedder.model_id,
                storage.target,
                rows,
                self.settings.namespace,
            )
        except BaseException as e:  # noqa: BLE001 -- reported to every caller, not swallowed
            self._error = e
            log.error("memory failed to start: %s", e)
        finally:
            self._ready.set()
            startup_gc.started()
        loaded = self._memory
        if loaded is not None:
            self._finish_preload(loaded)

    def _open_early(self) -> _EarlyStorage | None:
        """The database opened and the default namespace preloaded in a thread of their
        own while the model loads, when the model's identity is known before it loads: the
        packaged model (a constant id and dimension), loaded by the default factory. The
        two take 0.1-0.3 s each at 10k memories; they overlapped, the first recall comes
        sooner. Any other model: one after the other, as its dimension is needed first."""
        if self._factory_is_default and self.settings.model_dir is None:
            from memrl.embeddings import DIM, PACKAGED_MODEL_ID

            return _EarlyStorage(self.settings, DIM, PACKAGED_MODEL_ID)
        return None

    @staticmethod
    def _finish_preload(memory: Memory) -> None:
        started = time.perf_counter()
        try:
            memory.finish_preload()
        except Exception as e:  # noqa: BLE001 -- only an optimisation: searches stay exact
            log.warning("could not finish preloading: %s", e)
            return
        log.debug("preload finished in %.3fs", time.perf_counter() - started)

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and self._memory is not None

    async def memory(self) -> Memory:
        """The loaded Memory, waiting (bounded) while the model loads."""
        if not self._ready.is_set():
            await anyio.to_thread.run_sync(self._ready.wait, self.settings.model_wait_seconds)
        if self._error is not None:
            failure = explain(self._error, self.settings.db_path)
            if failure is not None:
                raise failure from self._error
            raise ModelNotReady(
                f"the memory failed to start ({type(self._error).__name__}); details are in "
                "the server's log"
            ) from self._error
        if self._memory is None:
            raise ModelNotReady(
                f"the embedding model is still loading after {self.settings.model_wait_seconds:.0f}s; "
                "retry in a moment"
            )
        return self._memory

    async def run(self, fn: Callable[[Memory], T]) -> T:
        """Run blocking core work (SQLite, ONNX) in a worker thread."""
        memory = await self.memory()
        return await anyio.to_thread.run_sync(lambda: fn(memory))

    def close(self) -> None:
        if self._memory is not None:
            self._memory.close()
            self._memory = None
