"""The asyncio driver of a channel's :class:`~bridge.gateway.positions.PositionOutbox`.

:meth:`PositionSender.offer` queues a position from the adapter (never blocks, never raises);
one task takes what the outbox says is due and sends each as a signed ``data`` message
(:meth:`GatewayEndpoint.send_text`), at most ``max_in_flight`` awaiting the relay's acceptance
at once, and sleeps until the outbox's timer or the next offer. Positions have their own task
and queue, apart from texts and emergencies, so a flood of them delays neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from adapters.base import Position
from bridge.gateway.positions import PositionOutbox, PositionPacing, encode_position
from crypto.errors import CrossbandError

if TYPE_CHECKING:
    from bridge.gateway.channel import GatewayEndpoint

__all__ = ["DATA_KIND", "PositionSender"]

log = logging.getLogger("crossband.gateway")
DATA_KIND = "data"  # crypto.messages.MESSAGE_KINDS
MIN_WAIT = 0.001  # seconds: the shortest sleep, so that float rounding cannot spin the loop


class PositionSender:
    """Positions of one channel, paced by a :class:`PositionOutbox`, out as data messages."""

    def __init__(
        self,
        endpoint: GatewayEndpoint,
        channel: str,
        pacing: PositionPacing | None = None,
        *,
        clock: Callable[[], float] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.pacing = pacing or PositionPacing()
        self.outbox = PositionOutbox(self.pacing)
        self.sent = 0  # accepted by the relay
        self.errors = 0  # send_text failed
        self._endpoint = endpoint
        self._channel = channel
        self._clock = clock
        self._wall = wall
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    def offer(self, pos: Position) -> None:
        """Queue ``pos`` (coalesced per uid, dropped if stale or the outbox is full)."""
        self.outbox.offer(pos, self._wall(), self._now())
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            free = self.pacing.max_in_flight - len(self._inflight)
            timeout: float | None = None
            if free > 0:
                now = self._now()
                for pos in self.outbox.due(self._wall(), now, free):
                    task = loop.create_task(self._send(pos))
                    self._inflight.add(task)
                timer = self.outbox.get_timer()
                if timer is not None and len(self._inflight) < self.pacing.max_in_flight:
                    timeout = max(MIN_WAIT, timer - now)
            # a timer that sets the event, not asyncio.wait_for: on 3.11 that can swallow the
            # cancellation of aclose() when the event is set at the same moment
            timer_handle = loop.call_later(timeout, self._wake.set) if timeout else None
            try:
                await self._wake.wait()
            finally:
                if timer_handle is not None:
                    timer_handle.cancel()

    async def _send(self, pos: Position) -> None:
        try:
            await self._endpoint.send_text(self._channel, encode_position(pos), kind=DATA_KIND)
        except (CrossbandError, KeyError, TimeoutError, OSError) as exc:
            self.errors += 1
            if self.errors & (self.errors - 1) == 0:  # the 1st, 2nd, 4th, 8th…: no log flood
                log.warning(
                    "event=position-send-failed channel=%s error=%s code=%s count=%d",
                    self._channel,
                    type(exc).__name__,
                    getattr(exc, "code", ""),
                    self.errors,
                )
        else:
            self.sent += 1
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._inflight.discard(task)  # type: ignore[arg-type]
            self._wake.set()

    async def aclose(self) -> None:
        """Stop sending; positions still waiting are dropped, those in flight cancelled."""
        tasks = [t for t in (self._task, *self._inflight) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        self._inflight.clear()
