"""The similarity gate delta, calibrated per namespace from its stored intents.

The paper set delta per data set to the top-20% quantile of pairwise task similarity,
which depends on the embedding model. Here it is recomputed per namespace as the
namespace grows (every 25% growth), from up to SAMPLE of its newest intent vectors, and
never drops below a floor; a namespace with too few memories uses a fixed small-namespace
value until it has enough to calibrate.
"""

from __future__ import annotations

import numpy as np

from .config import MemoryConfig

SAMPLE = 1_000
GROWTH = 1.25


def pairwise_quantile(vectors: np.ndarray, quantile: float) -> float:
    """The `quantile` of cosine similarity over all distinct pairs of unit vectors."""
    n = len(vectors)
    if n < 2:
        raise ValueError("need at least two vectors")
    sims = vectors @ vectors.T
    upper = sims[np.triu_indices(n, k=1)]
    return float(np.quantile(upper, quantile))


def gate(vectors: np.ndarray, config: MemoryConfig) -> float:
    """delta for a namespace whose intents are `vectors`."""
    if len(vectors) < max(2, config.calibration_min):
        return config.delta_small
    return max(config.delta_floor, pairwise_quantile(vectors, config.calibration_quantile))


def due(count: int, calibrated_at_count: int, config: MemoryConfig) -> bool:
    """Whether a namespace of `count` memories, last calibrated at `calibrated_at_count`, needs it again."""
    if count < config.calibration_min:
        return False
    return calibrated_at_count < config.calibration_min or count >= calibrated_at_count * GROWTH
