"""Events an endpoint reports to its application (adapters, consoles, the demo).

Small frozen dataclasses; none of them carries key material. ``Voice.payload`` and
``Message.body`` are plaintext and exist only inside the endpoint's process.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Connected:
    device: str


@dataclass(frozen=True)
class Disconnected:
    pass


@dataclass(frozen=True)
class ChannelUpdated:
    channel: str
    name: str
    epoch: int
    roster: dict[str, str]  # device -> role
    removed: bool  # this device is no longer a member


@dataclass(frozen=True)
class TalkerChanged:
    channel: str
    talker: str | None  # None: the floor is free
    priority: str | None
    reason: str  # granted / late-entry / released / revoked reason / idle


@dataclass(frozen=True)
class FloorEvent:
    channel: str
    event: str  # granted / denied / queued / released / revoked / idle / emergency
    device: str | None
    priority: str | None = None
    reason: str | None = None
    position: int | None = None


@dataclass(frozen=True)
class Emergency:
    channel: str
    active: bool
    by: str | None


@dataclass(frozen=True)
class Voice:
    channel: str
    sender: str
    payload: bytes = field(repr=False)
    ctr: int = 0  # SFrame counter: +1 per frame from one sender within an epoch
    received_at: float = 0.0  # wall-clock time the frame was decrypted
    epoch: int = 0  # the channel epoch whose key opened it (counters restart per epoch)


@dataclass(frozen=True)
class BurstSealed:
    channel: str
    sender: str
    burst: str
    frames: int  # frames the talker sealed
    verified: bool  # signature valid and we received exactly the sealed frames
    received: int  # frames we received


@dataclass(frozen=True)
class Message:
    channel: str
    id: str
    sender: str  # verified signer
    kind: str
    body: bytes = field(repr=False)
    timestamp: int = 0


@dataclass(frozen=True)
class Error:
    code: str
    detail: str = ""


Event = (
    Connected
    | Disconnected
    | ChannelUpdated
    | TalkerChanged
    | FloorEvent
    | Emergency
    | Voice
    | BurstSealed
    | Message
    | Error
)
