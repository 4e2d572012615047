"""The Cursor-on-Target adapter: TAK positions, GeoChat and emergencies on a channel.

* :mod:`adapters.cot.events` — the sans-IO CoT XML core (:class:`CotEvent`, :class:`CotError`);
* :mod:`adapters.cot.proto` — TAK protocol v1 mesh/stream framing through ``takproto``;
* :mod:`adapters.cot.mapping` — events ↔ ``Position``, ``Text``, emergencies;
* :mod:`adapters.cot.adapter` — the asyncio driver (UDP unicast/multicast, TCP client).
"""

from adapters.cot.adapter import CotAdapter, CotConfig
from adapters.cot.events import CotError, CotEvent

__all__ = ["CotAdapter", "CotConfig", "CotError", "CotEvent"]
