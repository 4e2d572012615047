"""Token buckets for per-connection rate limits (sans-IO: time is passed in)."""

from __future__ import annotations


class TokenBucket:
    """Allows ``rate`` events per second on average with bursts of up to ``burst``."""

    __slots__ = ("rate", "burst", "_tokens", "_last")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = now

    def allow(self, now: float, cost: float = 1.0) -> bool:
        elapsed = now - self._last
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._last = now
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def wait(self, now: float, cost: float = 1.0) -> float:
        """Seconds from ``now`` until ``cost`` tokens (at most a full bucket) are there."""
        elapsed = max(0.0, now - self._last)
        tokens = min(self.burst, self._tokens + elapsed * self.rate)
        return max(0.0, min(cost, self.burst) - tokens) / self.rate
