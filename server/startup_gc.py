"""The cyclic garbage collector, paused while `memrl serve` starts, then frozen.

A server's start is mostly imports (the MCP SDK's pydantic models, numpy, ONNX Runtime)
that allocate ~100k long-lived objects and almost no garbage. The collector scans them
again and again meanwhile: measured on the project's 2-core VM (8 alternating runs each),
importing the server and the core took 0.86-1.16 s of CPU with it on, 0.75-0.90 s with it
off. Once the memory is loaded, `gc.freeze()` moves everything the start created into the
permanent generation, so no later collection scans it (a full collection of those objects
takes ~90 ms: a pause a recall would otherwise meet now and then). The start leaves ~850
unreachable objects (measured), which stay.

Only `memrl serve` pauses it (server/entry.py); the memory's loader ends the pause
(server/runtime.py). The core, the other commands and in-process servers keep the default
collector.
"""

from __future__ import annotations

import gc
import logging
import threading

log = logging.getLogger(__name__)
_paused = False
_lock = threading.Lock()


def pause() -> None:
    """Pause collection for the start (the first thing `memrl serve` does)."""
    global _paused
    with _lock:
        if gc.isenabled():
            gc.disable()
            _paused = True


def started() -> None:
    """The start is over: freeze what it created and collect as usual from here on. Does
    nothing unless `pause()` paused the collector (so in-process servers in tests and the
    bench keep their own)."""
    global _paused
    with _lock:
        if not _paused:
            return
        _paused = False
        gc.freeze()
        gc.enable()
    log.debug("start over: %d objects frozen, garbage collection on", gc.get_freeze_count())
