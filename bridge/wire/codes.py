"""Every error code of the relay protocol, in one enum.

A code is the stable, content-free string that goes on the wire in ``{"t": "error", "code": …}``
and that tests and operators match on. Its ``detail`` is a short English hint that never echoes
the peer's input, content or key material.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Code"]


class Code(StrEnum):
    """A wire error code. Raise it with :class:`~bridge.errors.RemoteProtocolError` (the peer
    misbehaved) or receive it in :class:`~bridge.errors.RelayError`; never a bare string."""

    # the message itself
    MALFORMED = "malformed"  # not JSON, not an object, a field missing or of the wrong type
    UNKNOWN_TYPE = "unknown-type"
    BAD_VERSION = "bad-version"
    TOO_LARGE = "too-large"
    RATE_LIMITED = "rate-limited"
    # authentication
    AUTH_REQUIRED = "auth-required"
    AUTH_FAILED = "auth-failed"
    AUTH_TIMEOUT = "auth-timeout"
    REVOKED = "revoked"
    UNKNOWN_DEVICE = "unknown-device"
    DUPLICATE_SESSION = "duplicate-session"
    RELAY_NOT_AUTHENTIC = "relay-not-authentic"  # at the endpoint: the pinned relay key failed
    # channels and commits
    NOT_MEMBER = "not-member"
    NOT_PERMITTED = "not-permitted"
    UNKNOWN_CHANNEL = "unknown-channel"
    COMMIT_REFUSED = "commit-refused"
    REBASE = "rebase"
    # the relay's own state
    OVERLOADED = "overloaded"  # connection caps reached; try again later
    SLOW_READER = "slow-reader"  # this connection's send queue overflowed
    STORE_FAILED = "store-failed"  # the store could not accept the item; nothing was accepted
    AUDIT_FAILED = "audit-unavailable"  # fail-closed audit log cannot record; request refused
    INTERNAL = "internal"
    # the endpoint's own link (never sent by the relay; RelayError raised on this side)
    NOT_CONNECTED = "not-connected"  # no connection to the relay: the request was not sent
