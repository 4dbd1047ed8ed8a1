"""Namespace statistics as a person reads them: with the similarity gate recall really uses."""

from __future__ import annotations

from typing import Any

from memrl import Memory


def namespace_stats(memory: Memory, namespace: str | None = None) -> list[dict[str, Any]]:
    """`memory.stats()` with `delta` set to the gate a recall applies now, and where it comes
    from: a --delta override, the namespace's calibration, or the default a namespace uses
    until it has enough memories to calibrate (the store keeps null there)."""
    cfg = memory.config
    rows = memory.stats(namespace)
    for row in rows:
        if cfg.delta is not None:
            row["delta"], row["delta_source"] = cfg.delta, "set by --delta"
        elif row["delta"] is not None:
            row["delta_source"] = "calibrated on this namespace's memories"
        else:
            row["delta"] = cfg.delta_small
            row["delta_source"] = (
                f"default until the namespace has {cfg.calibration_min} memories"
            )
    return rows
