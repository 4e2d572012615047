"""The sans-IO core of the XMPP adapter: formatting, parsing and the outgoing queue.

No sockets here. The driver (``adapters.xmpp.adapter``, not yet written) feeds room stanzas
in as plain values and takes the room messages to send out of :class:`Outbox`.

Room traffic the bridge relays into Crossband is signed by the bridge's device, not by the
room occupant, so the :class:`~adapters.base.Text` body names both: ``"xmpp:alice via
<bridge>: text"``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from adapters.base import EmergencyState, Text

__all__ = [
    "Outbox",
    "RoomMessage",
    "format_burst",
    "format_emergency",
    "format_post",
    "inbound_text",
]


@dataclass(frozen=True, slots=True)
class RoomMessage:
    """One groupchat message as the driver saw it."""

    room: str
    nick: str
    body: str
    delayed: bool = False  # carried a XEP-0203 delay: history replay on join


def inbound_text(msg: RoomMessage, own_nick: str) -> Text | None:
    """The Text event for a room message (its author ``xmpp:<nick>``; the gateway adds "via
    <the bridge device>"), or None for our own echo, history or empty bodies."""
    if msg.delayed or not msg.nick or msg.nick == own_nick or not msg.body.strip():
        return None
    return Text(source=f"xmpp:{msg.nick}", body=msg.body)


def format_post(text: str, sender: str) -> str:
    return f"[{sender}] {text}"


def format_burst(talker: str, verified: bool) -> str:
    return f"{talker} talked, {'verified' if verified else 'unverified'}"


def format_emergency(state: EmergencyState) -> str:
    what = "EMERGENCY raised" if state.active else "emergency cleared"
    by = f" by {state.by}" if state.by else ""
    how = "signed by a member" if state.verified else "relay's claim, unverified"
    return f"{what}{by} ({how})"


class Outbox:
    """Room messages waiting to be sent, bounded: the oldest are dropped when full.

    ``push`` while down; the driver ``drain``s once it has rejoined. A message leaves the
    box exactly once: ``drain`` hands it over and forgets it."""

    def __init__(self, limit: int = 100) -> None:
        if limit < 1:
            raise ValueError("Outbox limit must be at least 1")
        self._q: deque[str] = deque(maxlen=limit)
        self.dropped = 0

    def push(self, body: str) -> None:
        if len(self._q) == self._q.maxlen:
            self.dropped += 1
        self._q.append(body)

    def drain(self) -> list[str]:
        out = list(self._q)
        self._q.clear()
        return out

    def __len__(self) -> int:
        return len(self._q)
