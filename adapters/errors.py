"""Errors raised by adapters."""

from __future__ import annotations

from crypto.errors import CrossbandError


class AdapterError(CrossbandError):
    """A native-system adapter failed (bad configuration, socket error, …)."""
