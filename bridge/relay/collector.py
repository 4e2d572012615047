"""Keeping the garbage collector's full collections off the voice path.

A full collection walks every object the collector tracks: with a few thousand sessions that
is a pause of 30-400 ms for every channel's voice (measured: docs/benchmarks.md). What lives
as long as a session (its connection, session, credential, buckets) is frozen
(:func:`gc.freeze`, O(1)) a moment after each batch of authentications, so collections walk
only what is young. The price: what froze with a session that later ends is only reclaimed,
when it is cyclic, by one full collection every :data:`THAW_AFTER` disconnects.
"""

from __future__ import annotations

import asyncio
import gc

from bridge.relay.metrics import Metrics

FREEZE_DELAY = 1.0  # seconds after an authentication before live objects are frozen (a batch)
THAW_AFTER = 1000  # disconnects after which one full collection reclaims what froze with them


class Collector:
    def __init__(self, loop: asyncio.AbstractEventLoop, metrics: Metrics) -> None:
        self._loop = loop
        self._metrics = metrics
        self._pending: asyncio.TimerHandle | None = None
        self._gone = 0  # disconnects since the last full collection

    def start(self) -> None:
        """Everything built at start-up lives as long as the relay."""
        gc.collect()
        self._freeze()

    def authenticated(self) -> None:
        if self._pending is None:
            self._pending = self._loop.call_later(FREEZE_DELAY, self._freeze)

    def disconnected(self) -> None:
        self._gone += 1
        if self._gone >= THAW_AFTER:
            self._gone = 0
            gc.unfreeze()
            gc.collect()
            self._freeze()

    def stop(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def _freeze(self) -> None:
        self._pending = None
        gc.freeze()
        self._metrics.c["gc_freezes"] += 1
