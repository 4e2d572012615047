"""Signed emergency declare/clear: the channel's emergency state as its members signed it.

Part of the sans-IO :class:`~bridge.endpoint.core.EndpointCore`. The relay arbitrates the floor
and says who declared an emergency (:mod:`bridge.endpoint.floorview`), but the relay is not
trusted: it could fake an emergency or hide one. So the device that declares or clears an
emergency also sends a :class:`~crypto.messages.SignedMessage` of kind :data:`KIND` with body
``{"state": "declare"}`` or ``{"state": "clear"}`` on the channel. It is signed, bound to the
channel and commit, and de-duplicated like any other signed message
(:mod:`bridge.endpoint.receive`), so a forged, unsigned, replayed or re-encrypted one is
refused before it gets here.

Receivers report both sources, each labelled: :class:`~bridge.endpoint.events.EmergencySigned`
(``source="signed"``, ``verified`` True) comes only from here and names the verified signer in
``by``; the relay's floor messages give :class:`~bridge.endpoint.events.Emergency`
(``source="relay"``, ``verified`` False: a claim), as before.

A signed clear counts only from the device that declared the emergency or from a member whose
credential has the ``dispatcher`` role, the same rule the relay applies. Any other clear is
refused with :data:`CLEAR_REFUSED`.
"""

from __future__ import annotations

import logging

from bridge.endpoint import events as ev
from bridge.endpoint.output import Output
from crypto.encoding import canonical, parse
from crypto.errors import VerificationError
from crypto.group import ChannelMember
from crypto.messages import SignedMessage

log = logging.getLogger("crossband.endpoint")
KIND = "emergency"
DECLARE, CLEAR = "declare", "clear"
CLEAR_REFUSED = "emergency-clear-refused"


def body(active: bool) -> bytes:
    """The body of a signed declare (``active``) or clear."""
    return canonical({"state": DECLARE if active else CLEAR})


def parse_body(data: bytes) -> bool:
    """True for a declare, False for a clear; ValueError on anything else (never quoted)."""
    try:
        obj = parse(data)
    except VerificationError:
        raise ValueError("emergency body does not parse") from None
    state = obj.get("state")
    if state not in (DECLARE, CLEAR) or len(obj) != 1:
        raise ValueError("emergency body must be {'state': 'declare' | 'clear'}")
    return bool(state == DECLARE)


class SignedEmergencies:
    """Each channel's emergency as signed by its members: channel -> declarer (None: clear)."""

    def __init__(self, out: Output) -> None:
        self._out = out
        self.declared: dict[str, str | None] = {}

    def on_message(self, ch: str, msg: SignedMessage, member: ChannelMember) -> bool:
        """A verified, bound, new signed message of kind :data:`KIND`; False if its body is
        malformed (the caller counts it)."""
        try:
            active = parse_body(msg.body)
        except ValueError:
            return False
        if active:
            if self.declared.get(ch) is None:
                self.declared[ch] = msg.sender
        else:
            declarer = self.declared.get(ch)
            cred = member.credential(msg.sender)
            dispatcher = cred is not None and cred.has_role("dispatcher")
            if declarer is not None and msg.sender != declarer and not dispatcher:
                log.warning("event=emergency-clear-refused channel=%s sender=%s", ch, msg.sender)
                self._out.emit(ev.Error(CLEAR_REFUSED, f"emergency clear on {ch} refused"))
                return True
            self.declared[ch] = None
        log.info("event=emergency-signed channel=%s active=%s by=%s", ch, active, msg.sender)
        self._out.emit(ev.EmergencySigned(ch, active, msg.sender))
        return True

    def forget(self, ch: str) -> None:
        self.declared.pop(ch, None)
