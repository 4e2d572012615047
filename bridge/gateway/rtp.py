"""Glue between RTP radio-over-IP streams and an endpoint (DESIGN §6, §7).

For each :class:`~adapters.rtp.mapping.ChannelMapping`:

* **RTP in → channel**: an :class:`RtpReceiverDriver` turns the radio side's stream into
  push-to-talk bursts of 20 ms PCM frames at the channel rate (G.711 is decoded and
  resampled from 8 kHz there); ``BurstStart`` → :meth:`TalkSender.start` (floor request at
  the mapping's priority), ``Audio`` → :meth:`TalkSender.send` (Opus, or L16 passthrough),
  ``BurstEnd`` → :meth:`TalkSender.stop` (floor release + burst seal).
* **channel → RTP out**: the endpoint's ``Voice`` events go to the channel's
  :class:`~bridge.audio.talk.ListenMixer`; a :class:`~bridge.audio.talk.PlayoutTicker` ticks every
  mixer every 20 ms, and the frames go to an :class:`RtpSenderDriver` — one RTP burst while
  anybody talks (key-up when the first talker starts, key-down when the last one stops).

Run it::

    gateway = RtpGateway(endpoint, load_gateway_config(cfg["rtp"]))
    await gateway.start()          # binds the inputs, opens the outputs, starts playout
    ...
    await gateway.stop()

By default :meth:`start` consumes ``endpoint.events`` itself. An application with several
consumers of one endpoint (RTP and XMPP adapters, a console) passes ``pump_events=False`` and
calls :meth:`handle_event` for every event it reads; the gateway ignores what is not audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from adapters.rtp.driver import RtpReceiverDriver, RtpSenderDriver
from adapters.rtp.mapping import ChannelMapping, load_gateway_config
from adapters.rtp.stream import Audio, BurstEnd, BurstStart, RtpEvent, RtpReceiver, RtpSender
from bridge.audio.talk import (
    ListenMixer,
    PlayoutFrame,
    PlayoutTicker,
    TalkerStarted,
    TalkerStopped,
    TalkSender,
    VoiceEndpoint,
)
from bridge.endpoint import events as ev

__all__ = ["RtpGateway", "ChannelMapping", "load_gateway_config"]

log = logging.getLogger("crossband.rtp.gateway")


class GatewayEndpoint(VoiceEndpoint, Protocol):
    """What the gateway needs of :class:`bridge.endpoint.endpoint.Endpoint`."""

    device: str
    events: asyncio.Queue[ev.Event]


class _Channel:
    """The live objects of one mapping."""

    def __init__(self, mapping: ChannelMapping, endpoint: GatewayEndpoint) -> None:
        self.mapping = mapping
        self.sender: TalkSender | None = None
        self.rx: RtpReceiverDriver | None = None
        self.mixer: ListenMixer | None = None
        self.tx: RtpSenderDriver | None = None
        self.keyed = False
        if mapping.input is not None:
            self.sender = TalkSender(
                endpoint,
                mapping.channel,
                mapping.rate,
                codec=mapping.codec,
                bitrate=mapping.bitrate,
            )
        if mapping.output is not None:
            self.mixer = ListenMixer(
                mapping.channel,
                mapping.rate,
                mapping.codec,
                self_device=endpoint.device,
                min_delay_ms=mapping.jitter_min_ms,
                max_delay_ms=mapping.jitter_max_ms,
            )

    def on_rtp(self, event: RtpEvent) -> None:
        assert self.sender is not None
        if isinstance(event, BurstStart):
            self.sender.start(self.mapping.priority)
        elif isinstance(event, Audio):
            self.sender.send(event.pcm)
        elif isinstance(event, BurstEnd):
            self.sender.stop()

    def tick(self, now: float) -> None:
        if self.mixer is None or self.tx is None:
            return
        for out in self.mixer.tick(now):
            if isinstance(out, TalkerStarted) and not self.keyed:
                self.keyed = True
                self.tx.start_burst()
            elif isinstance(out, PlayoutFrame) and self.keyed:
                self.tx.send_audio(out.pcm)
            elif isinstance(out, TalkerStopped) and self.keyed and not self.mixer.active:
                self.keyed = False
                self.tx.end_burst()


class RtpGateway:
    """RTP streams ↔ an endpoint's channels, per a list of :class:`ChannelMapping`."""

    def __init__(
        self,
        endpoint: GatewayEndpoint,
        mappings: Sequence[ChannelMapping],
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if len({m.channel for m in mappings}) != len(mappings):
            raise ValueError("each channel may be mapped once")
        self.endpoint = endpoint
        self.channels = {m.channel: _Channel(m, endpoint) for m in mappings}
        self._clock = clock
        self._ticker = PlayoutTicker(self.tick)
        self._pump: asyncio.Task[None] | None = None

    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    async def start(self, *, pump_events: bool = True) -> None:
        """Open every RTP socket and start playout (and, by default, reading endpoint events)."""
        try:
            for ch in self.channels.values():
                m = ch.mapping
                if m.input is not None:
                    ch.rx = RtpReceiverDriver(
                        RtpReceiver(m.input.receiver), m.input.transport, ch.on_rtp
                    )
                    await ch.rx.start()
                if m.output is not None:
                    ch.tx = RtpSenderDriver(RtpSender(m.output.sender), m.output.transport)
                    await ch.tx.start()
        except BaseException:
            await self.stop()
            raise
        self._ticker.start()
        if pump_events:
            self._pump = asyncio.get_running_loop().create_task(self._pump_events())

    def input_address(self, channel: str) -> tuple[str, int]:
        """Where the channel's RTP input listens (useful with ``port: 0``)."""
        rx = self.channels[channel].rx
        if rx is None:
            raise KeyError(f"channel {channel} has no RTP input")
        return rx.local_address

    async def stop(self) -> None:
        """Close every socket; talk bursts in progress are released and sealed."""
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        await self._ticker.stop()
        for ch in self.channels.values():
            if ch.rx is not None:
                ch.rx.close()
                ch.rx = None
            if ch.sender is not None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(ch.sender.aclose(), 5.0)
            if ch.tx is not None:
                if ch.keyed:
                    ch.tx.end_burst()
                    ch.keyed = False
                ch.tx.close()
                ch.tx = None

    def handle_event(self, event: ev.Event) -> None:
        """Feed one endpoint event (audio, floor changes); others are ignored."""
        channel = getattr(event, "channel", None)
        ch = self.channels.get(channel) if isinstance(channel, str) else None
        if ch is None:
            return
        if ch.mixer is not None:
            ch.mixer.handle_event(event, self._now())
        if (
            isinstance(event, ev.FloorEvent)
            and event.event == "revoked"
            and event.device == self.endpoint.device
            and ch.sender is not None
        ):
            ch.sender.revoked()

    def tick(self, now: float) -> None:
        """One 20 ms playout period for every channel (called by the ticker)."""
        for ch in self.channels.values():
            ch.tick(now)

    async def _pump_events(self) -> None:
        while True:
            event = await self.endpoint.events.get()
            try:
                self.handle_event(event)
            except Exception as exc:  # a bad frame must not stop the gateway
                log.error("event=gateway-event-failed error=%s", type(exc).__name__)
