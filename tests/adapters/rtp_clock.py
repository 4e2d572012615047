"""Driving an RTP receiver on a fake clock, as its asyncio driver would (shared by the tests)."""

from __future__ import annotations

from typing import Any

ADDR = ("127.0.0.1", 5004)
Arrivals = list[tuple[float, bytes]]


def drive(rx: Any, arrivals: Arrivals, until: float = float("inf")) -> list[tuple[float, Any]]:
    """Packets (``(time, datagram)``, sorted) and ``rx``'s timers in time order, up to
    ``until``; returns ``[(time, event)]``."""
    out: list[tuple[float, Any]] = []
    i = 0
    now = 0.0
    while now <= until:
        timer = rx.get_timer()
        nxt = arrivals[i][0] if i < len(arrivals) else None
        cands = [t for t in (timer, nxt) if t is not None]
        if not cands:
            break
        now = min(cands)
        if nxt is not None and now == nxt:
            rx.receive_datagram(arrivals[i][1], ADDR, now)
            i += 1
        else:
            rx.handle_timer(now)
        out.extend((now, e) for e in rx.events_received())
    return out
