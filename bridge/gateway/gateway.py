"""The gateway's asyncio driver: adapters ↔ an endpoint's channels, one binding each.

Run it::

    gateway = Gateway(endpoint, [Binding("shiprider-7", adapter, ChannelAudio())])
    await gateway.start()          # starts every adapter and the 20 ms playout ticker
    ...
    await gateway.stop()

By default :meth:`Gateway.start` consumes ``endpoint.events`` itself. An application with
several consumers of one endpoint (a console, a logger) passes ``pump_events=False`` and calls
:meth:`Gateway.handle_event` for every event it reads; events of channels without a binding
are ignored. Which adapter serves which channel is decided above (``bridge.cli``): this module
knows adapters only through ``adapters.base``. Positions travel as signed ``data`` messages,
paced per binding (``Binding.positions``, :mod:`bridge.gateway.positions`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from adapters.base import Adapter
from bridge.audio.playout import PlayoutTicker
from bridge.endpoint import events as ev
from bridge.gateway.binding import Binding
from bridge.gateway.channel import SEAL_GRACE, ChannelGateway, GatewayEndpoint

__all__ = ["Gateway"]

log = logging.getLogger("crossband.gateway")


class Gateway:
    """Adapters ↔ an endpoint's channels, per a list of :class:`Binding` (one per channel)."""

    def __init__(
        self,
        endpoint: GatewayEndpoint,
        bindings: Sequence[Binding],
        *,
        clock: Callable[[], float] | None = None,
        seal_grace: float = SEAL_GRACE,
    ) -> None:
        if len({b.channel for b in bindings}) != len(bindings):
            raise ValueError("each channel may be bound once")
        if len({id(b.adapter) for b in bindings}) != len(bindings):
            raise ValueError("an adapter serves one channel")
        self.endpoint = endpoint
        self.channels = {
            b.channel: ChannelGateway(endpoint, b, seal_grace=seal_grace) for b in bindings
        }
        self._clock = clock
        self._ticker = PlayoutTicker(self.tick)
        self._pump: asyncio.Task[None] | None = None
        self._started: list[ChannelGateway] = []

    def adapter(self, channel: str) -> Adapter:
        """The adapter bound to ``channel``."""
        return self.channels[channel].adapter

    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    async def start(self, *, pump_events: bool = True) -> None:
        """Start every adapter and playout (and, by default, reading endpoint events)."""
        try:
            for ch in self.channels.values():
                await ch.start()
                self._started.append(ch)
        except BaseException:
            await self.stop()
            raise
        self._ticker.start()
        if pump_events:
            self._pump = asyncio.get_running_loop().create_task(self._pump_events())

    async def stop(self) -> None:
        """Stop every adapter; talk bursts in progress are released and sealed."""
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        await self._ticker.stop()
        while self._started:
            ch = self._started.pop()
            try:
                await ch.aclose()
            except Exception as exc:  # one adapter failing to close must not keep the others
                log.error("event=adapter-stop-failed channel=%s error=%s", ch.channel, type(exc))

    def handle_event(self, event: ev.Event) -> None:
        """Feed one endpoint event; those of channels without a binding are ignored."""
        channel = getattr(event, "channel", None)
        ch = self.channels.get(channel) if isinstance(channel, str) else None
        if ch is None:
            return
        try:
            ch.handle_event(event, self._now())
        except Exception as exc:  # an adapter bug must not stop the other channels
            ch.stats.adapter_errors += 1
            log.error("event=gateway-event-failed channel=%s error=%s", ch.channel, type(exc))

    def tick(self, now: float) -> None:
        """One 20 ms playout period for every channel (called by the ticker)."""
        for ch in self.channels.values():
            try:
                ch.tick(now)
            except Exception as exc:  # an adapter bug must not stop the other channels
                ch.stats.adapter_errors += 1
                log.error("event=gateway-tick-failed channel=%s error=%s", ch.channel, type(exc))

    async def _pump_events(self) -> None:
        while True:
            self.handle_event(await self.endpoint.events.get())
