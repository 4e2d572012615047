"""CoT events ↔ what a Crossband channel carries: a :class:`Position`, a ``Text``, an emergency.

Incoming, :func:`classify` turns a :class:`CotEvent` into a :class:`Position` (PLI), a
:class:`adapters.base.Text` (GeoChat) or an :class:`adapters.base.EmergencyState`, or ``None``
for event types Crossband does not carry. Outgoing, :func:`position_event`,
:func:`chat_event` and :func:`emergency_event` build events that carry the originating agency
in the callsign (``"<agency>:<callsign>"``); the ``__group`` team name is configured.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from adapters.base import EmergencyState, Text
from adapters.cot.events import CANCEL_TYPE, CHAT_TYPE, UNKNOWN, CotError, CotEvent

__all__ = [
    "Position",
    "chat_event",
    "classify",
    "emergency_event",
    "position_event",
    "tagged_callsign",
]

ALL_CHAT = "All Chat Rooms"


@dataclass(frozen=True, slots=True)
class Position:
    """One member's or vessel's position. ``source`` is who reported it on the native side
    (the CoT uid here), ``uid`` the tracked thing's stable id; times are UTC epoch seconds;
    hae/ce/le are metres (CoT's 9999999 = unknown); course degrees true, speed m/s."""

    source: str
    uid: str
    callsign: str
    lat: float
    lon: float
    time: float
    stale: float
    hae: float = UNKNOWN
    ce: float = UNKNOWN
    le: float = UNKNOWN
    course: float | None = None
    speed: float | None = None
    agency: str | None = None
    type: str = "a-f-G-U-C"

    def __post_init__(self) -> None:
        for name in ("source", "uid", "callsign"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"Position.{name} is a non-empty string")
        for name, bound in (("lat", 90.0), ("lon", 180.0)):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or abs(value) > bound:
                raise ValueError(f"Position.{name} out of range")
        if not self.stale >= self.time:
            raise ValueError("Position.stale is not before its time")


def tagged_callsign(agency: str | None, callsign: str) -> str:
    """``callsign`` tagged with its agency, once (``"CBSA:Unit 7"``)."""
    if not agency or callsign.startswith(f"{agency}:"):
        return callsign
    return f"{agency}:{callsign}"


def classify(event: CotEvent, now: float) -> Position | Text | EmergencyState | None:
    """What ``event`` is for the channel; ``None`` for other types and for stale events."""
    if event.stale < now:
        return None
    if event.is_chat:
        if not event.remarks or not event.remarks.strip():
            return None
        return Text(source=event.callsign or event.sender_uid or event.uid, body=event.remarks)
    if event.is_emergency:
        device = event.sender_uid or event.uid
        cancelled = event.type == CANCEL_TYPE or event.emergency_cancel
        return EmergencyState(active=not cancelled, by=device)
    if event.is_position:
        return Position(
            source=event.uid,
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
            agency=event.group_name,
            type=event.type,
        )
    return None


def position_event(pos: Position, group: str | None = None) -> CotEvent:
    """A PLI event for ``pos``, the agency in its callsign, ``group`` as its team."""
    return CotEvent(
        uid=pos.uid,
        type=pos.type,
        how="m-g",
        time=pos.time,
        start=pos.time,
        stale=pos.stale,
        lat=pos.lat,
        lon=pos.lon,
        hae=pos.hae,
        ce=pos.ce,
        le=pos.le,
        callsign=tagged_callsign(pos.agency, pos.callsign),
        group_name=group,
        group_role="Team Member" if group else None,
        course=pos.course,
        speed=pos.speed,
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
    """A 911 alert (``kind``) or, when cleared, its ``b-a-o-can`` cancel."""
    who = tagged_callsign(agency, callsign)
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
    )
