"""The endpoint's view of each channel's floor, from the relay's ``floor`` and ``floor-state``.

Part of the sans-IO :class:`~bridge.endpoint.core.EndpointCore`. The relay arbitrates the floor
(DESIGN §5); the endpoint only mirrors it — who talks, the emergency state — reports changes as
:class:`~bridge.endpoint.events.TalkerChanged`, :class:`~bridge.endpoint.events.FloorEvent`
and :class:`~bridge.endpoint.events.Emergency` (labelled ``source="relay"``, unverified: what
members signed is :mod:`bridge.endpoint.emergency`'s), and answers its own floor requests with
the relay's verdict (an :class:`~bridge.endpoint.output.Answer` keyed ``("floor", ch)``).
"""

from __future__ import annotations

from typing import Any

from bridge.endpoint import events as ev
from bridge.endpoint.output import Output

ANSWERS = ("granted", "denied", "queued")
FREED = ("released", "revoked", "idle")


class FloorView:
    def __init__(self, device: str, out: Output) -> None:
        self.device = device
        self._out = out
        self.floor: dict[str, str | None] = {}  # channel -> talker
        self.emergency: dict[str, bool] = {}  # as the relay claims it

    def on_floor(self, msg: dict[str, Any]) -> bool:
        """One ``floor`` event; True if it took the floor from us (our burst is over)."""
        ch, what, device = msg["ch"], msg["event"], msg.get("device")
        priority, reason = msg.get("priority"), msg.get("reason")
        self._out.emit(ev.FloorEvent(ch, what, device, priority, reason, msg.get("position")))
        if device == self.device and what in ANSWERS:
            self._out.answer(("floor", ch), what)
        if what == "granted":
            self.floor[ch] = device
            self._out.emit(ev.TalkerChanged(ch, device, priority, "granted"))
        elif what in FREED:
            holder = self.floor.get(ch)
            if holder is not None and (holder == device or what == "idle"):
                self.floor[ch] = None
                self._out.emit(ev.TalkerChanged(ch, None, None, reason or what))
            return what == "revoked" and device == self.device
        elif what == "emergency":
            active = bool(msg.get("active"))
            self.emergency[ch] = active
            self._out.emit(ev.Emergency(ch, active, device, source="relay", verified=False))
        return False

    def on_state(self, msg: dict[str, Any]) -> None:
        """Late entry: who holds the floor of a channel we just joined."""
        ch, holder = msg["ch"], msg.get("holder")
        self.floor[ch] = holder
        self.emergency[ch] = bool(msg.get("emergency"))
        if holder:
            self._out.emit(ev.TalkerChanged(ch, holder, msg.get("priority"), "late-entry"))
        if msg.get("emergency"):
            by = msg.get("emergency_by")
            self._out.emit(ev.Emergency(ch, True, by, source="relay", verified=False))

    def forget(self, ch: str) -> None:
        self.floor.pop(ch, None)
