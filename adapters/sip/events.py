"""Events of the SIP user agent core (:mod:`adapters.sip.ua`): frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.sip.sdp import Negotiated

__all__ = [
    "CallAnswered",
    "CallConfirmed",
    "CallEnded",
    "CallUpdated",
    "DtmfInfo",
    "IncomingCall",
    "Refused",
    "Registered",
    "RegistrationFailed",
    "UaEvent",
]


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """An INVITE to one of our extensions with an acceptable offer: answer or reject it."""

    call_id: str
    user: str  # the dialled user part
    caller: str  # the caller's URI (From)
    negotiated: Negotiated


@dataclass(frozen=True, slots=True)
class CallConfirmed:
    """The ACK of our 200 came: the call is up (UAS)."""

    call_id: str


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """Our INVITE was answered with 2xx and ACKed (UAC)."""

    call_id: str
    negotiated: Negotiated


@dataclass(frozen=True, slots=True)
class CallUpdated:
    """A re-INVITE changed the media (``on_hold``: the peer put us on hold, RFC 3264 §8.4)."""

    call_id: str
    negotiated: Negotiated
    on_hold: bool


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The call is over: ``bye`` (peer hung up), ``cancel``, ``local`` (we hung up),
    ``no_ack`` (Timer H), ``timeout`` (Timer B), ``rejected`` (a final non-2xx to our INVITE)."""

    call_id: str
    reason: str
    status: int = 0


@dataclass(frozen=True, slots=True)
class DtmfInfo:
    """A DTMF digit sent as SIP INFO (``application/dtmf-relay``)."""

    call_id: str
    digit: str


@dataclass(frozen=True, slots=True)
class Refused:
    """A request refused without a call: ``status`` sent (or 0: dropped), ``code`` why."""

    status: int
    code: str


@dataclass(frozen=True, slots=True)
class Registered:
    expires: int


@dataclass(frozen=True, slots=True)
class RegistrationFailed:
    status: int
    reason: str


UaEvent = (
    IncomingCall
    | CallConfirmed
    | CallAnswered
    | CallUpdated
    | CallEnded
    | DtmfInfo
    | Refused
    | Registered
    | RegistrationFailed
)
