"""How long this test process was not scheduled: a watcher on the event loop.

Voice tests run the gateways, the collector and the link rigs in the test process. When that
process is not scheduled for a while (a full garbage collection, a loaded CI host), its RTP
output stops for that time: a gap the bridge did not make. :class:`LoopStalls` wakes every
``tick`` seconds and records each wake-up that came more than ``threshold`` late, so a test can
tell a gap of its own host from a fault: a gap in the output is excused only by a stall of at
least its length, and every other check still holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

__all__ = ["LoopStalls"]


@dataclass
class LoopStalls:
    tick: float = 0.005
    threshold: float = 0.04
    stalls: list[tuple[float, float]] = field(default_factory=list)  # (loop time, seconds)
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopStalls:
        self._task = asyncio.get_running_loop().create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.tick
            await asyncio.sleep(self.tick)
            late = loop.time() - due
            if late > self.threshold:
                self.stalls.append((due, late))

    def longer_than(self, seconds: float) -> int:
        """How many stalls lasted at least ``seconds``."""
        return sum(1 for _t, d in self.stalls if d >= seconds)

    @property
    def longest(self) -> float:
        return max((d for _t, d in self.stalls), default=0.0)
