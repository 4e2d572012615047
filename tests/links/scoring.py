"""What a far gateway sent its radio, measured: audio placed by RTP timestamp, continuity of
the RTP stream, correlation with what the near radio sent (whole and in windows), PESQ.

The audio is rebuilt the way a receiver plays it: each packet's L16 payload at its RTP
timestamp (so a packet the gateway did not send leaves silence where it belonged, and a
repeated one lands on itself), not concatenated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adapters.codecs.pcm import l16_to_pcm
from adapters.rtp.packet import RtpPacket
from tests.adapters.gateway_rig import bursts_of
from tests.rigs.signals import Samples, align, correlation_at, overlap
from tests.rigs.stalls import LoopStalls

RATE = 16000
FRAME = RATE // 50  # samples in 20 ms


def placed_audio(packets: list[tuple[float, RtpPacket]], rate: int = RATE) -> Samples:
    """The L16 payloads placed at their RTP timestamps (relative to the first packet)."""
    if not packets:
        return np.zeros(0)
    ts0 = packets[0][1].timestamp
    parts = []
    for _t, p in packets:
        pcm = np.frombuffer(l16_to_pcm(p.payload), dtype="<i2").astype(np.float64) / 32768.0
        parts.append(((p.timestamp - ts0) % (1 << 32), pcm))
    end = max(at + pcm.size for at, pcm in parts)
    out = np.zeros(end)
    for at, pcm in parts:
        out[at : at + pcm.size] = pcm
    return out


@dataclass(frozen=True)
class Continuity:
    bursts: int  # RTP bursts (SSRC change or marker): 1 for one transmission
    seq_gaps: int  # places where the sequence number did not advance by exactly 1
    ts_gaps: int  # places where the timestamp did not advance by exactly one packet
    max_gap_ms: float  # the longest silence between two packets' arrivals
    seconds: float  # audio in the stream, by timestamp


def continuity(packets: list[tuple[float, RtpPacket]], frame: int = FRAME) -> Continuity:
    if not packets:
        return Continuity(0, 0, 0, 0.0, 0.0)
    pkts = [p for _t, p in packets]
    seq = [(b.sequence_number - a.sequence_number) % 65536 for a, b in zip(pkts, pkts[1:])]
    ts = [(b.timestamp - a.timestamp) % (1 << 32) for a, b in zip(pkts, pkts[1:])]
    arrivals = [t for t, _p in packets]
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])] or [0.0]
    seconds = ((pkts[-1].timestamp - pkts[0].timestamp) % (1 << 32) + frame) / (frame * 50)
    return Continuity(
        len(bursts_of(packets)),
        sum(d != 1 for d in seq),
        sum(d != frame for d in ts),
        max(gaps) * 1000,
        seconds,
    )


def ts_gaps_s(packets: list[tuple[float, RtpPacket]], frame: int = FRAME) -> list[float]:
    """Each jump of the RTP timestamp beyond one frame, in seconds of media time."""
    pkts = [p for _t, p in packets]
    steps = [(b.timestamp - a.timestamp) % (1 << 32) for a, b in zip(pkts, pkts[1:])]
    return [(s - frame) / (frame * 50) for s in steps if s != frame]


def excused_by_stalls(gaps: list[float], stalls: LoopStalls) -> bool:
    """Whether timestamp ``gaps`` are what this process's own stalls made: the far gateway
    runs in the test process, and its output stops while the process is not scheduled. Each
    gap needs a stall of at least 60 ms, and none may be longer than the longest stall."""
    return len(gaps) <= stalls.longer_than(0.06) and all(g <= stalls.longest + 0.02 for g in gaps)


GOOD = 0.8  # a window whose best alignment correlates at least this well carries the talker


@dataclass(frozen=True)
class Window:
    start: int  # in ``ref``, samples
    offset: int  # its best alignment in ``out``: at start + lag + offset
    corr: float


def windows(ref: Samples, out: Samples, lag: int, rate: int = RATE) -> list[Window]:
    """Each 0.2 s window of ``ref`` with sound (half-overlapping) aligned on its own in
    ``out``, within ±100 ms of ``lag``. A jitter buffer that adds a frame of delay (a stretch)
    shifts what follows, which one global lag would count as a fault; a lost, silent or
    garbled stretch of audio still scores low."""
    win, step, span = rate // 5, rate // 10, rate // 10
    found = []
    for start in range(0, ref.size - win + 1, step):
        seg = ref[start : start + win]
        if np.sqrt(np.mean(seg**2)) < 0.01:  # a pause: nothing to compare
            continue
        scores = [
            (correlation_at(seg, out[max(start + lag + d, 0) :], 0), d)
            for d in range(-span, span + 1, 4)
        ]
        corr, offset = max(scores)
        found.append(Window(start, offset, corr))
    return found


def dropouts(ref: Samples, out: Samples, lag: int, found: list[Window], rate: int = RATE) -> int:
    """20 ms frames of ``out`` (the far gateway's packets) that are (nearly) silent where
    ``ref`` is well inside a syllable (RMS ≥ a quarter of its loudest frame's), each mapped
    onto ``ref`` by the best window that holds it: audio the far side left silent instead of
    rebuilding or concealing it."""
    frame, win = rate // 50, rate // 5
    n = ref.size // frame
    if n == 0 or not found:
        return 0
    loudest = float(np.sqrt(np.mean(ref[: n * frame].reshape(n, frame) ** 2, axis=1)).max())
    count = 0
    for j in range(out.size // frame):
        near = j * frame - lag  # where this frame sits in ref, at the global lag
        holding = [w for w in found if w.start <= near < w.start + win]
        if not holding:
            continue
        r = near - max(holding, key=lambda w: w.corr).offset
        want = ref[max(r, 0) : max(r, 0) + frame]
        level = float(np.sqrt(np.mean(want**2))) if want.size == frame else 0.0
        got = float(np.sqrt(np.mean(out[j * frame : (j + 1) * frame] ** 2)))
        count += int(level >= 0.25 * loudest and got < 0.1 * level)
    return count


@dataclass(frozen=True)
class Match:
    lag: int
    corr: float  # of the whole signal at one lag
    good: float  # share of 0.2 s windows that correlate >= GOOD on their own alignment
    worst: float  # the worst window
    dropouts: int  # loud 20 ms frames that came out (nearly) silent


def match(ref: Samples, out: Samples, rate: int = RATE, settle: float = 0.0) -> Match:
    """How well ``out`` reproduces ``ref`` (alignment searched within 1 s). ``good`` and
    ``worst`` leave out the windows that start in the first ``settle`` seconds (while a
    jitter buffer finds its delay: bounded by its own counters instead)."""
    lag, corr = align(ref, out, max_lag=rate)
    found = windows(ref, out, lag, rate)
    scores = [w.corr for w in found if w.start >= settle * rate] or [0.0]
    good = sum(c >= GOOD for c in scores) / len(scores)
    return Match(lag, corr, good, min(scores), dropouts(ref, out, lag, found, rate))


def pesq_wb(ref: Samples, out: Samples, rate: int = RATE) -> float | None:
    """PESQ P.862.2 wideband MOS-LQO of the aligned overlap; None without the pesq module."""
    try:
        from pesq import pesq
    except ImportError:
        return None
    lag, _corr = align(ref, out, max_lag=rate)
    a, b = overlap(ref, out, lag)
    return float(pesq(rate, a, b, "wb"))
