"""The playout clock: the thin asyncio driver that ticks the sans-IO mixers every 5 ms.

The mixers keep their own 20 ms frame periods (:mod:`bridge.audio.mixer`, "the channel's
frame clock"); ticking them at a quarter of a frame lets each burst's periods start within
5 ms of its first frame being due, instead of at a fixed phase up to 20 ms later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from bridge.audio.formats import FRAME

__all__ = ["TICK", "PlayoutTicker"]

TICK = FRAME / 4  # seconds between ticks: a mixer's frame periods start within this

log = logging.getLogger("crossband.audio")


class PlayoutTicker:
    """Calls ``tick(now)`` every ``period`` seconds of the loop clock, without drift.

    The schedule is absolute (start + k·period); if the loop stalls for more than a few
    periods the ticker catches up at most ``max_catch_up`` ticks and then resynchronises, so a
    stall never produces a flood of frames.
    """

    def __init__(
        self, tick: Callable[[float], None], period: float = TICK, max_catch_up: int = 3
    ) -> None:
        self._tick = tick
        self._period = period
        self._max_catch_up = max_catch_up
        self._task: asyncio.Task[None] | None = None
        self.errors = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            now = loop.time()
            ticks = 0
            while due <= now and ticks < self._max_catch_up:
                try:
                    self._tick(now)
                except Exception as exc:  # a consumer bug must not stop playout
                    self.errors += 1
                    log.error("event=playout-tick-failed error=%s", type(exc).__name__)
                due += self._period
                ticks += 1
            if due <= now:  # stalled for longer than max_catch_up periods
                due = now + self._period
            await asyncio.sleep(max(due - loop.time(), 0.0))
