"""ONNX Runtime's optimised model kept on disk, so a later load skips the optimisation.

Creating the session of the packaged int8 model with graph optimisations costs 0.20-0.25 s
in a fresh process, nearly all of it constant folding the int8 weights' DequantizeLinear
into float32; without optimisations it takes 0.05 s. So the first load optimises as before
and has ONNX Runtime save the result (`optimized_model_filepath`), the weights in a file
of their own beside the graph (loaded by mapping it, no parsing); later loads check the
saved files and open them with optimisations off (docs/PERFORMANCE.md, "Cold start: the
optimised model on disk").

The saved model is optimised at ORT_ENABLE_EXTENDED, not ORT_ENABLE_ALL: ONNX Runtime's
documentation says a model saved with layout optimisations runs only on hardware like the
one that saved it (ONNX Runtime warns so when it saves one). For this model the two levels
give the same graph, byte for byte, and the vectors equal those of today's session
(tests/test_core_onnx_embedder.py).

An entry is a directory under `root` named by the model's sha256 and a digest of its key:
the model's sha256, the ONNX Runtime version, the optimisation level and the CPU (its
instruction-set flags on Linux, else the machine type), everything the optimised graph may
depend on. It holds model.onnx, its weights model.onnx.data and cache.json (the key, each
file's size and sha256). A writer builds it in a temporary directory of its own and
renames that into place, so readers see a whole entry or none, and concurrent writers
race harmlessly. Nothing here may fail a load: a missing, damaged or refused entry, or a
cache that cannot be written, falls back to optimising in memory as before, with a warning
(a damaged entry is replaced).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import onnxruntime as ort

from .file_digests import remembered_sha256, sha256_file

log = logging.getLogger(__name__)

FORMAT = 1  # of an entry's layout; a change makes new entries
SAVED_LEVEL = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
GRAPH, WEIGHTS, SIDECAR = "model.onnx", "model.onnx.data", "cache.json"
PROVIDERS = ["CPUExecutionProvider"]
EXTERNAL_WEIGHTS_KEY = "session.optimized_model_external_initializers_file_name"
EXTERNAL_MIN_SIZE_KEY = "session.optimized_model_external_initializers_min_size_in_bytes"
STALE_SECONDS = 3600  # a temporary directory this old was left by a process that died


def cpu_features() -> str:
    """A digest of the CPU's instruction-set flags (/proc/cpuinfo's `flags`, `Features` on
    ARM), or "" where there is no such file."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.strip() in ("flags", "Features"):
                    flags = " ".join(sorted(value.split()))
                    return hashlib.sha256(flags.encode()).hexdigest()[:16]
    except OSError:
        pass
    return ""


def load_session(model: Path, options: ort.SessionOptions) -> ort.InferenceSession:
    """The model's session, optimised in memory as `options` say."""
    return ort.InferenceSession(str(model), sess_options=options, providers=PROVIDERS)


@dataclass(frozen=True)
class OptimizedModelCache:
    """The entry of the model whose sha256 is `model_sha256`, under `root`."""

    root: Path
    model_sha256: str

    @cached_property
    def key(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model_sha256": self.model_sha256,
            "onnxruntime": ort.__version__,
            "optimization_level": str(SAVED_LEVEL),
            "machine": platform.machine(),
            "cpu_flags": cpu_features(),
        }

    @property
    def entry(self) -> Path:
        digest = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()
        return self.root / f"{self.model_sha256[:12]}-{digest[:12]}"

    def session(
        self, model: Path, make_options: Callable[[], ort.SessionOptions]
    ) -> ort.InferenceSession:
        """The session of `model` (whose sha256 is `model_sha256`): from the entry if it is
        whole, else optimised from `model` while saving a new entry; `make_options` gives
        fresh options (threads and the like), whose optimisation level is overridden."""
        damaged = False
        if os.path.lexists(self.entry):
            try:
                return self._load(make_options())
            except Exception as e:  # noqa: BLE001 -- any failure: optimise as before
                log.warning("the optimised model cached in %s is unusable (%s); replacing it",
                            self.entry, e)
                damaged = True
        try:
            return self._build(model, make_options(), replace=damaged)
        except Exception as e:  # noqa: BLE001 -- e.g. an unwritable cache directory
            failure = e
        in_memory = load_session(model, make_options())  # a broken model raises its own error
        log.warning("cannot cache the optimised model in %s (%s); optimised %s in memory",
                    self.root, failure, model)
        return in_memory

    def _load(self, options: ort.SessionOptions) -> ort.InferenceSession:
        recorded = json.loads((self.entry / SIDECAR).read_text())
        if recorded.get("key") != self.key:
            raise ValueError(f"its key {recorded.get('key')} is not {self.key}")
        for name, expected in _checked_files(recorded).items():
            actual = _describe(self.entry / name, record_dir=self.root.parent)
            if actual != expected:
                raise ValueError(f"{name} has size and sha256 {actual}, expected {expected}")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return load_session(self.entry / GRAPH, options)

    def _build(
        self, model: Path, options: ort.SessionOptions, replace: bool
    ) -> ort.InferenceSession:
        self.root.mkdir(parents=True, exist_ok=True)
        _remove_stale(self.root)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        try:
            options.graph_optimization_level = SAVED_LEVEL
            options.optimized_model_filepath = str(staging / GRAPH)
            options.add_session_config_entry(EXTERNAL_WEIGHTS_KEY, WEIGHTS)
            options.add_session_config_entry(EXTERNAL_MIN_SIZE_KEY, "1024")
            built = load_session(model, options)
            try:
                self._publish(staging, replace)
            except (OSError, ValueError) as e:  # the session is good; only the entry is lost
                log.warning("cannot store the optimised model in %s (%s)", self.entry, e)
            return built
        finally:
            _discard(staging)

    def _publish(self, staging: Path, replace: bool) -> None:
        files = {name: _describe(staging / name) for name in (GRAPH, WEIGHTS)}
        (staging / SIDECAR).write_text(json.dumps({"key": self.key, "files": files}, indent=1))
        try:
            os.replace(staging, self.entry)
        except OSError:
            if not replace:
                return  # another process stored the same entry first: keep it
            old = self.root / f".old-{uuid.uuid4().hex}"
            os.replace(self.entry, old)
            os.replace(staging, self.entry)
            _discard(old)


def _describe(path: Path, record_dir: Path | None = None) -> dict[str, Any]:
    """Size and sha256; with `record_dir`, the sha256 comes from the record of file digests
    there while the file is unchanged (memrl.file_digests)."""
    digest = sha256_file(path) if record_dir is None else remembered_sha256(path, record_dir)
    return {"size": path.stat().st_size, "sha256": digest}


def _checked_files(recorded: dict[str, Any]) -> dict[str, Any]:
    files = recorded.get("files")
    if not isinstance(files, dict) or set(files) != {GRAPH, WEIGHTS}:
        raise ValueError(f"it records files {files!r}")
    return files


def _discard(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _remove_stale(root: Path) -> None:
    """Temporary directories of writers that died before renaming them."""
    for path in root.glob(".*-*"):
        try:
            if time.time() - path.stat().st_mtime > STALE_SECONDS:
                _discard(path)
        except OSError:
            pass
