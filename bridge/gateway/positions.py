"""Positions on a channel (sans-IO): their data-message body and the outbox that paces them.

**The body.** A position travels as a signed channel message of kind ``data`` (the kinds are
fixed by :data:`crypto.messages.MESSAGE_KINDS`: ``text``, ``data``, ``emergency``; a position
is data, not text, and a new kind would change the signed-message format for every endpoint),
whose body is compact JSON tagged ``"t": "pos"`` and versioned ``"v": 1``::

    {"v":1,"t":"pos","uid":"ANDROID-9","cs":"RCMP 4","lat":49.0012,"lon":-123.0345,
     "time":1796000000.5,"stale":1796000120.5,"kind":"a-f-G-U-C"}

plus ``hae``, ``ce``, ``le``, ``course`` and ``speed`` when known. Floats are written with
Python's shortest round-trip repr, so no decimal is lost. :func:`decode_position` is a parser
of what another member signed: oversized, not JSON, a field missing, unknown or of the wrong
type, a value :class:`~adapters.base.Position` refuses: each is a
:class:`~bridge.errors.RemoteProtocolError` with a code (``too-large``, ``malformed``,
``bad-version``, ``unknown-type``), never anything else, and never quoting the body.

**The outbox.** A TAK network may report many tracks many times a second; a channel carries at
most one position per uid every ``interval`` seconds and at most ``rate`` per second in all
(a token bucket of depth ``burst``), so that a flood of positions cannot crowd out voice and
text on the relay link. :meth:`PositionOutbox.offer` coalesces per uid (a newer report replaces
the waiting one, which keeps its place in line), drops reports already stale, and holds at
most ``max_pending`` uids (a new uid beyond that is dropped and counted);
:meth:`PositionOutbox.due` hands out what may go now, oldest first; :meth:`get_timer` says
when more may. Time is passed in.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from adapters.base import UNKNOWN_METRES, Position
from bridge.errors import RemoteProtocolError
from bridge.wire.codes import Code

__all__ = [
    "MAX_POSITION_BODY",
    "POSITION_VERSION",
    "OutboxStats",
    "PositionOutbox",
    "PositionPacing",
    "decode_position",
    "encode_position",
]

POSITION_VERSION = 1
POSITION_TAG = "pos"
MAX_POSITION_BODY = 2048  # bytes; a full v1 body with 256-character strings fits
_OPTIONAL = {"hae": UNKNOWN_METRES, "ce": UNKNOWN_METRES, "le": UNKNOWN_METRES}
_REQUIRED = {"v", "t", "uid", "cs", "lat", "lon", "time", "stale", "kind"}
_KEYS = _REQUIRED | set(_OPTIONAL) | {"course", "speed"}


def encode_position(pos: Position) -> bytes:
    """The v1 body of ``pos`` (compact JSON, UTF-8)."""
    obj: dict[str, Any] = {
        "v": POSITION_VERSION,
        "t": POSITION_TAG,
        "uid": pos.uid,
        "cs": pos.callsign,
        "lat": pos.lat,
        "lon": pos.lon,
        "time": pos.time,
        "stale": pos.stale,
        "kind": pos.kind,
    }
    for name, unknown in _OPTIONAL.items():
        if getattr(pos, name) != unknown:
            obj[name] = getattr(pos, name)
    for name in ("course", "speed"):
        if getattr(pos, name) is not None:
            obj[name] = getattr(pos, name)
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _no_constant(name: str) -> None:
    raise ValueError("NaN and Infinity are not JSON")


def decode_position(body: bytes) -> Position:
    """The :class:`Position` in a v1 body, or :class:`RemoteProtocolError` with a code."""
    if len(body) > MAX_POSITION_BODY:
        raise RemoteProtocolError(Code.TOO_LARGE, f"position body over {MAX_POSITION_BODY} bytes")
    try:
        obj = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise RemoteProtocolError(Code.MALFORMED, "position body is not JSON") from None
    if not isinstance(obj, dict):
        raise RemoteProtocolError(Code.MALFORMED, "position body is not an object")
    if obj.get("t") != POSITION_TAG:
        raise RemoteProtocolError(Code.UNKNOWN_TYPE, "data message is not a position")
    version = obj.get("v")
    if isinstance(version, bool) or not isinstance(version, int):
        raise RemoteProtocolError(Code.MALFORMED, "position body has no version")
    if version != POSITION_VERSION:
        raise RemoteProtocolError(Code.BAD_VERSION, f"position version is not {POSITION_VERSION}")
    if not _REQUIRED <= obj.keys() <= _KEYS:
        raise RemoteProtocolError(Code.MALFORMED, "position fields missing or unknown")
    try:
        return Position(
            uid=obj["uid"],
            callsign=obj["cs"],
            lat=obj["lat"],
            lon=obj["lon"],
            time=obj["time"],
            stale=obj["stale"],
            kind=obj["kind"],
            course=obj.get("course"),
            speed=obj.get("speed"),
            **{name: obj.get(name, unknown) for name, unknown in _OPTIONAL.items()},
        )
    except (ValueError, TypeError):
        raise RemoteProtocolError(Code.MALFORMED, "a position field is out of range") from None


@dataclass(frozen=True, slots=True)
class PositionPacing:
    """How fast a channel sends positions: one per uid every ``interval`` s, ``rate`` per s in
    all (bursts of up to ``burst``), ``max_pending`` uids waiting, ``max_in_flight`` messages
    sent but not yet accepted by the relay."""

    interval: float = 1.0
    rate: float = 20.0
    burst: int = 20
    max_pending: int = 256
    max_in_flight: int = 4

    def __post_init__(self) -> None:
        for name in ("interval", "rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"positions.{name} is a number")
        if not 0 <= self.interval <= 3600:
            raise ValueError("positions.interval must be 0..3600 s")
        if not 0 < self.rate <= 100_000:
            raise ValueError("positions.rate must be > 0 and <= 100000 per s")
        for name, top in (("burst", 100_000), ("max_pending", 100_000), ("max_in_flight", 64)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise ValueError(f"positions.{name} must be 1..{top}")


@dataclass(slots=True)
class OutboxStats:
    offered: int = 0
    coalesced: int = 0  # replaced a report of the same uid still waiting
    stale: int = 0  # stale when offered or when its turn came
    dropped: int = 0  # a new uid while max_pending were waiting
    released: int = 0  # handed out by due()


class PositionOutbox:
    """Coalesces, paces and bounds the positions one channel sends (see the module docstring)."""

    def __init__(self, pacing: PositionPacing | None = None) -> None:
        p = pacing or PositionPacing()
        self.interval, self.rate, self.burst, self.max_pending = (
            p.interval,
            p.rate,
            p.burst,
            p.max_pending,
        )
        self.stats = OutboxStats()
        self._pending: OrderedDict[str, tuple[Position, float]] = OrderedDict()  # uid → (pos, at)
        self._last: dict[str, float] = {}  # uid → when it was last handed out
        self._tokens = float(p.burst)
        self._filled_at: float | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def offer(self, pos: Position, wall: float, now: float) -> bool:
        """Queue ``pos`` (``wall``: epoch seconds, for its stale time; ``now``: the pacing
        clock); False if it was dropped (stale, or too many uids waiting)."""
        self.stats.offered += 1
        if pos.stale <= wall:
            self.stats.stale += 1
            return False
        waiting = self._pending.get(pos.uid)
        if waiting is not None:
            self.stats.coalesced += 1
            self._pending[pos.uid] = (pos, waiting[1])
            return True
        if len(self._pending) >= self.max_pending:
            self.stats.dropped += 1
            return False
        self._pending[pos.uid] = (pos, now)
        return True

    def _refill(self, now: float) -> None:
        if self._filled_at is not None and now > self._filled_at:
            self._tokens = min(self.burst, self._tokens + (now - self._filled_at) * self.rate)
        if self._filled_at is None or now > self._filled_at:
            self._filled_at = now

    def _ready_at(self, uid: str, queued: float) -> float:
        last = self._last.get(uid)
        return queued if last is None else max(queued, last + self.interval)

    def due(self, wall: float, now: float, limit: int | None = None) -> list[Position]:
        """What may be sent now (at most ``limit``), oldest first; stale reports are dropped."""
        self._refill(now)
        out: list[Position] = []
        for uid, (pos, queued) in list(self._pending.items()):
            if pos.stale <= wall:
                del self._pending[uid]
                self.stats.stale += 1
                continue
            if self._tokens < 1 or (limit is not None and len(out) >= limit):
                break
            if self._ready_at(uid, queued) > now:
                continue
            del self._pending[uid]
            self._last[uid] = now
            self._tokens -= 1
            out.append(pos)
        self.stats.released += len(out)
        if len(self._last) > 2 * self.max_pending:  # forget uids whose interval has passed
            self._last = {u: t for u, t in self._last.items() if now - t < self.interval}
        return out

    def get_timer(self) -> float | None:
        """When :meth:`due` may next hand something out; None while nothing waits."""
        if not self._pending:
            return None
        ready = min(self._ready_at(uid, queued) for uid, (_, queued) in self._pending.items())
        if self._tokens >= 1 or self._filled_at is None:
            return ready
        refill = self._filled_at + (1 - self._tokens) / self.rate
        return max(ready, refill)
