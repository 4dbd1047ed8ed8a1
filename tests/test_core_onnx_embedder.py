"""The packaged model on ONNX Runtime directly (memrl/onnx_embedder.py) gives fastembed's
vectors, takes the threads and spinning settings, and never imports fastembed; its
optimised form kept on disk (memrl/ort_cache.py) gives the same vectors, and no failure of
that cache fails a load."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from memrl import Embedder, embeddings, file_digests, load_embedder, ort_cache
from memrl.onnx_embedder import OnnxSentenceEncoder

LONG = " ".join(f"step {i}: rerun the flaky integration test with verbose logging" for i in range(40))
SHORT_AND_MEDIUM = [
    "", " ", "a", "?", "ok", "Fix the failing CI job", "Rotate the API keys",
    "Écrire un test pour le parseur CSV", "ünïcödé: naïve café, straße, Ærøskøbing",
    "日本語のテキストを埋め込む", "emoji 🙂🚀 and symbols ∑ ≤ ≠ →", "tab\tand\nnewline\r\n",
    "git rebase stopped with conflicts in package-lock.json",
    "The unit tests fail because the database fixture is not cleaned up between runs",
    "SELECT id FROM memories WHERE namespace = 'default' ORDER BY q DESC LIMIT 5;",
    "def f(x):\n    return x ** 2  # square",
    "https://example.com/path?query=1&other=two#fragment",
    "UPPER CASE TEXT IS LOWERED BY THE TOKENIZER",
    "Resolve a git merge conflict in a lock file by regenerating the lock file from the manifest",
]


@pytest.fixture(scope="module")
def fastembed_encoder() -> embeddings.FastEmbedEncoder:
    """fastembed's TextEmbedding on the packaged model, as memrl loaded it until now (every
    stored vector came from it)."""
    return embeddings.FastEmbedEncoder(
        embeddings.packaged_model_dir(), embeddings.DEFAULT_THREADS, embeddings.DEFAULT_SPINNING
    )


def encoder_of(model: Embedder) -> OnnxSentenceEncoder:
    assert isinstance(model, embeddings.LocalEmbedder)
    assert isinstance(model.encoder, OnnxSentenceEncoder)
    return model.encoder


@pytest.fixture(scope="module")
def direct(real_model: Embedder) -> OnnxSentenceEncoder:
    return encoder_of(real_model)


LEVEL = ort.GraphOptimizationLevel
IN_MEMORY, WRITING, READING = "optimised in memory", "writing the cache", "from the cache"
LEVELS = {IN_MEMORY: LEVEL.ORT_ENABLE_ALL, WRITING: LEVEL.ORT_ENABLE_EXTENDED,
          READING: LEVEL.ORT_DISABLE_ALL}


def in_memory(cache_dir: Path | None = None) -> OnnxSentenceEncoder:
    """The packaged model as loaded before the cache: optimised at every load."""
    return OnnxSentenceEncoder(
        embeddings.packaged_model_dir(cache_dir), embeddings.DEFAULT_THREADS,
        embeddings.session_config_entries(embeddings.DEFAULT_SPINNING), embeddings.BATCH_SIZE,
    )


def load_cached(cache_dir: Path, **settings: object) -> OnnxSentenceEncoder:
    return encoder_of(load_embedder(cache_dir=cache_dir, query_cache=0, **settings))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def loads(cache_dir: Path) -> dict[str, OnnxSentenceEncoder]:
    """The packaged model loaded the three ways: the first load with a cache writes it, the
    second reads it."""
    written = load_cached(cache_dir)
    return {IN_MEMORY: in_memory(cache_dir), WRITING: written, READING: load_cached(cache_dir)}


def level(encoder: embeddings.Encoder) -> ort.GraphOptimizationLevel:
    return encoder.session.get_session_options().graph_optimization_level


def largest_difference(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape and a.dtype == b.dtype == np.float32
    return float(np.abs(a - b).max())


def batches() -> Iterator[list[str]]:
    """Batches of 1..40 texts of 2-22 tokens (padding; 33..40 cross the batch size of 32),
    then long texts (truncation) alone, beside short ones, and in the second batch."""
    texts = SHORT_AND_MEDIUM * 2
    for size in range(1, 41):
        yield texts[size % len(SHORT_AND_MEDIUM) :][:size]
    yield from ([LONG], [LONG, "a"], ["", "a " * 60, LONG + " more", LONG], texts + [LONG])


def test_long_texts_are_truncated_at_256_tokens(direct: OnnxSentenceEncoder) -> None:
    assert len(LONG.split()) > 256
    assert len(direct.tokenizer.encode(LONG).ids) == 256
    batch = direct.tokenizer.encode_batch(["a", "Fix the failing CI job"])
    assert len(batch[0].ids) == len(batch[1].ids) == 7  # padded to the longest, [PAD] = 0
    assert batch[0].ids[3:] == [0] * 4 and batch[0].attention_mask == [1, 1, 1, 0, 0, 0, 0]


FASTEMBED = "fastembed"


@pytest.fixture(scope="module")
def vectors(
    loads: dict[str, OnnxSentenceEncoder], fastembed_encoder: embeddings.FastEmbedEncoder
) -> dict[str, list[np.ndarray]]:
    """Each load's vectors of batches(), and fastembed's."""
    encoders: dict[str, embeddings.Encoder] = {**loads, FASTEMBED: fastembed_encoder}
    return {how: [encoder.embed(b) for b in batches()] for how, encoder in encoders.items()}


@pytest.mark.parametrize("how", [IN_MEMORY, WRITING, READING])
def test_the_vectors_are_fastembeds_for_every_batch_size(
    how: str, loads: dict[str, OnnxSentenceEncoder], vectors: dict[str, list[np.ndarray]]
) -> None:
    assert level(loads[how]) == LEVELS[how]
    diffs = [largest_difference(*pair) for pair in zip(vectors[how], vectors[FASTEMBED], strict=True)]
    print(f"\nlargest |direct ({how}) - fastembed| over {len(diffs)} batches: {max(diffs)}")
    assert max(diffs) <= 1e-6


@pytest.mark.parametrize("how", [WRITING, READING])
def test_the_cached_model_gives_the_vectors_of_the_model_optimised_in_memory(
    how: str, vectors: dict[str, list[np.ndarray]]
) -> None:
    pairs = list(zip(vectors[how], vectors[IN_MEMORY], strict=True))
    same = all(np.array_equal(*pair) for pair in pairs)
    largest = max(largest_difference(*pair) for pair in pairs)
    print(f"\n{how} vs {IN_MEMORY} over {len(pairs)} batches: identical {same}, largest difference {largest}")
    assert largest <= 1e-6


def test_the_embedders_vectors_are_those_memrl_stored_with_fastembed(
    real_model: Embedder, fastembed_encoder: embeddings.FastEmbedEncoder
) -> None:
    texts = SHORT_AND_MEDIUM
    stored_before = embeddings._normalise(fastembed_encoder.embed(texts))  # the old embed()
    assert largest_difference(real_model.embed(texts), stored_before) <= 1e-6
    assert largest_difference(real_model.embed_query(texts[5])[None], stored_before[5:6]) <= 1e-6


def session_settings(encoder: embeddings.Encoder) -> tuple[int, int, bool, str]:
    """Threads, arena and spinning; the optimisation level depends on how the session was
    made (LEVELS)."""
    options = encoder.session.get_session_options()
    try:
        spin = options.get_session_config_entry(embeddings.SPIN_KEY)
    except RuntimeError:  # not set: ONNX Runtime's default, spinning
        spin = "unset"
    return (options.intra_op_num_threads, options.inter_op_num_threads,
            options.enable_cpu_mem_arena, spin)


@pytest.mark.parametrize(("threads", "spinning", "spin"), [(1, True, "unset"), (2, False, "0")])
def test_threads_and_spinning_reach_the_session(
    threads: int, spinning: bool, spin: str, fastembed_encoder: embeddings.FastEmbedEncoder,
    tmp_path: Path,
) -> None:
    """Whether the session optimises the model while writing the cache or reads it."""
    for how in (WRITING, READING):
        model = load_embedder(threads=threads, spinning=spinning, query_cache=0, cache_dir=tmp_path)
        assert isinstance(model, embeddings.LocalEmbedder)
        assert (model.threads, model.spinning) == (threads, spinning)
        assert session_settings(model.encoder) == (threads, threads, False, spin)
        assert level(model.encoder) == LEVELS[how]
    fastembeds = embeddings.FastEmbedEncoder(embeddings.packaged_model_dir(), threads, spinning)
    assert session_settings(fastembeds) == (threads, threads, False, spin)
    assert level(fastembeds) == LEVELS[IN_MEMORY]


def test_the_default_settings_are_fastembeds(
    direct: OnnxSentenceEncoder, fastembed_encoder: embeddings.FastEmbedEncoder
) -> None:
    assert session_settings(direct) == session_settings(fastembed_encoder)
    assert session_settings(direct)[3] == "0"  # no spinning (DEFAULT_SPINNING)
    assert level(direct) in (LEVELS[WRITING], LEVELS[READING])  # the user cache's


NO_FASTEMBED = """
import sys
from pathlib import Path
import memrl
from memrl import embeddings
packaged = memrl.load_embedder()
explicit_dir = Path(sys.argv[1])
explicit_dir.mkdir()
for name in ("model.onnx", "tokenizer.json"):
    (explicit_dir / name).symlink_to(embeddings.packaged_model_dir() / name)
explicit = memrl.load_embedder(explicit_dir, batch_queries=True)
same = (packaged.embed_query("fix the csv parser") == explicit.embed_query("fix the csv parser")).all()
print(bool(same), sorted(m for m in sys.modules if m.split(".")[0] in
      ("fastembed", "huggingface_hub", "requests", "httpx", "trio")))
"""


def test_loading_the_model_imports_no_fastembed(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", NO_FASTEMBED, str(tmp_path / "model")],
        capture_output=True, text=True, timeout=120, check=True,
    )
    assert done.stdout.split(None, 1) == ["True", "[]\n"]


def entry_of(cache_dir: Path) -> Path:
    return embeddings.optimized_model_cache(embeddings.PACKAGED_MODEL_SHA256, cache_dir).entry


def copy_of_the_cache(cache_dir: Path, target: Path) -> Path:
    """A copy of the module's cache (never damage files a live session has mapped)."""
    shutil.copytree(embeddings.models_cache(cache_dir), embeddings.models_cache(target), symlinks=True)
    return entry_of(target)


def same_vectors(encoder: OnnxSentenceEncoder, loads: dict[str, OnnxSentenceEncoder]) -> bool:
    return np.array_equal(encoder.embed(SHORT_AND_MEDIUM), loads[IN_MEMORY].embed(SHORT_AND_MEDIUM))


def truncate_the_weights(entry: Path) -> None:
    os.truncate(entry / ort_cache.WEIGHTS, 4096)


def flip_a_bit_of_the_weights(entry: Path) -> None:
    with (entry / ort_cache.WEIGHTS).open("r+b") as f:
        f.seek(12_345_678)
        byte = f.read(1)[0]
        f.seek(12_345_678)
        f.write(bytes([byte ^ 1]))


def rewrite_the_sidecar(entry: Path, change: dict[str, object]) -> None:
    sidecar = entry / ort_cache.SIDECAR
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), **change}))


def a_graph_onnxruntime_refuses(entry: Path) -> None:
    """The files match their record, but the graph is no ONNX model."""
    (entry / ort_cache.GRAPH).write_bytes(b"not an onnx model")
    files = {name: ort_cache._describe(entry / name) for name in (ort_cache.GRAPH, ort_cache.WEIGHTS)}
    rewrite_the_sidecar(entry, {"files": files})


def a_key_of_another_onnxruntime(entry: Path) -> None:
    key = json.loads((entry / ort_cache.SIDECAR).read_text())["key"]
    rewrite_the_sidecar(entry, {"key": {**key, "onnxruntime": "0.0.1"}})


def a_sidecar_cut_short(entry: Path) -> None:
    (entry / ort_cache.SIDECAR).write_text('{"key": ')


def no_sidecar(entry: Path) -> None:
    (entry / ort_cache.SIDECAR).unlink()


def a_file_in_its_place(entry: Path) -> None:
    shutil.rmtree(entry)
    entry.write_bytes(b"")


@pytest.mark.parametrize("damage", [
    truncate_the_weights, flip_a_bit_of_the_weights, a_graph_onnxruntime_refuses,
    a_key_of_another_onnxruntime, a_sidecar_cut_short, no_sidecar, a_file_in_its_place,
])
def test_a_damaged_cache_is_replaced(
    damage: Callable[[Path], None], loads: dict[str, OnnxSentenceEncoder], cache_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The load optimises the model as on a first load, the same vectors, and writes the
    entry anew; the next load reads it."""
    entry = copy_of_the_cache(cache_dir, tmp_path)
    pristine = (entry / ort_cache.SIDECAR).read_text()
    damage(entry)
    with caplog.at_level(logging.WARNING, logger="memrl.ort_cache"):
        replaced = load_cached(tmp_path)
    assert f"the optimised model cached in {entry} is unusable" in caplog.text
    assert level(replaced) == LEVELS[WRITING] and same_vectors(replaced, loads)
    assert json.loads((entry / ort_cache.SIDECAR).read_text()) == json.loads(pristine)
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # no temporary left
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="memrl.ort_cache"):
        reread = load_cached(tmp_path)
    assert level(reread) == LEVELS[READING] and same_vectors(reread, loads)
    assert not caplog.records


def test_a_damaged_entry_is_found_after_its_digest_was_recorded(
    loads: dict[str, OnnxSentenceEncoder], cache_dir: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A load that found the entry whole records its files' digests (memrl.file_digests);
    a bit flipped later changes the file's ctime, so the next load hashes it again."""
    monkeypatch.setattr(file_digests, "RACY_SECONDS", -1.0)
    entry = copy_of_the_cache(cache_dir, tmp_path)
    assert level(load_cached(tmp_path)) == LEVELS[READING]
    record = json.loads((embeddings.models_cache(tmp_path) / file_digests.RECORD).read_text())
    assert str(entry / ort_cache.WEIGHTS) in record
    flip_a_bit_of_the_weights(entry)
    with caplog.at_level(logging.WARNING, logger="memrl.ort_cache"):
        replaced = load_cached(tmp_path)
    assert f"the optimised model cached in {entry} is unusable" in caplog.text
    assert level(replaced) == LEVELS[WRITING] and same_vectors(replaced, loads)


def test_an_unwritable_cache_still_loads(
    loads: dict[str, OnnxSentenceEncoder], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = embeddings.optimized_model_cache(embeddings.PACKAGED_MODEL_SHA256, tmp_path).root
    root.parent.mkdir(parents=True)
    root.write_text("a file where the cache directory should be")
    with caplog.at_level(logging.WARNING, logger="memrl.ort_cache"):
        encoder = load_cached(tmp_path)
    assert f"cannot cache the optimised model in {root}" in caplog.text
    assert level(encoder) == LEVELS[IN_MEMORY] and same_vectors(encoder, loads)


def test_an_entry_that_cannot_be_stored_leaves_nothing_behind(
    loads: dict[str, OnnxSentenceEncoder], tmp_path: Path, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object) -> None:
        raise PermissionError("refused")

    monkeypatch.setattr(ort_cache.OptimizedModelCache, "_publish", refuse)
    with caplog.at_level(logging.WARNING, logger="memrl.ort_cache"):
        encoder = load_cached(tmp_path)
    assert f"cannot store the optimised model in {entry_of(tmp_path)} (refused)" in caplog.text
    assert level(encoder) == LEVELS[WRITING] and same_vectors(encoder, loads)
    assert list(entry_of(tmp_path).parent.iterdir()) == []


def test_the_key_names_what_the_optimised_graph_depends_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = embeddings.PACKAGED_MODEL_SHA256
    entry = ort_cache.OptimizedModelCache(tmp_path, sha).entry
    assert entry.name.startswith(sha[:12]) and len(ort_cache.cpu_features()) == 16
    others = {ort_cache.OptimizedModelCache(tmp_path, "0" * 64).entry}
    for target, name, value in [
        (ort, "__version__", "0.0.1"), (ort_cache, "cpu_features", lambda: "another"),
        (ort_cache.platform, "machine", lambda: "riscv64"),
        (ort_cache, "SAVED_LEVEL", LEVEL.ORT_ENABLE_ALL), (ort_cache, "FORMAT", 2),
    ]:
        with monkeypatch.context() as patch:
            patch.setattr(target, name, value)
            others.add(ort_cache.OptimizedModelCache(tmp_path, sha).entry)
    assert len(others) == 6 and entry not in others


def test_an_explicit_model_dir_is_cached_in_the_cache_dir(
    loads: dict[str, OnnxSentenceEncoder], cache_dir: Path, tmp_path: Path
) -> None:
    """Keyed by the weights' sha256 (here the packaged model's), nothing written beside them."""
    directory = tmp_path / "model"
    directory.mkdir()
    for name in ("model.onnx", "tokenizer.json"):
        (directory / name).symlink_to(embeddings.packaged_model_dir(cache_dir) / name)
    encoder = encoder_of(load_embedder(directory, cache_dir=cache_dir, query_cache=0))
    assert level(encoder) == LEVELS[READING] and same_vectors(encoder, loads)
    assert sorted(os.listdir(directory)) == sorted(
        ["model.onnx", "tokenizer.json", *embeddings.SMALL_CONFIG_FILES]
    )


RACE = """
import sys
from pathlib import Path
import memrl
model = memrl.load_embedder(cache_dir=Path(sys.argv[1]), query_cache=0)
sys.stdout.buffer.write(model.embed_query("fix the csv parser in the importer").tobytes())
"""


def test_processes_loading_at_once_store_one_entry(tmp_path: Path) -> None:
    started = [
        subprocess.Popen([sys.executable, "-c", RACE, str(tmp_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    done = [process.communicate(timeout=180) for process in started]
    assert [process.returncode for process in started] == [0, 0, 0], done
    assert all(err == b"" for _, err in done), done
    assert len({out for out, _ in done}) == 1
    entry = entry_of(tmp_path)
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]
    assert level(load_cached(tmp_path)) == LEVELS[READING]
