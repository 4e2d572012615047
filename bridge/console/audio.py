"""The console's audio path: the browser's microphone into a channel, the gateway's way.

Each channel the console's device is in gets a :class:`BrowserAdapter` (an ``adapters.base``
adapter whose native side is the browser) bound to it by its own
:class:`~bridge.gateway.Gateway` (channels come and go with commits, a gateway's bindings are
fixed, so one gateway per channel). Push-to-talk and the microphone's PCM become the adapter
events ``TalkStart`` / ``Pcm`` / ``TalkEnd``; the gateway turns them into a floor request, Opus
frames and the floor release with its signed burst seal, exactly as for a radio.

The browser sends 16-bit little-endian mono PCM at :data:`RATE`, 20 ms (:data:`FRAME_BYTES`)
per WebSocket binary message, only while its push-to-talk is held. Frames of another size are
counted and dropped.

The other way, the gateway's playout (the channel's talkers decoded, mixed and re-timed by its
:class:`~bridge.audio.mixer.ListenMixer`) reaches the adapter's ``play`` every 20 ms while
somebody talks; :class:`ConsoleAudio` hands each frame to its listeners (each browser's socket),
framed by :func:`listen_frame`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from adapters.base import Adapter, EventSink, Pcm, TalkEnd, TalkStart, pcm_frame_bytes
from bridge.endpoint import events as ev
from bridge.gateway import Binding, Gateway, GatewayEndpoint

__all__ = [
    "FRAME_BYTES",
    "RATE",
    "AudioStats",
    "BrowserAdapter",
    "ConsoleAudio",
    "listen_frame",
]

log = logging.getLogger("crossband.console")
RATE = 16000
FRAME_BYTES = pcm_frame_bytes(RATE)
SOURCE = "console"


class BrowserAdapter(Adapter):
    """One channel's browser side (see the module docstring)."""

    rate = RATE
    yields_audio = True
    plays_audio = True

    def __init__(self, channel: str, on_play: Callable[[str, bytes], None]) -> None:
        self.channel = channel
        self._sink: EventSink | None = None
        self._on_play = on_play
        self.talking = False

    def play(self, pcm: bytes, talkers: tuple[str, ...], *, at: float | None = None) -> None:
        self._on_play(self.channel, pcm)

    async def start(self, sink: EventSink) -> None:
        self._sink = sink

    async def stop(self) -> None:
        self.release()
        self._sink = None

    def press(self, priority: str = "normal") -> None:
        if self._sink is not None and not self.talking:
            self.talking = True
            self._sink(TalkStart(SOURCE, "high" if priority == "high" else "normal"))

    def frame(self, pcm: bytes) -> None:
        if self._sink is not None and self.talking:
            self._sink(Pcm(SOURCE, pcm, RATE))

    def release(self) -> None:
        if self._sink is not None and self.talking:
            self.talking = False
            self._sink(TalkEnd(SOURCE))


@dataclass
class AudioStats:
    frames_in: int = 0  # microphone frames taken
    frames_refused: int = 0  # not 20 ms of 16-bit PCM at RATE, or no channel held
    frames_out: int = 0  # playout frames handed to listeners (once per listener)


def listen_frame(channel: str, pcm: bytes) -> bytes:
    """A playout frame for a browser: the channel's name (2-byte big-endian length, UTF-8),
    then 20 ms of 16-bit little-endian PCM at :data:`RATE`."""
    name = channel.encode()
    return len(name).to_bytes(2, "big") + name + pcm


class ConsoleAudio:
    """A :class:`BrowserAdapter` and its gateway per channel of ``endpoint``."""

    def __init__(self, endpoint: GatewayEndpoint) -> None:
        self.endpoint = endpoint
        self.adapters: dict[str, BrowserAdapter] = {}
        self.gateways: dict[str, Gateway] = {}
        self.stats = AudioStats()
        self.listeners: set[Callable[[str, bytes], None]] = set()

    async def ensure(self, channel: str) -> BrowserAdapter:
        """The channel's adapter, its gateway started on first use."""
        adapter = self.adapters.get(channel)
        if adapter is None:
            adapter = self.adapters[channel] = BrowserAdapter(channel, self._play)
            gateway = self.gateways[channel] = Gateway(self.endpoint, [Binding(channel, adapter)])
            await gateway.start(pump_events=False)
        return adapter

    def _play(self, channel: str, pcm: bytes) -> None:
        for listener in list(self.listeners):
            self.stats.frames_out += 1
            listener(channel, pcm)

    def handle_event(self, event: ev.Event) -> None:
        channel = getattr(event, "channel", None)
        gateway = self.gateways.get(channel) if isinstance(channel, str) else None
        if gateway is not None:
            gateway.handle_event(event)

    def frame(self, channel: str | None, pcm: bytes) -> None:
        adapter = self.adapters.get(channel) if channel is not None else None
        if adapter is None or not adapter.talking or len(pcm) != FRAME_BYTES:
            self.stats.frames_refused += 1
            return
        self.stats.frames_in += 1
        adapter.frame(pcm)

    async def stop(self) -> None:
        for gateway in self.gateways.values():
            await gateway.stop()  # releases and seals a burst in progress
        self.gateways.clear()
        self.adapters.clear()
