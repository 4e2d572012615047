"""How floor-control events and state are put on the wire (``floor`` / ``floor-state``)."""

from __future__ import annotations

from typing import Any

from bridge.floor.events import (
    EmergencyCleared,
    EmergencyStarted,
    Event,
    FloorDenied,
    FloorGranted,
    FloorIdle,
    FloorQueued,
    FloorReleased,
    FloorRevoked,
    FloorSnapshot,
)
from bridge.wire import control as p


def floor_state_message(channel: str, snap: FloorSnapshot) -> str:
    """Late entry: who holds the floor now, at which priority, and the emergency state."""
    return p.control(
        "floor-state",
        ch=channel,
        holder=snap.holder,
        priority=snap.priority.name.lower() if snap.priority is not None else None,
        since=snap.since,
        emergency=snap.emergency,
        emergency_by=snap.emergency_by,
    )


def floor_event_fields(channel: str, event: Event) -> tuple[dict[str, Any], bool]:
    """The ``floor`` message fields for one event, and whether only its device is told
    (a denial or a queue position is private; everything else goes to the channel)."""
    fields: dict[str, Any] = {"ch": channel}
    match event:
        case FloorGranted(device=d, priority=pr):
            fields.update(event="granted", device=d, priority=pr.name.lower())
        case FloorDenied(device=d, reason=r):
            return {**fields, "event": "denied", "device": d, "reason": r}, True
        case FloorQueued(device=d, position=pos):
            return {**fields, "event": "queued", "device": d, "position": pos}, True
        case FloorReleased(device=d):
            fields.update(event="released", device=d)
        case FloorRevoked(device=d, reason=r):
            fields.update(event="revoked", device=d, reason=r)
        case EmergencyStarted(device=d):
            fields.update(event="emergency", device=d, active=True)
        case EmergencyCleared(device=d):
            fields.update(event="emergency", device=d, active=False)
        case FloorIdle():
            fields.update(event="idle", device=None)
    return fields, False
