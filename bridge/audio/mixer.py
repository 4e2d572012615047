"""One channel's playout: a :class:`TalkReceiver` per talker, mixed every 20 ms (sans-IO).

:class:`ListenMixer` is fed what the endpoint reports of one channel — :meth:`~ListenMixer.voice`
frames, :meth:`~ListenMixer.floor_moved`, :meth:`~ListenMixer.burst_sealed` — and ticked once
per 20 ms with ``tick(now)``, which returns :class:`TalkerStarted` / :class:`PlayoutFrame` /
:class:`TalkerStopped`. A talker's receiver starts with its first voice frame and stops when
its buffer runs dry after it released the floor (or sealed its burst): ``"released"``, or
when nothing came for ``pause_hold`` seconds while it held the floor: ``"timeout"``. A pause
in a talker's frames shorter than that (a radio-side talker pausing inside one
transmission) keeps its burst: once nothing has come for ``PAUSE_AFTER`` (and twice the
jitter target) the talker's jitter buffer restarts, so nothing is concealed meanwhile and
the frames after the pause play from their first; no new ``TalkerStarted`` follows — the
far side hears one burst, not two. Frames of simultaneous
talkers (a preemption overlap) are summed with saturation. The asyncio driver that calls
``tick`` is :class:`~bridge.audio.playout.PlayoutTicker`; the gateway (``bridge.gateway``)
turns endpoint events into these calls, so the audio path knows nothing of the endpoint.
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
PAUSE_AFTER = 0.1  # seconds without a frame (and twice the jitter target) that make a pause


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
        passthrough = codec in PASSTHROUGH
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

    def voice(self, sender: str, ctr: int, payload: bytes, now: float) -> None:
        """One decrypted voice frame of this channel (``ctr``: its SFrame counter)."""
        if sender == self._self:
            self.stats.ignored += 1
            return
        r = self._talkers.get(sender)
        if r is None or r.finished:
            r = self._talkers[sender] = TalkReceiver(
                sender,
                self.rate,
                self.codec,
                self.stats,
                min_delay_ms=self._min_delay,
                max_delay_ms=self._max_delay,
            )
        r.push(ctr, payload, now)

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
        """Produce the frame period starting at ``now``."""
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
            out.append(PlayoutFrame(self.channel, _mix(frames), tuple(talkers)))
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


def _mix(frames: list[bytes]) -> bytes:
    if len(frames) == 1:
        return frames[0]
    total = np.zeros(len(frames[0]) // 2, dtype=np.int32)
    for f in frames:
        total += np.frombuffer(f, dtype="<i2")
    mixed: bytes = np.clip(total, -32768, 32767).astype("<i2").tobytes()
    return mixed
