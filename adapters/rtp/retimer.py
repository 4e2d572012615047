"""Re-timing the radio side's audio onto the 20 ms frame clock (sans-IO).

:class:`RtpReceiver` emits a burst's 20 ms frames as soon as packets bring them: six or
seven at once for a 128 ms packet (ffmpeg's default), none for the next 108 ms. Sent on like
that, the far side's jitter buffer takes the clump for network jitter. :class:`Retimer`
holds the frames of one burst and releases them one per 20 ms from ``handle_timer(now)``:

* frame *n* of a burst is due at ``t0 + delay + n × 20 ms``, where ``t0`` is the arrival of
  its first frame and ``delay`` = ``base_delay`` (20 ms: jitter) + (the first packet's
  duration − 20 ms), the most the clumping can make a frame late;
* so the packet after a lost one (which makes the receiver fill the gap, with PLC) comes
  at about the time the lost packet's first frame is due;
* a frame that is not there when due is concealed (:class:`~adapters.codecs.plc.Concealer`)
  and its slot counted as *owed*. If what comes for it later is the receiver's fill of a lost
  packet, it is dropped: a loss is filled, never compressed in time. If it is the real frame,
  only late (jitter beyond the delay), it is kept and the delay grows by a frame (a
  *stretch*, at most ``max_stretch`` per burst; beyond that late frames are dropped too), so
  jitter costs one concealed frame, not a lost one;
* after ``max_conceal`` of concealment in a row (60 ms: it has faded out by then) the
  retimer goes quiet: the talker paused or stopped, and the end of a transmission carries at
  most 60 ms of fading concealment. When frames come again, those standing for the slots
  that went by in the quiet (the receiver's fill of the pause) are dropped too, and the
  clock restarts at the next one, so a pause is as long as it was;
* a timestamp jump (the receiver filled nothing) forgets what is owed and re-anchors.

:class:`RetimedReceiver` is an :class:`RtpReceiver` whose ``Audio`` events come through a
retimer (``BurstEnd`` waits until the burst's frames have played); the RTP adapter uses it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from adapters.codecs.pcm import frame_samples
from adapters.codecs.plc import Concealer
from adapters.rtp.config import RtpReceiverConfig
from adapters.rtp.receiver import Audio, BurstEnd, BurstStart, RtpEvent, RtpReceiver

__all__ = ["RetimedReceiver", "Retimer", "RetimerStats"]

FRAME = 0.020


@dataclass(slots=True)
class RetimerStats:
    frames_in: int = 0
    frames_out: int = 0
    concealed: int = 0  # frames played by concealment (a loss or a late frame)
    dropped_owed: int = 0  # frames that came for a slot already concealed
    restarts: int = 0  # the clock stopped and restarted within a burst
    stretched: int = 0  # late real frames kept by adding a frame of delay


class Retimer:
    """One burst at a time: frames in as they come, out one per 20 ms (module docstring)."""

    def __init__(
        self,
        rate: int,
        *,
        base_delay: float = 0.020,
        max_conceal: float = 0.06,
        max_stretch: float = 0.1,
    ) -> None:
        self.rate = rate
        self.max_stretch = max_stretch
        self.base_delay = base_delay
        self.max_conceal = max_conceal
        self.stats = RetimerStats()
        self._samples = frame_samples(rate)
        self._plc = Concealer(rate)
        self._queue: deque[bytes] = deque()
        self._anchor: float | None = None  # due time of frame 0 of the current clock
        self._next = 0  # index of the next frame out on the current clock
        self._owed = 0
        self._run = 0  # frames concealed in a row
        self._quiet_since: float | None = None  # due time of the first slot not played
        self._delay = base_delay
        self._stretch = 0.0
        self.ending = False  # the burst ended: play out what is queued, conceal nothing more

    def start(self, first_packet_s: float = FRAME) -> None:
        """A new burst; ``first_packet_s``: the duration of its first packet."""
        self._queue.clear()
        self._anchor = None
        self._owed = self._run = 0
        self._quiet_since = None
        self._plc.reset()
        self.ending = False
        self._delay = self.base_delay + max(first_packet_s - FRAME, 0.0)
        self._stretch = 0.0

    def resync(self) -> None:
        """The stream jumped: nothing is owed, the clock restarts at the next frame."""
        self._owed = 0
        self._quiet_since = None
        if not self._queue:
            self._anchor = None

    def push(self, pcm: bytes, now: float, *, filled: bool = False) -> None:
        """A frame of the burst, in stream order; ``filled``: the receiver's fill of a loss."""
        self.stats.frames_in += 1
        if self._quiet_since is not None:
            if filled:  # the receiver filled the quiet: the slots that went by are owed
                self._owed += max(round((now + self._delay - self._quiet_since) / FRAME), 0)
            else:  # the talker resumed and nothing was lost
                self._owed = 0
            self._quiet_since = None
        if self._owed:
            self._owed -= 1
            late_real = not filled and self._anchor is not None
            if late_real and self._stretch + FRAME <= self.max_stretch + 1e-9:
                self._stretch += FRAME  # a stretch: kept, it plays one slot after its own
                self.stats.stretched += 1
            else:
                self.stats.dropped_owed += 1
                return
        if self._anchor is None:
            self._anchor, self._next, self._run = now + self._delay, 0, 0
        self._queue.append(pcm)

    @property
    def pending(self) -> int:
        return len(self._queue)

    def get_timer(self) -> float | None:
        if self._anchor is None:
            return None
        return self._anchor + self._next * FRAME

    def handle_timer(self, now: float) -> list[bytes]:
        """The frames due by ``now``, in order."""
        out: list[bytes] = []
        while self._anchor is not None and self._anchor + self._next * FRAME <= now + 1e-9:
            if self._queue:
                out.append(self._plc.audio(self._queue.popleft()))
                self._run = 0
            elif not self.ending and (self._run + 1) * FRAME <= self.max_conceal + 1e-9:
                out.append(self._plc.conceal(self._samples))
                self._owed += 1
                self._run += 1
                self.stats.concealed += 1
            else:  # a pause, or the end: quiet until the next frame
                self._quiet_since = self._anchor + self._next * FRAME
                self._anchor = None
                self.stats.restarts += 1
                break
            self._next += 1
        self.stats.frames_out += len(out)
        return out

    def drain(self) -> list[bytes]:
        """Everything still queued, at once (the burst is over)."""
        out = [self._plc.audio(f) for f in self._queue]
        self._queue.clear()
        self._anchor = self._quiet_since = None
        self._owed = 0
        self.stats.frames_out += len(out)
        return out


class RetimedReceiver(RtpReceiver):
    """An :class:`RtpReceiver` whose audio comes out on the 20 ms clock (module docstring)."""

    def __init__(
        self, config: RtpReceiverConfig, *, base_delay: float = 0.020, max_conceal: float = 0.06
    ) -> None:
        super().__init__(config)
        self.retimer = Retimer(config.rate, base_delay=base_delay, max_conceal=max_conceal)
        self._out: list[RtpEvent] = []
        self._held_end: BurstEnd | None = None

    def receive_datagram(self, data: bytes, addr: object, now: float) -> None:
        jumps, filled = self.stats.jumps, self.stats.concealed
        super().receive_datagram(data, addr, now)
        if self.stats.jumps != jumps:
            self.retimer.resync()
        self._route(now, filled=self.stats.concealed != filled)

    def handle_timer(self, now: float) -> None:
        super().handle_timer(now)
        self._route(now)

    def get_timer(self) -> float | None:
        timers = [t for t in (super().get_timer(), self.retimer.get_timer()) if t is not None]
        return min(timers) if timers else None

    def events_received(self) -> list[RtpEvent]:
        out, self._out = self._out, []
        return out

    def _route(self, now: float, *, filled: bool = False) -> None:
        for event in super().events_received():
            if isinstance(event, BurstStart):
                self._finish_held()
                self.retimer.start(self._last_duration or FRAME)
                self._out.append(event)
            elif isinstance(event, Audio):
                self.retimer.push(event.pcm, now, filled=filled)
            elif isinstance(event, BurstEnd):
                self._held_end = event
                self.retimer.ending = True
        self._out.extend(Audio(f) for f in self.retimer.handle_timer(now))
        if self._held_end is not None and (
            not self.retimer.pending or self._held_end.reason == "hang_time"
        ):
            self._finish_held()

    def _finish_held(self) -> None:
        self._out.extend(Audio(f) for f in self.retimer.drain())
        if self._held_end is not None:
            self._out.append(self._held_end)
            self._held_end = None
