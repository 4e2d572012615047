"""The Cursor-on-Target adapter: TAK positions, GeoChat and emergencies on a channel.

* :mod:`adapters.cot.events` — the sans-IO CoT XML core (:class:`CotEvent`, :class:`CotError`);
* :mod:`adapters.cot.proto` — TAK protocol v1 mesh/stream framing through ``takproto``;
* :mod:`adapters.cot.mapping` — events ↔ :class:`Position`, ``Text``, ``EmergencyState``;
* :mod:`adapters.cot.adapter` — the asyncio driver (UDP unicast/multicast, TCP client).
"""

from adapters.cot.adapter import CotAdapter, CotConfig
from adapters.cot.events import CotError, CotEvent
from adapters.cot.mapping import Position

__all__ = ["CotAdapter", "CotConfig", "CotError", "CotEvent", "Position"]
