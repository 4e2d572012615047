"""The jitter buffer alone under the vessel link's jitter, on a fake clock (sans-IO).

A talker sends one frame every 20 ms; each is delivered after the rigs' link model draws its
transit (:class:`tests.rigs.impair.Direction`: ``delay ± jitter``, seeded, reordering as netem
does); the receiver pops once per 20 ms period (at a phase of its own). Nothing here sleeps:
the schedule is computed, then played through :class:`bridge.audio.jitter.JitterBuffer`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from bridge.audio.jitter import JitterBuffer, JitterStats
from tests.rigs.impair import Direction, Impairment

FRAME = 0.020


@dataclass(frozen=True)
class Played:
    kinds: Counter[str]  # frame / fec / conceal, per pop
    stats: JitterStats
    target_ms: float  # the buffer's target delay at the end


def play_through(
    frames: int, jitter: Impairment, *, phase: float = 0.007, tail: float = 1.0
) -> Played:
    link = Direction(jitter)
    arrivals = []
    for seq in range(frames):
        at = link.datagram(seq * FRAME)
        if at is not None:
            arrivals.append((at, seq))
    arrivals.sort()
    jb = JitterBuffer()
    kinds: Counter[str] = Counter()
    k = 0
    now = phase
    while now < frames * FRAME + tail:
        while k < len(arrivals) and arrivals[k][0] <= now:
            jb.push(arrivals[k][1] % 65536, arrivals[k][1].to_bytes(4, "big"), arrivals[k][0])
            k += 1
        item = jb.pop(now)
        if item is not None:
            kinds[item.kind] += 1
        now += FRAME
    return Played(kinds, jb.stats, jb.target_delay_ms)
