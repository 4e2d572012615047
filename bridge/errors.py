"""Errors of the runtime. The root and the crypto branch live in :mod:`crypto.errors`."""

from __future__ import annotations

from crypto.errors import CrossbandError

__all__ = ["CrossbandError", "ProtocolError", "RelayError", "ConfigError"]


class ProtocolError(CrossbandError):
    """The peer sent something malformed or unexpected. ``code`` goes on the wire."""

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}" if detail else code)


class RelayError(CrossbandError):
    """The relay refused a request. ``code`` is the wire error code."""

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}" if detail else code)


class ConfigError(CrossbandError):
    """A configuration file is missing, unreadable or inconsistent."""
