"""Errors of the runtime (``bridge``). The root and the crypto branch live in :mod:`crypto.errors`.

The whole tree, as the code has it::

    CrossbandError                  crypto.errors: root of every error raised on purpose
    ├── CryptoError …               crypto.errors (DecryptError, VerificationError, …)
    ├── ProtocolError               the relay protocol was broken; ``code`` is a wire Code
    │   ├── RemoteProtocolError     the peer sent something malformed or unexpected: answer it
    │   │                           with a coded error, never end another session over it
    │   └── LocalProtocolError      our own caller misused the API (wrong state, bad argument)
    ├── RelayError                  the relay refused one of our requests (its wire Code)
    ├── StoreError                  the store-and-forward database failed; nothing was accepted
    ├── AuditLogError               the audit log could not be written
    ├── ConfigError                 a configuration file is missing, unreadable or wrong
    └── AdapterError                adapters.errors: a native-system adapter failed

Messages name files, settings and codes, never content or key material.
"""

from __future__ import annotations

from crypto.errors import CrossbandError

__all__ = [
    "AuditLogError",
    "ConfigError",
    "CrossbandError",
    "LocalProtocolError",
    "ProtocolError",
    "RelayError",
    "RemoteProtocolError",
    "StoreError",
]


class ProtocolError(CrossbandError):
    """The relay protocol was broken. ``code`` (a :class:`~bridge.wire.codes.Code` string)
    goes on the wire; ``detail`` is a short hint that never echoes the input."""

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}" if detail else code)


class RemoteProtocolError(ProtocolError):
    """The peer misbehaved: malformed, oversized or unexpected input."""


class LocalProtocolError(ProtocolError):
    """The API was misused by our own caller (a bug on this side, not the peer's)."""


class RelayError(CrossbandError):
    """The relay refused a request. ``code`` is the wire error code."""

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}" if detail else code)


class StoreError(CrossbandError):
    """The store-and-forward database could not complete an operation."""


class AuditLogError(CrossbandError):
    """The audit log could not be written (disk full, I/O error, closed)."""


class ConfigError(CrossbandError):
    """A configuration file is missing, unreadable or inconsistent: one line naming the file,
    the setting and the problem."""
