"""Adaptive jitter buffer for 20 ms audio frames (sans-IO: the caller passes ``now``).

Theory of operation
-------------------
Packets are pushed as they arrive with a frame sequence number (16- or 32-bit, wrapping;
it is *extended* to an unbounded integer like RFC 3550 §A.1 does for RTP). The driver pops
once per frame period; each pop yields what the decoder should produce for that period:

* ``frame``   — the expected frame is buffered: decode it;
* ``fec``     — it is missing but its successor is buffered: decode the successor's
  in-band FEC (Opus LBRR) to rebuild it (the successor is played normally next time);
* ``conceal`` — nothing usable: run packet loss concealment;
* ``None``    — nothing to play: buffering before the first playout, or the burst is over.

**Playout schedule.** For every packet the buffer records its *relative delay*
``r = arrival - seq * frame`` (the network transit time up to a constant, RFC 3550 §6.4.1).
The fastest packet of the recent window fixes ``base = min(r)``, and frame ``seq`` is due at
``base + seq * frame + target_delay``. A pop at ``now`` therefore wants to play the *ideal*
sequence ``floor((now - base - target_delay) / frame)``. The first frame of a burst is
played once it is due; afterwards the play cursor advances one frame per pop, except that

* *stretch*: when the expected frame has not arrived and the cursor is ahead of the ideal
  sequence (the target grew), the pop conceals **without** advancing, adding one frame of
  delay exactly when a late packet needs it (``seq`` of that item is ``None``);
* *shrink*: when the cursor is two or more frames behind the ideal sequence (the target
  fell), one buffered frame is skipped, at most once per ``shrink_every`` pops.

**Adaptation.** The target delay starts at ``start_delay_ms`` (default ``min_delay_ms``):
what a caller that knows the path (an earlier burst of the same talker) expects. It is then
the spread between the 95th percentile and the minimum of the relative delays of the last
``window`` packets, clamped to ``[min_delay_ms, max_delay_ms]``. It rises at once when
jitter grows and decays exponentially (time constant about ``decay`` packets) when jitter
falls. ``peak_spread_ms`` keeps the largest spread seen since construction (the whole
spread while fewer than 8 packets are known), for a caller to start the next burst with.
The RFC 3550 §A.8 interarrival jitter estimator is kept in ``stats.jitter_ms`` for reports.

**Bounds.** A frame older than ``max_delay_ms`` when its turn comes is dropped instead of
played, and at most ``max_frames`` frames are held (the oldest is dropped), so neither delay
nor memory grows without bound. A packet far ahead of the cursor (more than ``max_frames``)
resynchronises the buffer as a new burst. When the buffer has been empty for longer than
``max_delay_ms`` (or ``reset()`` is called) the burst is over and pops return ``None``.

**Resumption.** A frame that arrives behind the cursor while the buffer is empty, after
``RESUME_AFTER`` or more concealed pops, is no late straggler: the sender paused (its
counter stood still while time ran on) and resumed. Instead of being dropped as late, it
restarts the buffer (:meth:`restart`) at the delay the last frame played with
(``playout_delay_ms``, or the target if more), so what follows plays from its first frame
and no earlier than the audio before it did.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

__all__ = ["JitterBuffer", "JitterStats", "PlayoutItem"]

RESUME_AFTER = 2  # concealed pops after which a frame behind the cursor is a resumption

PlayoutKind = Literal["frame", "fec", "conceal"]


@dataclass(frozen=True, slots=True)
class PlayoutItem:
    """What to produce for one frame period."""

    kind: PlayoutKind
    seq: int | None  # wire sequence number; None for a stretch-inserted concealment
    payload: bytes | None  # the frame (``frame``), its successor (``fec``), None (``conceal``)

    def __post_init__(self) -> None:
        if self.kind not in ("frame", "fec", "conceal"):
            raise ValueError(f"unknown playout kind {self.kind!r}")
        if (self.payload is None) != (self.kind == "conceal"):
            raise ValueError("frame and fec items carry a payload, conceal items none")


@dataclass(slots=True)
class JitterStats:
    """Counters since construction (``depth`` and ``jitter_ms`` are current values)."""

    received: int = 0
    played: int = 0
    late: int = 0
    duplicate: int = 0
    concealed: int = 0
    fec: int = 0
    overflow_dropped: int = 0
    skipped: int = 0
    depth: int = 0
    jitter_ms: float = 0.0


class JitterBuffer:
    """Reordering, adaptive-delay buffer between the network and an audio decoder."""

    def __init__(
        self,
        frame_ms: int = 20,
        min_delay_ms: int = 20,
        max_delay_ms: int = 200,
        max_frames: int = 50,
        *,
        start_delay_ms: float | None = None,
        seq_bits: int = 16,
        window: int = 128,
        decay: int = 64,
        shrink_every: int = 10,
    ) -> None:
        if frame_ms <= 0 or not 0 <= min_delay_ms <= max_delay_ms or max_frames < 2:
            raise ValueError("invalid jitter buffer bounds")
        start = float(min_delay_ms) if start_delay_ms is None else float(start_delay_ms)
        if not min_delay_ms <= start <= max_delay_ms:
            raise ValueError("start_delay_ms must lie within [min_delay_ms, max_delay_ms]")
        if seq_bits not in (16, 32):
            raise ValueError("seq_bits must be 16 or 32")
        self.frame_ms = frame_ms
        self.min_delay_ms = min_delay_ms
        self.max_delay_ms = max_delay_ms
        self.max_frames = max_frames
        self._modulus = 1 << seq_bits
        self._decay = decay
        self._shrink_every = shrink_every
        self._window: deque[float] = deque(maxlen=window)
        self.target_delay_ms: float = start
        self.peak_spread_ms: float = 0.0  # largest transit spread seen (Adaptation)
        self.stats = JitterStats()
        self._frames: dict[int, tuple[bytes, float]] = {}
        self._played: deque[int] = deque(maxlen=64)
        self._highest: int | None = None  # highest extended sequence number seen
        self._cursor: int | None = None  # next extended sequence to play; None = buffering
        self._last_arrival = 0.0
        self._last_transit: float | None = None
        self._since_shrink = 0
        self._misses = 0  # concealed pops since the last frame (or FEC) played
        self.playout_delay_ms = 0.0  # how far behind the fastest schedule the last frame played

    # --- input ---------------------------------------------------------------------------

    def push(self, seq: int, payload: bytes, now: float) -> None:
        """Add a packet that arrived at ``now`` (seconds)."""
        if not 0 <= seq < self._modulus:
            raise ValueError("sequence number out of range")
        self.stats.received += 1
        ext = self._extend(seq)
        if self._cursor is not None and ext >= self._cursor + self.max_frames:
            self._end_burst()  # the sender jumped far ahead: start over from this packet
            self._highest = ext
        elif self._resumes(ext):  # behind the cursor after a run of concealments
            self.restart(self.playout_delay_ms)
            self._highest = ext
        if (self._cursor is not None and ext < self._cursor) or ext in self._frames:
            if ext in self._frames or ext in self._played:
                self.stats.duplicate += 1
            else:
                self.stats.late += 1
                self._measure(ext, now)  # a late packet is what says the delay is too short
            return
        self._highest = ext if self._highest is None else max(self._highest, ext)
        self._last_arrival = now
        self._measure(ext, now)
        self._frames[ext] = (payload, now)
        while len(self._frames) > self.max_frames:
            oldest = min(self._frames)
            del self._frames[oldest]
            self.stats.overflow_dropped += 1
            if self._cursor is not None and self._cursor <= oldest:
                self._cursor = oldest + 1
        self.stats.depth = len(self._frames)

    def _resumes(self, ext: int) -> bool:
        return (
            self._cursor is not None
            and ext < self._cursor
            and not self._frames
            and self._misses >= RESUME_AFTER
            and ext not in self._played
        )

    def _extend(self, seq: int) -> int:
        if self._highest is None:
            return seq
        delta = (seq - self._highest) % self._modulus
        if delta >= self._modulus // 2:
            delta -= self._modulus
        return self._highest + delta

    def _measure(self, ext: int, now: float) -> None:
        transit = now * 1000.0 - ext * self.frame_ms
        if self._last_transit is not None:  # RFC 3550 §A.8
            d = abs(transit - self._last_transit)
            self.stats.jitter_ms += (d - self.stats.jitter_ms) / 16.0
        self._last_transit = transit
        self._window.append(transit)
        ordered = sorted(self._window)
        spread = ordered[int(0.95 * (len(ordered) - 1))] - ordered[0]
        if len(self._window) < 8:  # too few for a percentile: the whole spread
            self.peak_spread_ms = max(self.peak_spread_ms, ordered[-1] - ordered[0])
            return
        self.peak_spread_ms = max(self.peak_spread_ms, spread)
        wanted = min(max(spread, self.min_delay_ms), self.max_delay_ms)
        if wanted > self.target_delay_ms:
            self.target_delay_ms = wanted
        else:
            self.target_delay_ms += (wanted - self.target_delay_ms) / self._decay

    # --- output --------------------------------------------------------------------------

    def pop(self, now: float) -> PlayoutItem | None:
        """The item to play for the frame period starting at ``now``."""
        if not self._frames:
            if self._cursor is not None and now - self._last_arrival > self.max_delay_ms / 1000:
                self._end_burst()
            if self._cursor is None:
                return None
        ideal = self._ideal(now)
        if self._cursor is None:
            first = min(self._frames)
            if ideal < first:
                return None
            self._cursor = first
        self._since_shrink += 1
        if (
            self._cursor in self._frames
            and ideal - self._cursor >= 1
            and self._since_shrink >= self._shrink_every
            and len(self._frames) > 1
        ):
            del self._frames[self._cursor]  # shrink the delay by one frame
            self._played.append(self._cursor)
            self._cursor += 1
            self.stats.skipped += 1
            self._since_shrink = 0
        self._drop_stale(now)
        cursor = self._cursor
        item = self._take(cursor, ideal)
        if item.kind == "conceal":
            self._misses += 1
        else:
            self._misses = 0
            base = min(self._window) if self._window else now * 1000.0
            self.playout_delay_ms = now * 1000.0 - base - cursor * self.frame_ms
        self.stats.depth = len(self._frames)
        return item

    def _take(self, cursor: int, ideal: int) -> PlayoutItem:
        entry = self._frames.pop(cursor, None)
        if entry is not None:
            self._played.append(cursor)
            self._advance(cursor)
            self.stats.played += 1
            return PlayoutItem("frame", cursor % self._modulus, entry[0])
        successor = self._frames.get(cursor + 1)
        if successor is not None:
            self._advance(cursor)
            self.stats.fec += 1
            return PlayoutItem("fec", cursor % self._modulus, successor[0])
        self.stats.concealed += 1
        if cursor > ideal:  # stretch: wait for the late frame one more period
            self._cursor = cursor
            return PlayoutItem("conceal", None, None)
        self._advance(cursor)
        return PlayoutItem("conceal", cursor % self._modulus, None)

    def next_kind(self) -> PlayoutKind | None:
        """What the next pop would make of the cursor's frame if it came now (timing and
        stale frames aside); None while buffering before the first frame."""
        if self._cursor is None:
            return None
        if self._cursor in self._frames:
            return "frame"
        return "fec" if self._cursor + 1 in self._frames else "conceal"

    def _advance(self, done: int) -> None:
        self._cursor = done + 1

    def _ideal(self, now: float) -> int:
        base = min(self._window) if self._window else now * 1000.0
        return math.floor((now * 1000.0 - base - self.target_delay_ms) / self.frame_ms + 1e-9)

    def _drop_stale(self, now: float) -> None:
        assert self._cursor is not None
        limit = now - self.max_delay_ms / 1000
        while self._cursor in self._frames and self._frames[self._cursor][1] < limit:
            del self._frames[self._cursor]
            self.stats.overflow_dropped += 1
            self._cursor += 1

    # --- bursts --------------------------------------------------------------------------

    def _end_burst(self) -> None:
        self._frames.clear()
        self._window.clear()
        self._played.clear()
        self._cursor = None
        self._highest = None
        self._last_transit = None
        self._misses = 0
        self.stats.depth = 0

    def reset(self) -> None:
        """Start a new talk burst: forget buffered frames and timing, keep the learned target."""
        self._end_burst()

    def restart(self, delay_ms: float) -> None:
        """Start over after a pause, at ``delay_ms`` or the target, whichever is more (within
        the bounds): the audio after a pause never plays earlier than the audio before it."""
        self._end_burst()
        delay = max(delay_ms, self.target_delay_ms)
        self.target_delay_ms = min(max(delay, self.min_delay_ms), self.max_delay_ms)
