"""Which TAK network is which channel: the ``cot`` section of a device's config::

    cot:
      channels:
        - channel: shiprider-7       # the Crossband channel
          transport: tcp             # tcp: a TAK server; udp: the mesh (multicast or unicast)
          host: tak.example.org
          port: 8087
          wire: xml                  # or proto (TAK protocol v1: stream on TCP, mesh on UDP)
          callsign: USBP Bridge      # how the bridge shows on the TAK side
          agency: us-cbp             # tags the callsigns of what comes from this side
          group: Cyan                # the __group team of the events the bridge writes

:func:`load_cot_config` returns ``(channel, CotConfig)`` per mapping or raises
:class:`~adapters.errors.AdapterConfigError` naming the setting; unknown keys are errors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from adapters.cot.adapter import CotConfig
from adapters.errors import AdapterConfigError

__all__ = ["load_cot_config"]

_FIELDS = {f.name: f for f in dataclasses.fields(CotConfig)}
_INTS = {"port", "bind_port"}
_FLOATS = {"backoff_initial", "backoff_max"}


def _value(at: str, key: str, value: Any) -> Any:
    if key in _INTS:
        if value is None and key == "bind_port":
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise AdapterConfigError(f"{at}.{key}", "must be a whole number")
        return value
    if key in _FLOATS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise AdapterConfigError(f"{at}.{key}", "must be a number")
        return float(value)
    if value is None and key in ("agency", "group"):
        return None
    if not isinstance(value, str):
        raise AdapterConfigError(f"{at}.{key}", "must be a string")
    return value


def load_cot_config(section: Any, where: str = "cot") -> list[tuple[str, CotConfig]]:
    if not isinstance(section, Mapping):
        raise AdapterConfigError(where, "must be a mapping with channels: [...]")
    extra = sorted(set(section) - {"channels"})
    if extra:
        raise AdapterConfigError(f"{where}.{extra[0]}", "unknown setting")
    channels = section.get("channels")
    if not isinstance(channels, list) or not channels:
        raise AdapterConfigError(f"{where}.channels", "must be a non-empty list")
    out: list[tuple[str, CotConfig]] = []
    for i, item in enumerate(channels):
        at = f"{where}.channels[{i}]"
        if not isinstance(item, Mapping):
            raise AdapterConfigError(at, "must be a mapping")
        unknown = sorted(set(item) - set(_FIELDS) - {"channel"})
        if unknown:
            raise AdapterConfigError(f"{at}.{unknown[0]}", "unknown setting")
        channel = item.get("channel")
        if not isinstance(channel, str) or not channel:
            raise AdapterConfigError(f"{at}.channel", "is required (the Crossband channel)")
        kwargs = {k: _value(at, k, v) for k, v in item.items() if k != "channel"}
        try:
            out.append((channel, CotConfig(**kwargs)))
        except AdapterConfigError as exc:  # named cot.<field>: say which mapping
            field = exc.setting.removeprefix("cot.")
            raise AdapterConfigError(f"{at}.{field}", exc.problem) from None
    return out
