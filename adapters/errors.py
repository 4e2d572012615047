"""Errors raised by adapters (the ``AdapterError`` branch of the tree in :mod:`bridge.errors`).

Adapters import nothing from ``bridge``, so a bad adapter setting is an
:class:`AdapterConfigError` naming the setting; the ``crossband`` command turns it into its own
``ConfigError`` with the file name. Audio codec failures are :class:`adapters.codecs.CodecError`.
"""

from __future__ import annotations

from crypto.errors import CrossbandError

__all__ = ["AdapterError", "AdapterConfigError"]


class AdapterError(CrossbandError):
    """A native-system adapter failed (bad configuration, socket error, …)."""


class AdapterConfigError(AdapterError):
    """An adapter setting is missing or wrong. ``setting`` is its dotted path (``rtp.rate``,
    ``rtp.channels[0].input.port``), ``problem`` what is wrong with it; the message is
    ``"<setting>: <problem>"`` and never echoes a secret."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"{setting}: {problem}")
