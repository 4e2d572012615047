"""One channel's playout: a :class:`TalkReceiver` per talker, mixed every 20 ms (sans-IO).

:class:`ListenMixer` is fed what the endpoint reports of one channel — :meth:`~ListenMixer.voice`
frames, :meth:`~ListenMixer.floor_moved`, :meth:`~ListenMixer.burst_sealed` — and ticked once
per 20 ms with ``tick(now)``, which returns :class:`TalkerStarted` / :class:`PlayoutFrame` /
:class:`TalkerStopped`. A talker's receiver starts with its first voice frame and stops when
its buffer runs dry after it released the floor (or sealed its burst): ``"released"``, or
when nothing came for ``pause_hold`` seconds while it held the floor: ``"timeout"``. A pause
in a talker's frames shorter than that (a radio-side talker pausing inside one
transmission) keeps its burst: once nothing has come for ``PAUSE_AFTER`` (and twice the
jitter target; a late or duplicate frame is not "something") the talker's jitter buffer
restarts, at the delay its frames played with (never earlier, not at the target that may
have decayed meanwhile), so nothing is concealed meanwhile and the frames after the pause
play from their first; no new ``TalkerStarted`` follows — the far side hears one burst,
not two. (A sender that resumes sooner, after a few concealed periods, restarts the buffer
too: :class:`~bridge.audio.jitter.JitterBuffer`, *Resumption*.) Frames of simultaneous
talkers (a preemption overlap) are summed with saturation. The asyncio driver that calls
``tick`` is :class:`~bridge.audio.playout.PlayoutTicker`; the gateway (``bridge.gateway``)
turns endpoint events into these calls, so the audio path knows nothing of the endpoint.

**The channel's frame clock.** ``tick`` may be called more often than every 20 ms (the
ticker calls it every 5 ms): the mixer keeps its own 20 ms periods. While nothing plays,
every tick looks for a talker whose first frame is due, and the first period starts at that
tick — so a burst's first frame goes out within one tick of being due instead of waiting up
to 20 ms for a fixed tick phase; the following periods run every 20 ms from there (a stalled
caller gets at most ``MAX_CATCH_UP`` periods at once, then the clock restarts). When a
period plays nothing (everybody stopped or paused), the clock stops, and the next frame
restarts it at its own time. A period whose frame would have to be concealed — neither it
nor its successor (for FEC) is here — waits one tick (``HOLD``, 5 ms) for it, if the caller
ticks that finely: this shifts the rest of the burst by 5 ms instead of losing the frame
(or its FEC), so a frame just behind its time costs 5 ms of delay, not 20 ms of speech; at
most ``MAX_SLIP`` (20 ms) per burst. Called exactly every 20 ms, the mixer behaves as
before.

**Start delay.** A talker's burst starts its jitter buffer at the channel's ``start_delay``
(Opus 20 ms: a lost frame's successor is then buffered in time for FEC; passthrough 40 ms),
or, for a talker heard before on this channel, at what its last burst measured
(:meth:`~bridge.audio.receiver.TalkReceiver.learned_delay_ms`, never below ``min_delay``,
10 ms by default): a clean path gets the minimum from its second burst on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from bridge.audio.formats import PASSTHROUGH, ChannelCodec, check_format
from bridge.audio.receiver import MixerStats, TalkReceiver

__all__ = [
    "ListenMixer",
    "MixerStats",
    "PlayoutEvent",
    "PlayoutFrame",
    "TalkerStarted",
    "TalkerStopped",
]


@dataclass(frozen=True, slots=True)
class TalkerStarted:
    channel: str
    sender: str


@dataclass(frozen=True, slots=True)
class PlayoutFrame:
    """20 ms of mixed PCM for one channel and who is in it; ``at``: its media time on the
    loop clock. Frames 20 ms apart are contiguous audio, however they were handed over
    (after a stall of the caller, several at once, and the clock restarted); a longer step
    is a pause (periods that ran with nothing to play, or the clock stopped)."""

    channel: str
    pcm: bytes
    talkers: tuple[str, ...]
    at: float = 0.0

    def __post_init__(self) -> None:
        if not self.pcm or len(self.pcm) % 2:
            raise ValueError("PlayoutFrame carries whole 16-bit samples")


@dataclass(frozen=True, slots=True)
class TalkerStopped:
    channel: str
    sender: str
    reason: Literal["released", "timeout"]


PlayoutEvent = TalkerStarted | PlayoutFrame | TalkerStopped
PAUSE_AFTER = 0.1  # seconds without a frame (and twice the jitter target) that make a pause
FRAME_S = 0.020
MAX_CATCH_UP = 3  # periods produced at once after a stall of the caller
HOLD = 0.005  # how long a period may wait for a frame that is about to be concealed
MAX_SLIP = 0.020  # how much such waits may add to a burst's delay, in all
FINE_TICKS = 0.010  # waits need a caller that ticks at least this often
_EPS = 1e-6  # a tick this close before a period's start counts as on time
_LEARNED = 1024  # talkers whose last burst's delay is remembered
# (min, start, max) jitter-buffer delay in ms, by channel codec, when not configured
DELAYS = {"opus": (10, 20, 200), "passthrough": (10, 40, 400)}


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
        pause_hold: float = 1.0,
    ) -> None:
        check_format(rate, codec)
        if pause_hold < 0:
            raise ValueError("pause_hold must not be negative")
        self.pause_hold = pause_hold
        self.channel = channel
        self.rate = rate
        self.codec = codec
        self.stats = MixerStats()
        self._self = self_device
        lo, start, hi = DELAYS["passthrough" if codec in PASSTHROUGH else "opus"]
        self._max_delay = max_delay_ms if max_delay_ms is not None else hi
        # A configured minimum is also where every burst starts.
        self._min_delay = min(min_delay_ms if min_delay_ms is not None else lo, self._max_delay)
        self._start_delay = float(min_delay_ms if min_delay_ms is not None else start)
        self._start_delay = min(max(self._start_delay, self._min_delay), self._max_delay)
        self._talkers: dict[str, TalkReceiver] = {}
        self._learned: dict[str, float] = {}  # talker → start delay for its next burst
        self._clock: float | None = None  # start of the next 20 ms period; None: stopped
        # the media time of the next period: +20 ms per period run, whether it had a frame
        # or not, and not for periods a stalled caller skipped (PlayoutFrame.at)
        self._media = 0.0
        self._slip = 0.0  # delay added by waits since the clock started
        self._held = False  # the next period has waited its tick
        self._last_tick: float | None = None

    @property
    def active(self) -> tuple[str, ...]:
        """Talkers whose audio is playing now."""
        return tuple(s for s, r in self._talkers.items() if r.started)

    def receiver(self, sender: str) -> TalkReceiver | None:
        return self._talkers.get(sender)

    def voice(self, sender: str, ctr: int, payload: bytes, now: float) -> None:
        """One decrypted voice frame of this channel (``ctr``: its SFrame counter)."""
        if sender == self._self:
            self.stats.ignored += 1
            return
        r = self._talkers.get(sender)
        if r is None or r.finished:
            if r is not None:
                self._learn(r)
            start = self._learned.get(sender, self._start_delay)
            r = self._talkers[sender] = TalkReceiver(
                sender,
                self.rate,
                self.codec,
                self.stats,
                min_delay_ms=self._min_delay,
                max_delay_ms=self._max_delay,
                start_delay_ms=min(max(start, self._min_delay), self._max_delay),
            )
        r.push(ctr, payload, now)

    def start_delay_ms(self, sender: str) -> float:
        """Where the jitter buffer of ``sender``'s next burst starts."""
        start = self._learned.get(sender, self._start_delay)
        return min(max(start, self._min_delay), self._max_delay)

    def _learn(self, r: TalkReceiver) -> None:
        if not r.started:
            return
        self._learned.pop(r.sender, None)
        self._learned[r.sender] = r.learned_delay_ms()
        while len(self._learned) > _LEARNED:
            del self._learned[next(iter(self._learned))]

    def floor_moved(self, talker: str | None) -> None:
        """The floor went to ``talker`` (None: it is free): every other talker is ending."""
        for sender, r in self._talkers.items():
            r.ending = sender != talker

    def burst_sealed(self, sender: str) -> None:
        """``sender`` sealed its burst: it ends once its buffer has played out."""
        r = self._talkers.get(sender)
        if r is not None:
            r.ending = True

    def tick(self, now: float) -> list[PlayoutEvent]:
        """Produce the frame periods due by ``now`` (module docstring: the frame clock)."""
        fine = self._last_tick is not None and now - self._last_tick <= FINE_TICKS
        self._last_tick = now
        if self._clock is None:
            out = self._period(now, now)
            if any(isinstance(e, PlayoutFrame) for e in out):
                self._clock = self._media = now + FRAME_S
                self._slip = 0.0
                self._held = False
            return out
        out = []
        for _ in range(MAX_CATCH_UP):
            due = self._clock
            if due is None or due > now + _EPS:
                return out
            if fine and not self._held and self._slip < MAX_SLIP and self._worth_a_wait(now):
                self._held = True
                return out  # one tick's wait: the missing frame (or its successor) may come
            t = due
            if self._held:  # this period waited: the clock runs from now on
                t = min(now, due + HOLD)
                self._slip += t - due
                self._held = False
            events = self._period(t, self._media)
            out += events
            played = any(isinstance(e, PlayoutFrame) for e in events)
            self._clock = t + FRAME_S if played else None
            self._media += FRAME_S
        if self._clock is not None and self._clock <= now + _EPS:
            self._clock = now + FRAME_S  # the caller stalled: restart the clock from now
            # (the media time runs on: what it skipped is still in the buffers, not lost)
        return out

    def _worth_a_wait(self, now: float) -> bool:
        return any(r.would_conceal(now, PAUSE_AFTER) for r in self._talkers.values())

    def _period(self, now: float, media: float) -> list[PlayoutEvent]:
        out: list[PlayoutEvent] = []
        frames: list[bytes] = []
        talkers: list[str] = []
        for sender, r in list(self._talkers.items()):
            if r.started and not r.ending and r.jitter.stats.depth == 0 and self._paused(r, now):
                r.pause()  # a pause, not a loss: resume cleanly when the frames do
            pcm = r.pop(now)
            if pcm is None:
                if r.started and not (r.ending or r.finished) and self._pausing(r, now):
                    continue  # the talker still holds the floor: one burst across a pause
                if r.started or r.finished or self._idle(r, now):
                    del self._talkers[sender]
                    self._learn(r)
                    if r.started:
                        reason: Literal["released", "timeout"] = (
                            "released" if r.finished or r.ending else "timeout"
                        )
                        out.append(TalkerStopped(self.channel, sender, reason))
                continue
            if not r.started:
                r.started = True
                out.append(TalkerStarted(self.channel, sender))
            frames.append(pcm)
            talkers.append(sender)
        if frames:
            out.append(PlayoutFrame(self.channel, _mix(frames), tuple(talkers), media))
        return out

    def _paused(self, r: TalkReceiver, now: float) -> bool:
        # Nothing came for longer than jitter explains: the talker paused.
        gap = max(PAUSE_AFTER, 2 * r.jitter.target_delay_ms / 1000)
        return now - r.last_push > gap

    def _pausing(self, r: TalkReceiver, now: float) -> bool:
        return now - r.last_push < self.pause_hold

    def _idle(self, r: TalkReceiver, now: float) -> bool:
        # A talker that never got to play (its frames all went stale): forget it.
        return r.jitter.stats.depth == 0 and (r.ending or now - r.last_push > r.max_delay)

    def reset(self) -> None:
        self._talkers.clear()
        self._clock = None
        self._held = False


def _mix(frames: list[bytes]) -> bytes:
    if len(frames) == 1:
        return frames[0]
    total = np.zeros(len(frames[0]) // 2, dtype=np.int32)
    for f in frames:
        total += np.frombuffer(f, dtype="<i2")
    mixed: bytes = np.clip(total, -32768, 32767).astype("<i2").tobytes()
    return mixed
