"""Data messages (store-and-forward), acknowledgements, and the floor requests of members.

A message is accepted only once it is stored for every other member (an
:class:`~bridge.relay.jobs.Enqueue` job); then the sender gets ``accepted`` and the members
that are online and caught up get it at once. If the store refuses, the sender gets
``store-failed`` with its request id, and nothing was accepted: it may send again.
"""

from __future__ import annotations

from typing import Any

from bridge.errors import RemoteProtocolError
from bridge.floor.events import Priority
from bridge.relay.base import CoreBase, deliver_msg, safe_rid
from bridge.relay.jobs import Ack, Enqueue, Job
from bridge.relay.state import Outcome, Session
from bridge.wire import control as p
from crypto.group import CONTEXT_DATA

MAX_MSG_ID = 128
MAX_CONFIRM = 2048  # characters of base64: a confirmation is ~300 bytes
_PRIORITIES = {"normal": Priority.NORMAL, "high": Priority.HIGH, "emergency": Priority.EMERGENCY}


class MessagesMixin(CoreBase):
    def _on_ping(self, s: Session, msg: dict[str, Any], now: float, wall: float) -> Outcome:
        return Outcome([(s.id, p.control("pong"))])

    def _on_confirm(self, s: Session, msg: dict[str, Any], now: float, wall: float) -> Outcome:
        """A member's signed commit confirmation: passed at once to the channel's other
        online members, not stored (the next one comes in seconds) and not checked here (the
        members check the signature; the relay is not trusted with it anyway)."""
        chan = self._member(s, msg["ch"])
        if len(msg["statement"]) > MAX_CONFIRM:
            raise RemoteProtocolError(p.Codes.TOO_LARGE)
        out = p.control("confirm", ch=chan.id, statement=msg["statement"])
        return Outcome([(o.id, out) for o in self._online(chan.members) if o.id != s.id])

    def _on_msg(self, s: Session, msg: dict[str, Any], now: float, wall: float) -> Outcome:
        chan = self._member(s, msg["ch"])
        assert s.device is not None
        if not chan.head.may_send(s.device):
            raise RemoteProtocolError(p.Codes.NOT_PERMITTED, "observers do not transmit")
        inner = msg["id"]
        if not isinstance(inner, str) or not 1 <= len(inner) <= MAX_MSG_ID:
            raise RemoteProtocolError(p.Codes.MALFORMED, "message id")
        frame = p.unb64(msg["frame"])
        if len(frame) > p.MAX_SMALL_CONTROL or not self._sender_index_ok(
            chan, s.device, frame, CONTEXT_DATA
        ):
            raise RemoteProtocolError(
                p.Codes.MALFORMED, "frame does not carry this device's key id"
            )
        self._require_audit()
        rid = safe_rid(msg)
        msg_id = f"{s.device}/{inner}"
        recipients = tuple(sorted(chan.members - {s.device}))
        reply = (s.id, p.control("accepted", ch=chan.id, id=inner))

        def accepted(seq: int | None, _now: float) -> Outcome:
            self.metrics.c["messages_accepted"] += 1
            self._audit(
                "message",
                wall,
                channel=chan.id,
                sender=s.device,
                msg=msg_id,
                size=len(frame),
                recipients=len(recipients),
            )
            out = Outcome([reply])
            if seq is not None:
                self._deliver(out, recipients, seq, deliver_msg(seq, "msg", chan.id, msg_id, frame))
            return out

        if not recipients:
            return accepted(None, now)

        def failed(_now: float) -> Outcome:
            error = p.error(
                p.Codes.STORE_FAILED, "message not stored", ch=chan.id, id=inner, rid=rid
            )
            return Outcome([(s.id, error)])

        op = Enqueue(recipients, chan.id, "msg", msg_id, frame, wall, self.config.message_ttl)
        return Outcome(jobs=[Job(op, accepted, failed)])

    def _on_ack(self, s: Session, msg: dict[str, Any], now: float, wall: float) -> Outcome:
        assert s.device is not None
        seq = msg["seq"]
        if seq > s.delivered:
            raise RemoteProtocolError(p.Codes.MALFORMED, "ack beyond delivery")

        def failed(_now: float) -> Outcome:  # the items stay; they are offered again
            return Outcome([(s.id, p.error(p.Codes.STORE_FAILED, "ack not stored", seq=seq))])

        return Outcome(jobs=[Job(Ack(s.device, seq), failed=failed)])

    # -- the floor -----------------------------------------------------------------------------

    def _on_floor_request(
        self, s: Session, msg: dict[str, Any], now: float, wall: float
    ) -> Outcome:
        chan = self._member(s, msg["ch"])
        assert s.device is not None
        priority = _PRIORITIES.get(msg["priority"])
        if priority is None:
            raise RemoteProtocolError(p.Codes.MALFORMED, "priority")
        self._require_audit()  # a grant is audited: who held the floor when
        events = chan.floor.request(s.device, priority, now, may_talk=chan.head.may_send(s.device))
        return self._floor_events(chan, events, wall)

    def _on_floor_release(
        self, s: Session, msg: dict[str, Any], now: float, wall: float
    ) -> Outcome:
        chan = self._member(s, msg["ch"])  # never refused for the audit log: it ends activity
        assert s.device is not None
        return self._floor_events(chan, chan.floor.release(s.device, now), wall)

    def _on_emergency_clear(
        self, s: Session, msg: dict[str, Any], now: float, wall: float
    ) -> Outcome:
        chan = self._member(s, msg["ch"])
        assert s.device is not None and s.cred is not None
        if s.device != chan.floor.emergency_by and not s.cred.has_role("dispatcher"):
            raise RemoteProtocolError(p.Codes.NOT_PERMITTED, "only the declarer or a dispatcher")
        return self._floor_events(chan, chan.floor.clear_emergency(s.device, now), wall)
