"""CoT events ↔ what a Crossband channel carries: a ``Position``, a ``Text``, an emergency.

Incoming, :func:`classify` turns a :class:`CotEvent` into an :class:`adapters.base.Position`
(PLI), a :class:`adapters.base.Text` (GeoChat) or an :class:`adapters.base.EmergencyAlert`, or
``None`` for event types Crossband does not carry. Outgoing, :func:`position_event`,
:func:`chat_event` and :func:`emergency_event` build events that carry the originating agency
in the callsign (``"<agency>:<callsign>"``) and, for what came from the channel, who signed it
in ``<remarks>``; the ``__group`` team name is configured.
"""

from __future__ import annotations

import uuid

from adapters.base import EmergencyAlert, EmergencyState, Position, Text
from adapters.cot.events import CANCEL_TYPE, CHAT_TYPE, MAX_FIELD, CotError, CotEvent

__all__ = [
    "agency_of",
    "chat_event",
    "classify",
    "emergency_event",
    "position_event",
    "tagged_callsign",
]

ALL_CHAT = "All Chat Rooms"


def tagged_callsign(agency: str | None, callsign: str) -> str:
    """``callsign`` tagged with its agency, once (``"CBSA:Unit 7"``)."""
    if not agency or callsign.startswith(f"{agency}:"):
        return callsign
    return f"{agency}:{callsign}"


def agency_of(device: str) -> str:
    """The agency part of a Crossband device id (``"us-cbp/gw-blaine"`` → ``"us-cbp"``)."""
    return device.split("/", 1)[0]


def classify(event: CotEvent, now: float) -> Position | Text | EmergencyAlert | None:
    """What ``event`` is for the channel; ``None`` for other types, for stale events and for
    positions that :class:`Position` refuses (a uid or callsign over its bound)."""
    if event.stale < now:
        return None
    if event.is_chat:
        if not event.remarks or not event.remarks.strip():
            return None
        author = event.callsign or event.sender_uid or event.uid
        return Text(source=f"cot:{author}", body=event.remarks)
    if event.is_emergency:
        device = event.sender_uid or event.uid
        cancelled = event.type == CANCEL_TYPE or event.emergency_cancel
        return EmergencyAlert(source=device, active=not cancelled)
    if event.is_position:
        try:
            return Position(
                uid=event.uid,
                callsign=event.callsign or event.uid,
                lat=event.lat,
                lon=event.lon,
                hae=event.hae,
                ce=event.ce,
                le=event.le,
                course=event.course,
                speed=event.speed,
                time=event.time,
                stale=event.stale,
                kind=event.type,
            )
        except ValueError:
            raise CotError("field", "not a position Crossband carries") from None
    return None


def position_event(
    pos: Position, group: str | None = None, *, sender: str | None = None
) -> CotEvent:
    """A PLI event for ``pos`` signed on the channel by device ``sender``: that device's agency
    in its callsign and its id in the remarks; ``group`` as its team."""
    remarks = f"Crossband position signed by {sender}" if sender else None
    return CotEvent(
        uid=pos.uid,
        type=pos.kind,
        how="m-g",
        time=pos.time,
        start=pos.time,
        stale=pos.stale,
        lat=pos.lat,
        lon=pos.lon,
        hae=pos.hae,
        ce=pos.ce,
        le=pos.le,
        callsign=tagged_callsign(agency_of(sender) if sender else None, pos.callsign)[:MAX_FIELD],
        group_name=group,
        group_role="Team Member" if group else None,
        course=pos.course,
        speed=pos.speed,
        remarks=remarks,
    )


def chat_event(
    body: str,
    sender: str,
    *,
    device_uid: str,
    agency: str | None,
    now: float,
    room: str = ALL_CHAT,
    lifetime: float = 86400.0,
) -> CotEvent:
    """A GeoChat message from ``sender`` (a channel member) sent by device ``device_uid``."""
    if not body.strip():
        raise CotError("field", "an empty chat message")
    msg_id = uuid.uuid4().hex
    return CotEvent(
        uid=f"GeoChat.{device_uid}.{room}.{msg_id}",
        type=CHAT_TYPE,
        how="h-g-i-g-o",
        time=now,
        start=now,
        stale=now + lifetime,
        callsign=tagged_callsign(agency, sender),
        remarks=body,
        chat_room=room,
        sender_uid=device_uid,
    )


def emergency_event(
    state: EmergencyState,
    *,
    device_uid: str,
    callsign: str,
    agency: str | None,
    now: float,
    lifetime: float = 3600.0,
    kind: str = "b-a-o-tbl",
) -> CotEvent:
    """A 911 alert (``kind``) or, when cleared, its ``b-a-o-can`` cancel; the remarks say
    whether a member signed it (``state.verified``) or only the relay claims it."""
    who = tagged_callsign(agency, callsign)
    if state.verified:
        remarks = f"Crossband emergency signed by {state.by}"
    else:
        remarks = "Crossband emergency claimed by the relay (unverified)"
    return CotEvent(
        uid=f"{device_uid}-9-1-1",
        type=kind if state.active else CANCEL_TYPE,
        how="h-e",
        time=now,
        start=now,
        stale=now + lifetime,
        callsign=f"{who}-Alert",
        sender_uid=device_uid,
        emergency_type="911 Alert" if state.active else None,
        emergency_cancel=not state.active,
        remarks=remarks,
    )
