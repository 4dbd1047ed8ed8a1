"""The sentence model run with ONNX Runtime and tokenizers directly, without fastembed.

`OnnxSentenceEncoder` loads a model directory in fastembed's layout (model.onnx,
tokenizer.json, tokenizer_config.json, special_tokens_map.json, config.json) and computes
what fastembed's `TextEmbedding("sentence-transformers/all-MiniLM-L6-v2")` computes (its
`PooledNormalizedEmbedding`, fastembed 0.9): the tokenizer set up as fastembed's
`load_tokenizer` does it, the same session options and inputs, mean pooling of the first
output over the attention mask, then L2 normalisation, both in float64, cast to float32.
Every stored vector was made by fastembed, so the two must agree;
tests/test_core_onnx_embedder.py compares them on the packaged model. Given a cache
(memrl/ort_cache.py), the session comes from ONNX Runtime's optimised model saved on disk
instead of optimising the model at every load; the vectors are the same, tested too.

Why: `import fastembed` runs its package `__init__`, which imports the Hugging Face Hub
client, requests, httpcore and trio for downloads memrl's packaged model never makes:
about half the time of loading the model (docs/PERFORMANCE.md, "Cold start"). fastembed
stays for the `allow_download=True` fallback only (memrl/embeddings.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import AddedToken, Tokenizer

from .ort_cache import OptimizedModelCache, load_session


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    with path.open() as f:
        return json.load(f)  # type: ignore[no-any-return]


def _max_length(value: Any) -> int | None:
    """A usable truncation limit, or None (transformers writes 1e30 for "unknown")."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= sys.maxsize:
        return None
    return value


def _special_tokens(tokens_map: dict[str, Any]) -> Iterator[str | dict[str, Any]]:
    for value in tokens_map.values():
        if isinstance(value, list):
            yield from value
        else:
            yield value


def load_tokenizer(model_dir: Path) -> Tokenizer:
    """tokenizer.json with truncation at the stricter of tokenizer_config.json's
    `model_max_length` and `max_length`, the tokens of special_tokens_map.json added, and
    padding to the longest text of a batch with the pad token of the serialized padding (or
    tokenizer_config.json) and its id (serialized padding, config.json, the vocabulary)."""
    if not (model_dir / "tokenizer_config.json").exists():
        raise ValueError(f"Could not find tokenizer_config.json in {model_dir}")
    config = _read_json(model_dir / "tokenizer_config.json")
    limits = [n for n in map(_max_length, (config.get("model_max_length"), config.get("max_length")))
              if n is not None]
    if not limits:
        raise ValueError(f"no positive model_max_length or max_length in {model_dir}/tokenizer_config.json")
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    truncation = tokenizer.truncation or {}
    tokenizer.enable_truncation(
        max_length=min(limits),
        direction=config.get("truncation_side") or truncation.get("direction", "right"),
    )
    for token in _special_tokens(_read_json(model_dir / "special_tokens_map.json")):
        if isinstance(token, str):
            tokenizer.add_special_tokens([token])
        elif isinstance(token, dict):
            tokenizer.add_special_tokens([AddedToken(**token)])
    padding = tokenizer.padding or {}
    pad_token = padding.get("pad_token") or config.get("pad_token")
    if pad_token is None:
        raise ValueError(f"Could not find a pad token for {model_dir}")
    pad_id = padding.get("pad_id", _read_json(model_dir / "config.json").get("pad_token_id"))
    if pad_id is None:
        pad_id = tokenizer.token_to_id(pad_token)
    if pad_id is None:
        raise ValueError(f"Could not resolve an id for the pad token {pad_token!r} in {model_dir}")
    tokenizer.enable_padding(
        direction=config.get("padding_side") or padding.get("direction", "right"),
        pad_id=pad_id,
        pad_type_id=padding.get("pad_type_id", 0),
        pad_token=pad_token,
        pad_to_multiple_of=padding.get("pad_to_multiple_of"),
        length=None,
    )
    return tokenizer


def session_options(threads: int | None, config_entries: dict[str, str]) -> ort.SessionOptions:
    """fastembed's options (all graph optimizations; `threads` intra- and inter-op, None:
    ONNX Runtime's default), no CPU memory arena (it would keep the peak of every batch for
    the life of the process), and `config_entries`."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = threads
    options.enable_cpu_mem_arena = False
    for key, value in config_entries.items():
        options.add_session_config_entry(key, value)
    return options


def mean_pooled_unit_vectors(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """fastembed's mean pooling over the attention mask and L2 normalisation, in float64,
    returned in the dtype of `hidden` (batch, tokens, dim)."""
    sums = np.sum(hidden, axis=1, where=attention_mask[:, :, np.newaxis].astype(bool), dtype=np.float64)
    pooled = sums / np.maximum(np.sum(attention_mask, axis=1, keepdims=True), 1e-9)
    norms = np.maximum(np.linalg.norm(pooled, ord=2, axis=1, keepdims=True), 1e-12)
    return (pooled / norms).astype(hidden.dtype, copy=False)


class OnnxSentenceEncoder:
    """Texts -> unit vectors of the model in `model_dir`, `batch_size` texts per ONNX run.
    memrl.embeddings.LocalEmbedder runs one call at a time (a lock keeps RSS flat)."""

    def __init__(
        self,
        model_dir: Path,
        threads: int | None,
        config_entries: dict[str, str],
        batch_size: int,
        cache: OptimizedModelCache | None = None,
    ) -> None:
        """`cache`: where ONNX Runtime's optimised model is kept (memrl.ort_cache); None
        optimises the model in memory at every load."""
        model = model_dir / "model.onnx"
        if cache is None:
            self.session = load_session(model, session_options(threads, config_entries))
        else:
            self.session = cache.session(model, lambda: session_options(threads, config_entries))
        self.tokenizer = load_tokenizer(model_dir)
        self.batch_size = batch_size
        self._inputs = {node.name for node in self.session.get_inputs()}

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.vstack([
            self._embed_batch(texts[start : start + self.batch_size])
            for start in range(0, len(texts), self.batch_size)
        ])

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encoded = self.tokenizer.encode_batch(texts)
        input_ids = np.array([e.ids for e in encoded], dtype=np.int64)
        attention_mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feed = {"input_ids": input_ids}
        if "attention_mask" in self._inputs:
            feed["attention_mask"] = attention_mask
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        hidden = self.session.run(None, feed)[0]
        return mean_pooled_unit_vectors(hidden, attention_mask)
