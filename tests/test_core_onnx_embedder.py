"""The packaged model on ONNX Runtime directly (memrl/onnx_embedder.py) gives fastembed's
vectors, takes the threads and spinning settings, and never imports fastembed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from memrl import Embedder, embeddings, load_embedder
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


@pytest.fixture(scope="module")
def direct(real_model: Embedder) -> OnnxSentenceEncoder:
    assert isinstance(real_model, embeddings.LocalEmbedder)
    assert isinstance(real_model.encoder, OnnxSentenceEncoder)
    return real_model.encoder


def largest_difference(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape and a.dtype == b.dtype == np.float32
    return float(np.abs(a - b).max())


def test_long_texts_are_truncated_at_256_tokens(direct: OnnxSentenceEncoder) -> None:
    assert len(LONG.split()) > 256
    assert len(direct.tokenizer.encode(LONG).ids) == 256
    batch = direct.tokenizer.encode_batch(["a", "Fix the failing CI job"])
    assert len(batch[0].ids) == len(batch[1].ids) == 7  # padded to the longest, [PAD] = 0
    assert batch[0].ids[3:] == [0] * 4 and batch[0].attention_mask == [1, 1, 1, 0, 0, 0, 0]


def test_the_vectors_are_fastembeds_for_every_batch_size(
    direct: OnnxSentenceEncoder, fastembed_encoder: embeddings.FastEmbedEncoder
) -> None:
    """Batches of 1..40 texts of 2-22 tokens (padding; 33..40 cross the batch size of 32),
    then long texts (truncation) alone, beside short ones, and in the second batch."""
    texts = SHORT_AND_MEDIUM * 2
    diffs = []
    for size in range(1, 41):
        window = texts[size % len(SHORT_AND_MEDIUM) :][:size]
        diffs.append(largest_difference(direct.embed(window), fastembed_encoder.embed(window)))
    for window in ([LONG], [LONG, "a"], ["", "a " * 60, LONG + " more", LONG], texts + [LONG]):
        diffs.append(largest_difference(direct.embed(window), fastembed_encoder.embed(window)))
    print(f"\nlargest |direct - fastembed| over {len(diffs)} batches: {max(diffs)}")
    assert max(diffs) <= 1e-6


def test_the_embedders_vectors_are_those_memrl_stored_with_fastembed(
    real_model: Embedder, fastembed_encoder: embeddings.FastEmbedEncoder
) -> None:
    texts = SHORT_AND_MEDIUM
    stored_before = embeddings._normalise(fastembed_encoder.embed(texts))  # the old embed()
    assert largest_difference(real_model.embed(texts), stored_before) <= 1e-6
    assert largest_difference(real_model.embed_query(texts[5])[None], stored_before[5:6]) <= 1e-6


def session_settings(encoder: embeddings.Encoder) -> tuple[int, int, bool, str, str]:
    options = encoder.session.get_session_options()
    try:
        spin = options.get_session_config_entry(embeddings.SPIN_KEY)
    except RuntimeError:  # not set: ONNX Runtime's default, spinning
        spin = "unset"
    return (options.intra_op_num_threads, options.inter_op_num_threads,
            options.enable_cpu_mem_arena, str(options.graph_optimization_level), spin)


@pytest.mark.parametrize(("threads", "spinning", "spin"), [(1, True, "unset"), (2, False, "0")])
def test_threads_and_spinning_reach_the_session(
    threads: int, spinning: bool, spin: str, fastembed_encoder: embeddings.FastEmbedEncoder
) -> None:
    model = load_embedder(threads=threads, spinning=spinning, query_cache=0)
    assert isinstance(model, embeddings.LocalEmbedder)
    assert (model.threads, model.spinning) == (threads, spinning)
    expected = (threads, threads, False, "GraphOptimizationLevel.ORT_ENABLE_ALL", spin)
    assert session_settings(model.encoder) == expected
    fastembeds = embeddings.FastEmbedEncoder(embeddings.packaged_model_dir(), threads, spinning)
    assert session_settings(fastembeds) == expected


def test_the_default_settings_are_fastembeds(
    direct: OnnxSentenceEncoder, fastembed_encoder: embeddings.FastEmbedEncoder
) -> None:
    assert session_settings(direct) == session_settings(fastembed_encoder)
    assert session_settings(direct)[4] == "0"  # no spinning (DEFAULT_SPINNING)


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
