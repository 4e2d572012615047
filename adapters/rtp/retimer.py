"""Re-timing the radio side's audio onto the 20 ms frame clock (sans-IO).

:class:`RtpReceiver` emits a burst's 20 ms frames as soon as packets bring them: six or
seven at once for a 128 ms packet (ffmpeg's default), none for the next 108 ms. Sent on like
that, the far side's jitter buffer takes the clump for network jitter. :class:`Retimer`
holds the frames of one burst and releases them one per 20 ms from ``handle_timer(now)``:

* frame *n* of a burst is due at ``t0 + delay + n × 20 ms``, where ``t0`` is the arrival of
  its first frame and ``delay`` = the *packetization lag* (:func:`packetization_lag`: how much
  later than that schedule a perfectly paced stream of the first packet's duration can bring
  a frame — 0 for any multiple of 20 ms, 16 ms for 128 ms packets) + the *jitter margin*;
  for packets longer than ``max_conceal`` + 20 ms, the first packet's duration − 20 ms
  instead of the packetization lag, so that the packet after a lost one (which makes the
  receiver fill the gap, with PLC) comes at about the time the lost packet's first frame is
  due (and a sender whose packets are not all alike, ffmpeg's 182.5 + 73.5 ms pairs, is not
  late for the lag its first packet implies);
* the jitter margin is adaptive: it starts at ``base_delay`` (10 ms: at 4 ms, scheduling
  delays of a few ms on a loaded host made an ffmpeg sender's frames late and cost L16
  passthrough its sample alignment), and each burst starts with that plus the jitter the last
  one showed (:attr:`RtpReceiver.last_jitter`: the spread of its packets' arrival times less
  their RTP timestamps, so packetization does not count), or half the margin before,
  whichever is more (so it relaxes when the jitter goes), bounded by ``max_jitter``;
* a frame that is not there when due is concealed (:class:`~adapters.codecs.plc.Concealer`)
  and its slot counted as *owed*. If what comes for it later is the receiver's fill of a lost
  packet, it is dropped: a loss is filled, never compressed in time. If it is the real frame,
  only late (jitter beyond the margin), it is kept and the delay grows by a frame (a
  *stretch*, at most ``max_stretch`` per burst; beyond that late frames are dropped too), so
  jitter costs one concealed frame, not a lost one, and the next burst's margin covers it.
  A stretch is paid back by the next loss the receiver fills: one frame of that fill is
  dropped (the real frame that came with it takes its slot, so the output stays evenly
  spaced), so one late frame is no permanent 20 ms shift;
* the clock keeps running through a gap the receiver would fill — the loss of up to two of
  the burst's longest packets (``max_run``: at least ``max_conceal``, 60 ms, at most
  ``max_gap``, the receiver's ``max_gap_ms``): fading concealment, then silence, one frame
  per 20 ms, so the far side's frame counter stays in step with time (a lost 256 ms block
  of ffmpeg's default packetization is bridged in time). A real frame that comes after the
  concealment faded out (a sender whose timestamps stood still through a pause) is the
  talker resuming and plays in the next slot. After ``max_run`` the retimer goes quiet: the
  talker stopped (a hang-time end therefore carries ``max_run`` of concealment and
  silence: 60 ms for 20 ms packets, 300 ms for ffmpeg's default), or paused. When frames come
  again, those standing for slots that went by in the quiet (the receiver's fill) are
  dropped, and the clock restarts at the next one, so a pause is as long as it was;
* a timestamp jump (the receiver filled nothing) forgets what is owed and re-anchors.

Why not wait for a late frame instead of concealing it? At its due time a late frame and a
lost one look the same: waiting for every missing frame would put each loss late and
stretch the end of every transmission; the stretch costs one frame once, and the learned
margin keeps it from coming back.

:class:`RetimedReceiver` is an :class:`RtpReceiver` whose ``Audio`` events come through a
retimer (``BurstEnd`` waits until the burst's frames have played); the RTP adapter uses it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from adapters.codecs.pcm import frame_samples
from adapters.codecs.plc import Concealer
from adapters.rtp.config import RtpReceiverConfig
from adapters.rtp.receiver import Audio, BurstEnd, BurstStart, RtpEvent, RtpReceiver

__all__ = ["RetimedReceiver", "Retimer", "RetimerStats", "packetization_lag"]

FRAME = 0.020
BASE_DELAY = 0.010  # the jitter margin a burst starts with when nothing was learned
MAX_JITTER = 0.1


def packetization_lag(packet_s: float, frame_s: float = FRAME) -> float:
    """How late, at most, a frame of a perfectly paced stream of ``packet_s`` packets comes
    after ``t0 + n × frame_s`` (``t0``: when its first whole frame came): a frame is whole
    when the packet holding its last sample arrives. 0 when ``packet_s`` is a multiple of
    ``frame_s`` (or divides it); up to ``frame_s`` less their common divisor otherwise."""
    p, f = round(packet_s * 1e6), round(frame_s * 1e6)  # microseconds
    if p <= 0:
        return 0.0
    period = min(p // math.gcd(p, f), 1000)  # frames before the pattern repeats

    def packet_of(n: int) -> int:  # the packet that completes frame n
        return -(-(n + 1) * f // p) - 1

    k0 = packet_of(0)
    return max((packet_of(n) - k0) * p - n * f for n in range(period)) / 1e6


@dataclass(slots=True)
class RetimerStats:
    frames_in: int = 0
    frames_out: int = 0
    concealed: int = 0  # frames played by concealment (a loss or a late frame)
    dropped_owed: int = 0  # frames that came for a slot already concealed
    restarts: int = 0  # the clock stopped and restarted within a burst
    stretched: int = 0  # late real frames kept by adding a frame of delay
    unstretched: int = 0  # fill frames dropped to take a stretch back


class Retimer:
    """One burst at a time: frames in as they come, out one per 20 ms (module docstring)."""

    def __init__(
        self,
        rate: int,
        *,
        base_delay: float = BASE_DELAY,
        max_conceal: float = 0.06,
        max_stretch: float = 0.1,
        max_jitter: float = MAX_JITTER,
        max_gap: float = 0.3,
    ) -> None:
        self.rate = rate
        self.max_gap = max(max_gap, max_conceal)
        self.max_stretch = max_stretch
        self.base_delay = base_delay
        self.max_conceal = max_conceal
        self.max_jitter = max_jitter
        self.stats = RetimerStats()
        self.jitter = base_delay  # the jitter margin of the current burst (learned)
        self.packetization = 0.0  # the packetization lag (or loss cover) of the current burst
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
        self.max_run = max_conceal  # how long the clock runs through a gap (``packets``)

    @property
    def delay(self) -> float:
        """How long after its schedule a frame of the current burst is played."""
        return self._delay + self._stretch

    def start(self, first_packet_s: float = FRAME, jitter_seen: float | None = None) -> None:
        """A new burst; ``first_packet_s``: the duration of its first packet;
        ``jitter_seen``: the arrival jitter of the burst before (the module docstring)."""
        if jitter_seen is not None:
            self.jitter = max(self.base_delay + jitter_seen, self.jitter / 2)
        self.jitter = min(max(self.jitter, self.base_delay), self.max_jitter)
        self._queue.clear()
        self._anchor = None
        self._owed = self._run = 0
        self._quiet_since = None
        self._plc.reset()
        self.ending = False
        self.packetization = packetization_lag(first_packet_s)
        if first_packet_s - FRAME > self.max_conceal + 1e-9:  # cover the loss of a packet
            self.packetization = max(self.packetization, first_packet_s - FRAME)
        self._delay = self.packetization + self.jitter
        self.packets(first_packet_s)
        self._stretch = 0.0

    def packets(self, longest_s: float) -> None:
        """The burst's longest packet so far lasts ``longest_s``: the clock runs through a
        gap of up to two such packets (within ``max_conceal`` .. ``max_gap``)."""
        self.max_run = min(max(2 * longest_s, self.max_conceal), self.max_gap)

    def resync(self) -> None:
        """The stream jumped: nothing is owed, the clock restarts at the next frame."""
        self._owed = 0
        self._quiet_since = None
        if not self._queue:
            self._anchor = None

    def push(self, pcm: bytes, now: float, *, filled: bool = False, fill: bool = False) -> None:
        """A frame of the burst, in stream order; ``filled``: it came with the receiver's fill
        of a loss; ``fill``: it is (mostly) that fill, not real audio."""
        self.stats.frames_in += 1
        if self._quiet_since is not None:
            if filled:  # the receiver filled the quiet: the slots that went by are owed
                self._owed += max(round((now + self._delay - self._quiet_since) / FRAME), 0)
            else:  # the talker resumed and nothing was lost
                self._owed = 0
            self._quiet_since = None
        if self._owed and not filled and self._run * FRAME >= self.max_conceal - 1e-9:
            self._owed = 0  # the talker resumed after a pause its timestamps did not count
        elif self._owed:
            self._owed -= 1
            late_real = not filled and self._anchor is not None
            if late_real and self._stretch + FRAME <= self.max_stretch + 1e-9:
                self._stretch += FRAME  # a stretch: kept, it plays one slot after its own
                self.stats.stretched += 1
            else:
                self.stats.dropped_owed += 1
                return
        elif fill and self._stretch > 1e-9:
            self._stretch -= FRAME  # pay a stretch back with a frame of the receiver's fill:
            self.stats.unstretched += 1  # what came with it takes its slot, evenly spaced
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
            elif not self.ending and (self._run + 1) * FRAME <= self.max_run + 1e-9:
                out.append(self._plc.conceal(self._samples))  # fades to silence in 60 ms
                self._owed += 1
                self._run += 1
                self.stats.concealed += 1
            else:  # a gap longer than can be filled, or the end: quiet until the next frame
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
        self,
        config: RtpReceiverConfig,
        *,
        base_delay: float = BASE_DELAY,
        max_conceal: float = 0.06,
    ) -> None:
        super().__init__(config)
        self.retimer = Retimer(
            config.rate,
            base_delay=base_delay,
            max_conceal=max_conceal,
            max_gap=config.max_gap_ms / 1000,
        )
        self._out: list[RtpEvent] = []
        self._held_end: BurstEnd | None = None
        self._holding = False  # inside receive_datagrams: release nothing until all are in

    def receive_datagram(self, data: bytes, addr: object, now: float) -> None:
        jumps, filled, fill_s = self.stats.jumps, self.stats.concealed, self.filled_s
        super().receive_datagram(data, addr, now)
        if self.stats.jumps != jumps:
            self.retimer.resync()
        fills = round((self.filled_s - fill_s) / FRAME)
        self._route(now, filled=self.stats.concealed != filled, fills=fills)

    def receive_datagrams(self, datagrams: Iterable[tuple[bytes, object]], now: float) -> None:
        """Datagrams that were all waiting at ``now``: queued first, released after, so the
        frames they bring are not concealed for not having come yet."""
        self._holding = True
        try:
            super().receive_datagrams(datagrams, now)
        finally:
            self._holding = False
        self._route(now)

    def handle_timer(self, now: float) -> None:
        super().handle_timer(now)
        self._route(now)

    def get_timer(self) -> float | None:
        timers = [t for t in (super().get_timer(), self.retimer.get_timer()) if t is not None]
        return min(timers) if timers else None

    def events_received(self) -> list[RtpEvent]:
        out, self._out = self._out, []
        return out

    def _route(self, now: float, *, filled: bool = False, fills: int = 0) -> None:
        for event in super().events_received():
            if isinstance(event, BurstStart):
                self._finish_held()
                self.retimer.start(self._last_duration or FRAME, self.last_jitter)
                self._out.append(event)
            elif isinstance(event, Audio):
                self.retimer.push(event.pcm, now, filled=filled, fill=fills > 0)
                fills -= 1
            elif isinstance(event, BurstEnd):
                self._held_end = event
                self.retimer.ending = True
        if self._ssrc is not None:
            self.retimer.packets(self._longest)
        if self._holding:
            return
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
