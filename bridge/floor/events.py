"""Floor-control values: priorities, states, and the events :class:`FloorControl` returns.

Small frozen dataclasses that validate themselves when built (h11 style). The state machine
that produces them is :mod:`bridge.floor.control`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Final, Literal, TypeAlias

__all__ = [
    "Priority",
    "FloorState",
    "FloorGranted",
    "FloorDenied",
    "FloorQueued",
    "FloorReleased",
    "FloorRevoked",
    "EmergencyStarted",
    "EmergencyCleared",
    "FloorIdle",
    "Event",
    "QueuedRequest",
    "FloorSnapshot",
]


class Priority(IntEnum):
    """Request priority; a strictly higher priority preempts the holder."""

    NORMAL = 0
    HIGH = 1
    EMERGENCY = 2


class FloorState(Enum):
    IDLE = "idle"
    TALKING = "talking"


DenyReason: TypeAlias = Literal["not-permitted", "queue-full"]
RevokeReason: TypeAlias = Literal["preempted", "max-talk-time", "removed"]
_DENY_REASONS: Final = frozenset({"not-permitted", "queue-full"})
_REVOKE_REASONS: Final = frozenset({"preempted", "max-talk-time", "removed"})


def _check_device(device: object) -> None:
    if not isinstance(device, str) or not device:
        raise ValueError("device must be a non-empty string")


def _check_time(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number")


# ---- events (validated when built) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FloorGranted:
    device: str
    priority: Priority
    since: float

    def __post_init__(self) -> None:
        _check_device(self.device)
        if not isinstance(self.priority, Priority):
            raise ValueError("priority must be a Priority")
        _check_time(self.since, "since")


@dataclass(frozen=True, slots=True)
class FloorDenied:
    device: str
    reason: DenyReason

    def __post_init__(self) -> None:
        _check_device(self.device)
        if self.reason not in _DENY_REASONS:
            raise ValueError(f"unknown deny reason {self.reason!r}")


@dataclass(frozen=True, slots=True)
class FloorQueued:
    device: str
    position: int  # 1 = next to be granted, at the time of queuing

    def __post_init__(self) -> None:
        _check_device(self.device)
        if isinstance(self.position, bool) or not isinstance(self.position, int):
            raise ValueError("position must be an int")
        if self.position < 1:
            raise ValueError("position starts at 1")


@dataclass(frozen=True, slots=True)
class FloorReleased:
    device: str

    def __post_init__(self) -> None:
        _check_device(self.device)


@dataclass(frozen=True, slots=True)
class FloorRevoked:
    device: str
    reason: RevokeReason

    def __post_init__(self) -> None:
        _check_device(self.device)
        if self.reason not in _REVOKE_REASONS:
            raise ValueError(f"unknown revoke reason {self.reason!r}")


@dataclass(frozen=True, slots=True)
class EmergencyStarted:
    device: str  # who declared it

    def __post_init__(self) -> None:
        _check_device(self.device)


@dataclass(frozen=True, slots=True)
class EmergencyCleared:
    device: str  # who cleared it

    def __post_init__(self) -> None:
        _check_device(self.device)


@dataclass(frozen=True, slots=True)
class FloorIdle:
    pass


Event: TypeAlias = (
    FloorGranted
    | FloorDenied
    | FloorQueued
    | FloorReleased
    | FloorRevoked
    | EmergencyStarted
    | EmergencyCleared
    | FloorIdle
)


@dataclass(frozen=True, slots=True)
class QueuedRequest:
    """One waiting request, as shown by :attr:`FloorControl.queue`."""

    device: str
    priority: Priority
    queued_at: float
    order: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class FloorSnapshot:
    """What a member joining late is told: who talks, since when, is there an emergency."""

    holder: str | None
    priority: Priority | None
    since: float | None
    emergency: bool
    emergency_by: str | None
    queued: int
