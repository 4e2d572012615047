"""What every part of the relay core shares: its state, the audit gate, floor glue, delivery.

:class:`CoreBase` holds the tables (sessions, channels, the indexes the hot path reads) and the
helpers the handler mixins use; :class:`bridge.relay.core.RelayCore` assembles the mixins
(:mod:`~bridge.relay.sessions`, :mod:`~bridge.relay.commits`, :mod:`~bridge.relay.messages`,
:mod:`~bridge.relay.media`). Nothing here touches a socket, a clock or the store.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from typing import Any

from bridge.errors import AuditLogError, RemoteProtocolError
from bridge.floor.control import FloorControl
from bridge.floor.events import Event
from bridge.relay.metrics import Metrics
from bridge.relay.state import (
    AuditSink,
    Channel,
    FloorArbiter,
    NoRemoteFanout,
    Outcome,
    RelayConfig,
    RemoteFanout,
    Session,
)
from bridge.relay.store import ForwardStore
from bridge.wire import control as p
from bridge.wire.floor import floor_event_fields, floor_state_message
from crypto.agreement import RevocationList
from crypto.errors import DecryptError
from crypto.group import split_kid
from crypto.identity import TrustBundle
from crypto.sframe import decode_header

log = logging.getLogger("crossband.relay")

MAX_RID = 128


def safe_rid(msg: dict[str, Any]) -> str | None:
    """The request id to echo in an answer: a short string, or nothing (never a structure)."""
    rid = msg.get("rid")
    return rid if isinstance(rid, str) and len(rid) <= MAX_RID else None


def deliver_msg(seq: int, kind: str, channel: str, msg_id: str, body: bytes) -> str:
    return p.control("deliver", seq=seq, kind=kind, ch=channel, id=msg_id, body=p.b64(body))


class CoreBase:
    def __init__(
        self,
        trust: TrustBundle,
        store: ForwardStore,
        audit: AuditSink,
        config: RelayConfig | None = None,
        revocations: dict[str, RevocationList] | None = None,
        *,
        floor_factory: Callable[[RelayConfig], FloorArbiter] | None = None,
        remote: RemoteFanout | None = None,
    ) -> None:
        self.trust = trust
        self.store = store  # run only by the driver, through jobs; the core never calls it
        self.audit = audit
        self.config = config or RelayConfig()
        self._new_floor = floor_factory or (
            lambda c: FloorControl(c.max_talk_time, c.emergency_max_talk_time)
        )
        self.remote: RemoteFanout = remote or NoRemoteFanout()
        self.revocations: dict[str, RevocationList] = dict(revocations or {})
        self.sessions: dict[int, Session] = {}
        self.unauthenticated: dict[int, Session] = {}  # oldest first
        self.backlog_due: dict[int, Session] = {}  # backlogs the store refused, to retry
        self.by_device: dict[str, Session] = {}
        self.by_token: dict[bytes, Session] = {}
        self.channels: dict[str, Channel] = {}
        self.by_no: dict[int, Channel] = {}
        self.metrics = Metrics()
        self.directory: dict[str, bytes] = {}  # credentials seen since start (public)
        self.store_failing = False
        self.penalized: dict[str, float] = {}  # device -> when it may log in again (monotonic)
        self._next_sid = 1
        self.wall_offset = 0.0  # wall - monotonic, as of the last input that gave both
        self.committing: dict[str, int] = {}  # channel -> epoch whose write is in flight
        self.listed: set[str] = set()  # channels in the stored "channels" list
        self.next_expire: float | None = None
        self._restore(store)

    def _restore(self, store: ForwardStore) -> None:
        """Start-up state read from the store before anybody is served (RelayCore's)."""

    # -- time --------------------------------------------------------------------------------

    def _wall(self, now: float, wall: float | None) -> float:
        """The wall clock for this input. A test driving one fake clock may pass ``now`` only."""
        if wall is None:
            return now + self.wall_offset
        self.wall_offset = wall - now
        return wall

    # -- audit -------------------------------------------------------------------------------

    @property
    def audit_failing(self) -> bool:
        return bool(self.audit.failing)

    def _audit(self, event: str, wall: float, **fields: Any) -> None:
        try:
            self.audit.append(event, wall, **fields)
        except AuditLogError as exc:
            log.warning("event=audit-failed kind=%s error=%s", event, exc)
        except ValueError:
            log.exception("event=audit-refused kind=%s", event)  # a bug: a field is not metadata

    def _require_audit(self) -> None:
        """Fail-closed mode: refuse a request that must be audited while the log is down."""
        if self.config.audit_fail_closed and self.audit_failing:
            self.metrics.c["audit_refused"] += 1
            raise RemoteProtocolError(p.Codes.AUDIT_FAILED, "the audit log cannot be written")

    # -- channels ----------------------------------------------------------------------------

    def _member(self, s: Session, ch: object) -> Channel:
        chan = self.channels.get(ch) if isinstance(ch, str) else None
        if chan is None:
            raise RemoteProtocolError(p.Codes.UNKNOWN_CHANNEL)
        if s.device not in chan.members:
            raise RemoteProtocolError(p.Codes.NOT_MEMBER)
        return chan

    def _sender_index_ok(self, chan: Channel, device: str, frame: bytes, context: int) -> bool:
        try:
            kid, _, _ = decode_header(frame)
        except DecryptError:
            return False
        ctx, index, ebits = split_kid(kid)
        table = chan.senders.get(ebits)
        return ctx == context and table is not None and table.get(index) == device

    def _online(self, devices: Iterable[str]) -> list[Session]:
        by_device = self.by_device
        return [by_device[d] for d in devices if d in by_device]

    # -- floor -------------------------------------------------------------------------------

    def _floor_state(self, chan: Channel) -> str:
        snap = chan.floor.snapshot()
        if snap.since is not None:  # the floor runs on the monotonic clock; members see wall
            snap = dataclasses.replace(snap, since=snap.since + self.wall_offset)
        return floor_state_message(chan.id, snap)

    def _floor_events(self, chan: Channel, events: list[Event], wall: float) -> Outcome:
        out = Outcome()
        if not events:
            return out
        online = [s.id for s in self._online(chan.members)]
        for event in events:
            fields, private = floor_event_fields(chan.id, event)
            if fields["event"] == "granted":
                self.metrics.c["floor_grants"] += 1
            self._audit(
                "floor",
                wall,
                channel=chan.id,
                what=fields["event"],
                device=fields.get("device"),
                reason=fields.get("reason"),
            )
            message = p.control("floor", **fields)
            if private:
                target = self.by_device.get(fields["device"])
                if target is not None:
                    out.sends.append((target.id, message))
            else:
                out.sends += [(sid, message) for sid in online]
        return out

    # -- delivery ----------------------------------------------------------------------------

    def _deliver(self, out: Outcome, recipients: Iterable[str], seq: int, message: str) -> None:
        """Send a stored item now to each recipient that is online and caught up."""
        for other in self._online(recipients):
            if other.synced and seq > other.delivered:
                out.sends.append((other.id, message))
                other.delivered = seq
