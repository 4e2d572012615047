"""The endpoint's audio pipeline (DESIGN §6): PCM frames ↔ voice payloads ↔ the endpoint.

Adapters give and take 16-bit mono PCM (little-endian) in 20 ms frames at 8 or 16 kHz.

**Sending** — :class:`TalkSender` turns one push-to-talk burst into voice frames:
``start(priority)`` asks for the floor (:meth:`Endpoint.start_burst`) in a background task,
``send(pcm)`` encodes each frame and hands it to :meth:`Endpoint.send_voice`, and ``stop()``
releases the floor and sends the signed burst seal (:meth:`Endpoint.end_burst`). Frames that
arrive before the floor answer are held (at most ``max_pending``; the oldest go first) and
sent as soon as the floor is granted, or dropped and counted if it is denied.

**Receiving** — :class:`ListenMixer` (one per channel) is sans-IO: it is fed endpoint events
with ``handle_event(event, now)`` and ticked once per 20 ms with ``tick(now)``, which returns
:class:`TalkerStarted` / :class:`PlayoutFrame` / :class:`TalkerStopped`. Each talker gets a
:class:`TalkReceiver`: an adaptive :class:`~bridge.audio.jitter.JitterBuffer` and a decoder that
plays a buffered frame, rebuilds a lost one from the next packet's in-band FEC
(:meth:`OpusDecoder.decode_fec`), or conceals it (:meth:`OpusDecoder.conceal`). Frames of
simultaneous talkers (a preemption overlap) are summed with saturation.
:class:`PlayoutTicker` is the thin asyncio driver that calls ``tick`` every 20 ms.

**Sequence numbers.** Voice payloads carry no sequence number of their own: the jitter
buffer is keyed by the SFrame counter (``Voice.ctr``, RFC 9605 §4.3). A sender's voice KID
(context 0) is used for nothing but voice, and the sender takes one counter value per frame,
so within an epoch the CTRs of one talker's frames are consecutive integers — exactly an RTP
sequence number, but authenticated. The buffer runs with 32-bit sequence arithmetic on
``ctr mod 2**32``. A counter that jumps far ahead (a restart reserves a new counter block)
starts a new burst in the buffer; one that jumps back (a new epoch restarts the counters)
resets it.

**Bit rate.** The sender encodes Opus at 48 kbit/s, complexity 10, in-band FEC tuned for 5 %
loss. Measured with PESQ-WB on espeak-ng speech (``bench/audio_path_bench.py``), 24 kbit/s
with FEC scores only 2.5 (the FEC redundancy takes a large share of a small budget), 32
kbit/s 3.7, 48 kbit/s 4.2 clean and 3.6 with 5 % of frames lost. 48 kbit/s is small next to
any IP link a gateway has; a constrained link (a vessel's satellite) can lower it per channel.

**Channel codecs.** ``"opus"`` (the default, DESIGN §6): Opus at the local rate with
in-band FEC; the rate is a local choice, since any Opus decoder plays any Opus stream.
``"l16"``: *passthrough* — the payload is the frame itself as L16 (RFC 3551 §4.5.11,
big-endian), still SFrame-encrypted. Nothing is transcoded, so L16 in → L16 out at the same
rate is bit-exact; it costs 256 kbit/s at 16 kHz, and every endpoint of the channel must be
configured for ``l16`` at the same rate (a payload of the wrong length is counted in
``decode_errors`` and concealed). A lost frame becomes silence (L16 has no FEC or PLC), and
the jitter buffer defaults to 40–400 ms instead of 20–200 ms so that loopback-class jitter
never forces a concealment.

**Delay policy.** A talker's :class:`TalkReceiver` lives for one burst. Within it the jitter
buffer *stretches* (adds a frame of delay) when late packets need it but never *shrinks* by
skipping a frame: a skipped 20 ms of speech is audible (it cost 0.3 PESQ in the benchmark)
and radio bursts are short. The delay is bounded all the same — a frame older than the
maximum delay is dropped — and starts from the minimum again at the next burst.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from bridge.audio.codec import (
    CodecError,
    OpusDecoder,
    OpusEncoder,
    frame_samples,
    l16_to_pcm,
    pcm_to_l16,
)
from bridge.audio.jitter import JitterBuffer
from bridge.endpoint import events as ev
from crypto.errors import CrossbandError

__all__ = [
    "ChannelCodec",
    "VoiceEndpoint",
    "TalkSender",
    "TalkSenderStats",
    "TalkReceiver",
    "ListenMixer",
    "MixerStats",
    "TalkerStarted",
    "PlayoutFrame",
    "TalkerStopped",
    "PlayoutEvent",
    "PlayoutTicker",
]

log = logging.getLogger("crossband.audio")

ChannelCodec = Literal["opus", "l16"]
AUDIO_RATES = (8000, 16000)
DEFAULT_BITRATE = 48000  # see "Bit rate" in the module docstring
FRAME = 0.020  # seconds
_NEVER = 1 << 62  # a "shrink_every" that never comes: every received frame is played
_REPLAY_SPAN = 128  # crypto.group's replay window: one KID's CTR never goes further back


def _check(rate: int, codec: str) -> None:
    if rate not in AUDIO_RATES:
        raise ValueError(f"audio rate must be one of {AUDIO_RATES}")
    if codec not in ("opus", "l16"):
        raise ValueError("channel codec must be 'opus' or 'l16'")


class VoiceEndpoint(Protocol):
    """What the audio pipeline needs of :class:`bridge.endpoint.endpoint.Endpoint`."""

    async def start_burst(self, ch: str, priority: str = "normal", timeout: float = 5.0) -> bool:
        """Request the floor; True once granted."""

    def send_voice(self, ch: str, payload: bytes) -> None:
        """Encrypt and send one voice frame."""

    async def end_burst(self, ch: str) -> object:
        """Release the floor and send the burst seal."""


# --- sending ---------------------------------------------------------------------------------


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
    """One channel's outgoing talk bursts: PCM frames → Opus (or L16) → the endpoint."""

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
    ) -> None:
        _check(rate, codec)
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

    async def drain(self) -> None:
        """Wait until the last burst's floor release and seal have been sent."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def aclose(self) -> None:
        self.stop()
        await self.drain()

    def _send_now(self, pcm: bytes) -> None:
        payload = self._encoder.encode(pcm) if self._encoder else pcm_to_l16(pcm)
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
            return
        self.stats.granted += 1
        while burst.pending:
            self._send_now(burst.pending.popleft())
        await burst.stopped.wait()
        try:
            await self._endpoint.end_burst(self.channel)
        except (CrossbandError, OSError) as exc:
            log.warning("event=burst-end-failed channel=%s error=%s", self.channel, type(exc))


# --- receiving -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TalkerStarted:
    channel: str
    sender: str


@dataclass(frozen=True, slots=True)
class PlayoutFrame:
    """20 ms of mixed PCM for one channel and who is in it."""

    channel: str
    pcm: bytes
    talkers: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.pcm or len(self.pcm) % 2:
            raise ValueError("PlayoutFrame carries whole 16-bit samples")


@dataclass(frozen=True, slots=True)
class TalkerStopped:
    channel: str
    sender: str
    reason: Literal["released", "timeout"]


PlayoutEvent = TalkerStarted | PlayoutFrame | TalkerStopped


@dataclass(slots=True)
class MixerStats:
    """Frames produced since construction, by how they were made."""

    received: int = 0
    played: int = 0
    fec: int = 0
    concealed: int = 0
    decode_errors: int = 0
    late: int = 0  # arrived after their turn (jitter buffer)
    ignored: int = 0  # voice of this device itself


class TalkReceiver:
    """One talker's stream: jitter buffer + decoder (FEC, PLC)."""

    def __init__(
        self,
        sender: str,
        rate: int,
        codec: ChannelCodec,
        stats: MixerStats,
        *,
        min_delay_ms: int = 20,
        max_delay_ms: int = 200,
    ) -> None:
        _check(rate, codec)
        self.sender = sender
        self.started = False
        self.ending = False  # the talker released the floor: stop once the buffer runs dry
        self.finished = False
        self._stats = stats
        self._frame_bytes = 2 * frame_samples(rate)
        self._decoder = OpusDecoder(rate) if codec == "opus" else None
        self._window = 50
        self.jitter = JitterBuffer(
            20,
            min_delay_ms,
            max_delay_ms,
            max_frames=self._window,
            seq_bits=32,
            shrink_every=_NEVER,  # no frame is skipped within a burst (module docstring)
        )
        self._last_ctr: int | None = None
        self._late_seen = 0
        self.last_push = 0.0
        self.max_delay = max_delay_ms / 1000

    def push(self, ctr: int, payload: bytes, now: float) -> None:
        if self._last_ctr is not None and ctr + _REPLAY_SPAN < self._last_ctr:
            # Further back than the SFrame replay window lets one KID go: a new epoch's KID
            # restarted the counters. Start a new burst in the buffer.
            self.jitter.reset()
            self._last_ctr = ctr
        self._last_ctr = ctr if self._last_ctr is None else max(ctr, self._last_ctr)
        self.last_push = now
        self.jitter.push(ctr & 0xFFFFFFFF, payload, now)
        self._stats.received += 1
        late = self.jitter.stats.late
        self._stats.late += late - self._late_seen
        self._late_seen = late

    def pop(self, now: float) -> bytes | None:
        """PCM for the period starting at ``now``; None when there is nothing to play."""
        item = self.jitter.pop(now)
        if item is None:
            return None
        if item.kind == "conceal" and self.ending and self.jitter.stats.depth == 0:
            self.finished = True
            return None
        try:
            if item.kind == "frame":
                assert item.payload is not None
                pcm = self._decode(item.payload)
                self._stats.played += 1
                return pcm
            if item.kind == "fec" and self._decoder is not None:
                assert item.payload is not None
                pcm = self._fit(self._decoder.decode_fec(item.payload))
                self._stats.fec += 1
                return pcm
        except CodecError:
            self._stats.decode_errors += 1
        self._stats.concealed += 1
        if self._decoder is None:
            return bytes(self._frame_bytes)
        return self._fit(self._decoder.conceal())

    def _decode(self, payload: bytes) -> bytes:
        if self._decoder is not None:
            return self._fit(self._decoder.decode(payload))
        if len(payload) != self._frame_bytes:
            raise CodecError("L16 passthrough payload of the wrong length")
        return l16_to_pcm(payload)

    def _fit(self, pcm: bytes) -> bytes:
        if len(pcm) != self._frame_bytes:
            raise CodecError("a voice frame must be 20 ms")
        return pcm


class ListenMixer:
    """One channel's playout: a :class:`TalkReceiver` per talker, mixed every 20 ms."""

    def __init__(
        self,
        channel: str,
        rate: int = 16000,
        codec: ChannelCodec = "opus",
        *,
        self_device: str | None = None,
        min_delay_ms: int | None = None,
        max_delay_ms: int | None = None,
    ) -> None:
        _check(rate, codec)
        self.channel = channel
        self.rate = rate
        self.codec = codec
        self.stats = MixerStats()
        self._self = self_device
        passthrough = codec == "l16"
        self._min_delay = min_delay_ms if min_delay_ms is not None else (40 if passthrough else 20)
        self._max_delay = (
            max_delay_ms if max_delay_ms is not None else (400 if passthrough else 200)
        )
        self._talkers: dict[str, TalkReceiver] = {}

    @property
    def active(self) -> tuple[str, ...]:
        """Talkers whose audio is playing now."""
        return tuple(s for s, r in self._talkers.items() if r.started)

    def receiver(self, sender: str) -> TalkReceiver | None:
        return self._talkers.get(sender)

    def handle_event(self, event: ev.Event, now: float) -> None:
        """Feed one endpoint event; events of other channels and kinds are ignored."""
        if isinstance(event, ev.Voice) and event.channel == self.channel:
            if event.sender == self._self:
                self.stats.ignored += 1
                return
            r = self._talkers.get(event.sender)
            if r is None or r.finished:
                r = self._talkers[event.sender] = TalkReceiver(
                    event.sender,
                    self.rate,
                    self.codec,
                    self.stats,
                    min_delay_ms=self._min_delay,
                    max_delay_ms=self._max_delay,
                )
            r.push(event.ctr, event.payload, now)
        elif isinstance(event, ev.TalkerChanged) and event.channel == self.channel:
            for sender, r in self._talkers.items():
                r.ending = sender != event.talker
        elif isinstance(event, ev.BurstSealed) and event.channel == self.channel:
            r = self._talkers.get(event.sender)
            if r is not None:
                r.ending = True

    def tick(self, now: float) -> list[PlayoutEvent]:
        """Produce the frame period starting at ``now``."""
        out: list[PlayoutEvent] = []
        frames: list[bytes] = []
        talkers: list[str] = []
        for sender, r in list(self._talkers.items()):
            pcm = r.pop(now)
            if pcm is None:
                if r.started or r.finished or self._idle(r, now):
                    del self._talkers[sender]
                    if r.started:
                        reason: Literal["released", "timeout"] = (
                            "released" if r.finished else "timeout"
                        )
                        out.append(TalkerStopped(self.channel, sender, reason))
                continue
            if not r.started:
                r.started = True
                out.append(TalkerStarted(self.channel, sender))
            frames.append(pcm)
            talkers.append(sender)
        if frames:
            out.append(PlayoutFrame(self.channel, _mix(frames), tuple(talkers)))
        return out

    def _idle(self, r: TalkReceiver, now: float) -> bool:
        # A talker that never got to play (its frames all went stale): forget it.
        return r.jitter.stats.depth == 0 and (r.ending or now - r.last_push > r.max_delay)

    def reset(self) -> None:
        self._talkers.clear()


def _mix(frames: list[bytes]) -> bytes:
    if len(frames) == 1:
        return frames[0]
    total = np.zeros(len(frames[0]) // 2, dtype=np.int32)
    for f in frames:
        total += np.frombuffer(f, dtype="<i2")
    mixed: bytes = np.clip(total, -32768, 32767).astype("<i2").tobytes()
    return mixed


# --- the asyncio driver ------------------------------------------------------------------------


class PlayoutTicker:
    """Calls ``tick(now)`` every ``period`` seconds of the loop clock, without drift.

    The schedule is absolute (start + k·period); if the loop stalls for more than a few
    periods the ticker catches up at most ``max_catch_up`` ticks and then resynchronises, so a
    stall never produces a flood of frames.
    """

    def __init__(
        self, tick: Callable[[float], None], period: float = FRAME, max_catch_up: int = 3
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
