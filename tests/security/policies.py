"""What a hostile relay operator does to each message: small policies that compose.

The harness (:mod:`tests.rigs.hostile_relay`) hands every message it reads off the wire, in
either direction, WebSocket or UDP, to one policy as ``policy(msg, forward)``. ``forward``
sends a message on towards its destination (the next policy of a :class:`Chain`, at the end the
wire); a policy calls it zero times (drop), once (pass, maybe modified), later (hold, delay) or
more than once (duplicate). Injection needs no policy: :meth:`HostileRelay.inject_ws` and
:meth:`HostileRelay.inject_udp` write straight onto a connection.

``where(...)`` builds the predicates the policies take: ``where(direction="down", t="deliver",
kind="msg", device="ca-rcmp/vessel-1")`` matches a relay-to-vessel delivery of a data message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from tests.security.wsframes import BINARY, TEXT

Transport = Literal["ws", "udp"]
Way = Literal["up", "down"]  # up: endpoint -> relay; down: relay -> endpoint


@dataclass(frozen=True)
class Message:
    """One WebSocket message or UDP datagram as the proxy saw it.

    ``opcode``: the WebSocket opcode (:mod:`tests.security.wsframes`), or for UDP the datagram's
    kind byte (``bridge.wire.media.UDP_MEDIA``, ``UDP_REGISTER``, ``UDP_MEDIA_DOWN``; 0 when it
    is no relay datagram). ``conn``: the connection (WebSocket) or client (UDP) number, in the
    order the proxy saw them. ``device``: whose connection it is, once the relay's ``welcome``
    named it (UDP: by the session token). ``origin``: ``"wire"``, ``"inject"`` or ``"replay"``.
    """

    transport: Transport
    direction: Way
    opcode: int
    payload: bytes
    conn: int
    device: str | None = None
    at: float = 0.0
    origin: str = "wire"

    @property
    def control(self) -> dict[str, Any] | None:
        """The control message (a JSON object in a text frame), else None."""
        if self.transport != "ws" or self.opcode != TEXT:
            return None
        try:
            value = json.loads(self.payload)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    @property
    def t(self) -> str | None:
        c = self.control
        return c.get("t") if c is not None else None

    @property
    def is_media(self) -> bool:
        return self.transport == "udp" or self.opcode == BINARY

    def with_payload(self, payload: bytes | str, origin: str | None = None) -> Message:
        data = payload.encode() if isinstance(payload, str) else payload
        return dataclasses.replace(self, payload=data, origin=origin or self.origin)

    def with_control(self, **fields: Any) -> Message:
        """This control message with ``fields`` set (re-encoded as JSON)."""
        c = self.control
        if c is None:
            raise ValueError("not a control message")
        return self.with_payload(json.dumps({**c, **fields}, separators=(",", ":")))


Forward = Callable[[Message], None]
Policy = Callable[[Message, Forward], None]
Pred = Callable[[Message], bool]
_CONTROL_ATTRS = frozenset({"transport", "direction", "opcode", "conn", "device", "origin"})


def where(**match: Any) -> Pred:
    """A predicate: message attributes (``transport``, ``direction``, ``opcode``, ``conn``,
    ``device``, ``origin``) and control-message fields (``t``, ``kind``, ``ch``, ``id``…) equal
    to the values given; a control field never matches a message that is no control."""

    def pred(msg: Message) -> bool:
        control = msg.control
        for key, want in match.items():
            if key in _CONTROL_ATTRS:
                if getattr(msg, key) != want:
                    return False
            elif control is None or control.get(key) != want:
                return False
        return True

    return pred


def everything(msg: Message) -> bool:
    return True


def passthrough(msg: Message, forward: Forward) -> None:
    forward(msg)


class Chain:
    """Policies applied in order: each one's ``forward`` is the next one."""

    def __init__(self, *policies: Policy) -> None:
        self.policies = policies

    def __call__(self, msg: Message, forward: Forward) -> None:
        self._at(0, msg, forward)

    def _at(self, i: int, msg: Message, forward: Forward) -> None:
        if i == len(self.policies):
            forward(msg)
        else:
            self.policies[i](msg, lambda m: self._at(i + 1, m, forward))


class DropWhere:
    """Drop what matches (the first ``limit`` of them when given); ``dropped`` lists them."""

    def __init__(self, pred: Pred, limit: int | None = None) -> None:
        self.pred, self.limit = pred, limit
        self.dropped: list[Message] = []

    def __call__(self, msg: Message, forward: Forward) -> None:
        if self.pred(msg) and (self.limit is None or len(self.dropped) < self.limit):
            self.dropped.append(msg)
        else:
            forward(msg)


class Record:
    """Pass everything on and keep what matches, with where it was going, for :meth:`replay`."""

    def __init__(self, pred: Pred = everything) -> None:
        self.pred = pred
        self._kept: list[tuple[Message, Forward]] = []

    @property
    def messages(self) -> list[Message]:
        return [m for m, _ in self._kept]

    def __call__(self, msg: Message, forward: Forward) -> None:
        if self.pred(msg):
            self._kept.append((msg, forward))
        forward(msg)

    def replay(
        self, pred: Pred = everything, change: Callable[[Message], Message] | None = None
    ) -> int:
        """Send the recorded messages that match ``pred`` again, the way they went (the same
        connection or UDP client), changed by ``change`` if given; how many were sent."""
        sent = 0
        for msg, forward in list(self._kept):
            if pred(msg):
                again = dataclasses.replace(msg, origin="replay")
                forward(change(again) if change is not None else again)
                sent += 1
        return sent


class Hold:
    """Keep what matches (the first ``limit`` of them) until :meth:`release`."""

    def __init__(self, pred: Pred, limit: int | None = None) -> None:
        self.pred, self.limit = pred, limit
        self.taken = 0
        self._held: list[tuple[Message, Forward]] = []

    @property
    def held(self) -> list[Message]:
        return [m for m, _ in self._held]

    def __call__(self, msg: Message, forward: Forward) -> None:
        if self.pred(msg) and (self.limit is None or self.taken < self.limit):
            self.taken += 1
            self._held.append((msg, forward))
        else:
            forward(msg)

    def release(self, reverse: bool = False) -> int:
        """Send what is held, in arrival order or ``reverse`` (reordering); how many."""
        held, self._held = self._held, []
        for msg, forward in reversed(held) if reverse else held:
            forward(msg)
        return len(held)


class Delay:
    """Send what matches ``seconds`` later (what follows it may overtake it)."""

    def __init__(self, seconds: float, pred: Pred = everything) -> None:
        self.seconds, self.pred = seconds, pred

    def __call__(self, msg: Message, forward: Forward) -> None:
        if self.pred(msg):
            asyncio.get_running_loop().call_later(self.seconds, forward, msg)
        else:
            forward(msg)


class Duplicate:
    """Send what matches ``copies`` extra times, right after it."""

    def __init__(self, pred: Pred, copies: int = 1) -> None:
        self.pred, self.copies = pred, copies

    def __call__(self, msg: Message, forward: Forward) -> None:
        forward(msg)
        if self.pred(msg):
            for _ in range(self.copies):
                forward(dataclasses.replace(msg, origin="replay"))


class Modify:
    """Send what matches as ``change(msg)`` returns it (``None``: dropped)."""

    def __init__(self, pred: Pred, change: Callable[[Message], Message | None]) -> None:
        self.pred, self.change = pred, change
        self.changed = 0

    def __call__(self, msg: Message, forward: Forward) -> None:
        if not self.pred(msg):
            forward(msg)
            return
        self.changed += 1
        new = self.change(msg)
        if new is not None:
            forward(new)
