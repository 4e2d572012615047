"""One channel's outgoing talk bursts: 20 ms PCM frames → Opus (or L16/G.711) → the endpoint.

:class:`TalkSender` turns one push-to-talk burst into voice frames: ``start(priority)`` asks
for the floor (:meth:`Endpoint.start_burst`) in a background task, ``send(pcm)`` encodes each
frame and hands it to :meth:`Endpoint.send_voice`, and ``stop()`` releases the floor and
sends the signed burst seal (:meth:`Endpoint.end_burst`). Frames that arrive before the floor
answers are held (at most ``max_pending``; the oldest go first) and sent as soon as the floor
is granted, or dropped and counted if it is denied. A burst's release always goes out before
the next burst's floor request. Codec and bit rate: :mod:`bridge.audio.formats`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from adapters.codecs.opus import OpusEncoder
from adapters.codecs.pcm import frame_samples
from bridge.audio.formats import DEFAULT_BITRATE, ChannelCodec, check_format, encode_passthrough
from crypto.errors import CrossbandError

__all__ = ["TalkSender", "TalkSenderStats", "VoiceEndpoint"]

log = logging.getLogger("crossband.audio")


class VoiceEndpoint(Protocol):
    """What the audio pipeline needs of :class:`bridge.endpoint.endpoint.Endpoint`."""

    async def start_burst(self, ch: str, priority: str = "normal", timeout: float = 5.0) -> bool:
        """Request the floor; True once granted."""

    def send_voice(self, ch: str, payload: bytes) -> None:
        """Encrypt and send one voice frame."""

    async def end_burst(self, ch: str) -> object:
        """Release the floor and send the burst seal."""


@dataclass(slots=True)
class TalkSenderStats:
    bursts: int = 0
    granted: int = 0
    denied: int = 0
    sent: int = 0
    dropped_denied: int = 0  # frames of bursts the floor refused (or revoked)
    dropped_overflow: int = 0  # frames pushed out of the pre-grant buffer
    dropped_idle: int = 0  # frames sent outside start()/stop()
    send_errors: int = 0


class _Burst:
    __slots__ = ("priority", "pending", "granted", "stopped")

    def __init__(self, priority: str, max_pending: int) -> None:
        self.priority = priority
        self.pending: deque[bytes] = deque(maxlen=max_pending)
        self.granted: bool | None = None  # None: the floor has not answered yet
        self.stopped = asyncio.Event()


class TalkSender:
    """One channel's outgoing talk bursts (see the module docstring)."""

    def __init__(
        self,
        endpoint: VoiceEndpoint,
        channel: str,
        rate: int = 16000,
        *,
        codec: ChannelCodec = "opus",
        bitrate: int = DEFAULT_BITRATE,
        complexity: int = 10,
        expected_loss_pct: int = 5,
        max_pending: int = 10,
        floor_timeout: float = 5.0,
        on_denied: Callable[[], None] | None = None,
    ) -> None:
        """``on_denied``: called when the floor refuses a burst or takes it back."""
        check_format(rate, codec)
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.channel = channel
        self.rate = rate
        self.codec = codec
        self.stats = TalkSenderStats()
        self._endpoint = endpoint
        self._frame_bytes = 2 * frame_samples(rate)
        self._encoder = (
            OpusEncoder(rate, bitrate, True, expected_loss_pct, complexity)
            if codec == "opus"
            else None
        )
        self._max_pending = max_pending
        self._floor_timeout = floor_timeout
        self._burst: _Burst | None = None
        self._task: asyncio.Task[None] | None = None
        self._on_denied = on_denied

    @property
    def state(self) -> Literal["idle", "requesting", "talking", "denied"]:
        b = self._burst
        if b is None:
            return "idle"
        return "requesting" if b.granted is None else "talking" if b.granted else "denied"

    def start(self, priority: str = "normal") -> None:
        """Key up: request the floor (the answer comes in the background)."""
        if self._burst is not None:
            self.stop()
        burst = self._burst = _Burst(priority, self._max_pending)
        self.stats.bursts += 1
        self._task = asyncio.get_running_loop().create_task(self._run(burst, self._task))

    def send(self, pcm: bytes) -> None:
        """One 20 ms frame of PCM at ``rate``."""
        if len(pcm) != self._frame_bytes:
            raise ValueError(f"TalkSender takes 20 ms frames ({self._frame_bytes} bytes)")
        b = self._burst
        if b is None:
            self.stats.dropped_idle += 1
        elif b.granted is None:
            if len(b.pending) == b.pending.maxlen:
                self.stats.dropped_overflow += 1
            b.pending.append(pcm)
        elif b.granted:
            self._send_now(pcm)
        else:
            self.stats.dropped_denied += 1

    def stop(self) -> None:
        """Key down: release the floor and seal the burst (in the background)."""
        if self._burst is not None:
            self._burst.stopped.set()
            self._burst = None

    def revoked(self) -> None:
        """The relay took the floor away: drop the rest of this burst."""
        if self._burst is not None and self._burst.granted:
            self._burst.granted = False
            self._tell_denied()

    def _tell_denied(self) -> None:
        if self._on_denied is not None:
            try:
                self._on_denied()
            except Exception as exc:  # a consumer bug must not stop the channel's voice
                log.error("event=on-denied-failed channel=%s error=%s", self.channel, type(exc))

    async def drain(self) -> None:
        """Wait until the last burst's floor release and seal have been sent."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def aclose(self) -> None:
        self.stop()
        await self.drain()

    def _send_now(self, pcm: bytes) -> None:
        payload = (
            self._encoder.encode(pcm) if self._encoder else encode_passthrough(self.codec, pcm)
        )
        try:
            self._endpoint.send_voice(self.channel, payload)
        except (KeyError, CrossbandError, OSError) as exc:  # not (yet) a member, socket gone
            self.stats.send_errors += 1
            log.warning("event=voice-send-failed channel=%s error=%s", self.channel, type(exc))
            return
        self.stats.sent += 1

    async def _run(self, burst: _Burst, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:  # the previous burst's release goes out first
            await asyncio.gather(previous, return_exceptions=True)
        try:
            granted = await self._endpoint.start_burst(
                self.channel, burst.priority, self._floor_timeout
            )
        except (CrossbandError, TimeoutError, OSError) as exc:
            log.info("event=floor-request-failed channel=%s error=%s", self.channel, type(exc))
            granted = False
        burst.granted = granted
        if not granted:
            self.stats.denied += 1
            self.stats.dropped_denied += len(burst.pending)
            burst.pending.clear()
            self._tell_denied()
            return
        self.stats.granted += 1
        while burst.pending:
            self._send_now(burst.pending.popleft())
        await burst.stopped.wait()
        try:
            await self._endpoint.end_burst(self.channel)
        except (CrossbandError, OSError) as exc:
            log.warning("event=burst-end-failed channel=%s error=%s", self.channel, type(exc))
