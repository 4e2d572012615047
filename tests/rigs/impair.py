"""The link model the proxies apply: delay, jitter, loss and outages, sans-IO.

Nothing here reads a clock or sleeps: every decision takes ``now`` (seconds, any monotonic
clock: the event loop's, or a fake one in a test) and returns when the datagram or chunk is to
be delivered. The proxies (:mod:`tests.rigs.udp_proxy`, :mod:`tests.rigs.tcp_proxy`) are the
drivers that move bytes at those times.

Semantics, chosen to match Linux ``netem`` where it has an equivalent:

- ``delay`` and ``jitter``: each unit is delivered after ``delay + U(-jitter, +jitter)``
  seconds, clamped at 0 (netem ``delay D J`` without a distribution). ``reorder=False`` keeps
  arrival order (a unit is never delivered before the one sent before it); a TCP stream is
  always in order.
- ``loss``: each datagram is dropped with probability ``loss`` (0..1), independently; the
  random draws come from ``random.Random(seed)``, so a run is reproducible: same seed, same
  sequence of decisions.
- Outages (:class:`LinkState`): the link is down while a manual switch is down or ``now`` is
  inside a scheduled window ``(start, end)``, on the same clock as ``now``. What "down" does
  is the driver's choice: the UDP proxy drops, the TCP proxy holds bytes or resets.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Impairment:
    """One direction of a link. Times in seconds, ``loss`` a probability."""

    delay: float = 0.0
    jitter: float = 0.0
    loss: float = 0.0
    reorder: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.delay < 0 or self.jitter < 0:
            raise ValueError(f"delay and jitter must be >= 0, got {self.delay}, {self.jitter}")
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError(f"loss is a probability in [0, 1], got {self.loss}")


@dataclass
class LinkState:
    """Whether the link is up: a manual switch plus scheduled outage windows.

    Windows are ``(start, end)`` on the caller's clock, half-open (down at ``start``, up at
    ``end``). :meth:`set_down` / :meth:`set_up` override nothing in the schedule: the link is
    down if either says so.
    """

    windows: list[tuple[float, float]] = field(default_factory=list)
    manual_down: bool = False
    outages_seen: int = 0
    # Called after the manual switch changes (drivers wake waiters or reset connections).
    watchers: list[Callable[[bool], None]] = field(default_factory=list)

    def schedule(self, start: float, duration: float) -> None:
        if duration <= 0:
            raise ValueError(f"an outage lasts > 0 s, got {duration}")
        self.windows.append((start, start + duration))
        self.windows.sort()

    def set_down(self) -> None:
        if not self.manual_down:
            self.outages_seen += 1
        self.manual_down = True
        for watcher in list(self.watchers):
            watcher(True)

    def set_up(self) -> None:
        self.manual_down = False
        for watcher in list(self.watchers):
            watcher(False)

    def is_down(self, now: float) -> bool:
        return self.manual_down or any(a <= now < b for a, b in self.windows)

    def up_at(self, now: float) -> float | None:
        """When the link is next up: ``now`` if it is, None while the manual switch is down."""
        if self.manual_down:
            return None
        t = now
        for a, b in self.windows:  # sorted; overlapping windows chain
            if a <= t < b:
                t = b
        return t


class Direction:
    """The decisions for one direction of a link: deliver at a time, or drop."""

    def __init__(self, impairment: Impairment, link: LinkState | None = None) -> None:
        self.impairment = impairment
        self.link = link if link is not None else LinkState()
        self._rng = random.Random(impairment.seed)
        self._last = float("-inf")
        self.sent = 0
        self.dropped = 0
        self.dropped_down = 0

    def transit(self) -> float:
        """One draw of this direction's one-way delay (seconds, >= 0)."""
        imp = self.impairment
        if imp.jitter == 0.0:
            return imp.delay
        return max(0.0, imp.delay + self._rng.uniform(-imp.jitter, imp.jitter))

    def datagram(self, now: float) -> float | None:
        """When a datagram sent at ``now`` arrives, or None if the link drops it."""
        self.sent += 1
        if self.link.is_down(now):
            self.dropped_down += 1
            return None
        # Both draws happen for every datagram, so one seed gives one schedule whatever
        # the loss setting.
        lost = self._rng.random() < self.impairment.loss
        at = now + self.transit()
        if lost:
            self.dropped += 1
            return None
        return self._ordered(at)

    def chunk(self, now: float) -> float | None:
        """When stream bytes sent at ``now`` arrive (in order), or None while the manual
        switch is down (the driver waits for :meth:`LinkState.set_up`). Never drops."""
        up = self.link.up_at(now)
        if up is None:
            return None
        at = up + self.transit()
        self._last = max(self._last, at)
        return self._last

    def _ordered(self, at: float) -> float:
        if not self.impairment.reorder:
            at = max(at, self._last)
            self._last = at
        return at
