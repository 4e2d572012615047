"""Errors of the runtime (``bridge``).

The project's whole exception tree is drawn once, in :mod:`crypto.errors` (the lowest layer, where
the root lives), and ``tests/crypto/test_error_tree.py`` checks that drawing against the classes.
This module holds the runtime's branch: protocol errors (``RemoteProtocolError`` when the peer
misbehaved: answer it with a coded error and never end another session over it;
``LocalProtocolError`` when our own caller misused the API), ``RelayError`` (the relay refused
one of our requests), ``StoreError``, ``AuditLogError`` and ``ConfigError``. Messages name
files, settings and codes, never content or key material.
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
