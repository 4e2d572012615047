"""What the Mumble client tells its driver: frozen dataclasses, one per happening."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ChannelMissing",
    "Closed",
    "Connected",
    "Denied",
    "Joined",
    "MumbleEvent",
    "TextReceived",
    "UserLeft",
    "VoiceReceived",
]


@dataclass(frozen=True, slots=True)
class Connected:
    session: int


@dataclass(frozen=True, slots=True)
class Joined:
    channel_id: int
    channel: str


@dataclass(frozen=True, slots=True)
class ChannelMissing:
    channel: str


@dataclass(frozen=True, slots=True)
class TextReceived:
    actor: int
    name: str
    message: str  # as sent: Mumble text is HTML
    private: bool


@dataclass(frozen=True, slots=True)
class VoiceReceived:
    session: int
    name: str
    sequence: int
    opus: bytes
    last: bool


@dataclass(frozen=True, slots=True)
class UserLeft:
    """A user left our channel (moved away or disconnected)."""

    session: int
    name: str


@dataclass(frozen=True, slots=True)
class Denied:
    reason: str


@dataclass(frozen=True, slots=True)
class Closed:
    reason: str


MumbleEvent = (
    Connected | Joined | ChannelMissing | TextReceived | VoiceReceived | UserLeft | Denied | Closed
)
