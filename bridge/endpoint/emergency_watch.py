"""A relay-claimed emergency that no member signed: an alarm after a bound (sans-IO).

Part of the sans-IO :class:`~bridge.endpoint.core.EndpointCore`. The declaring device signs its
emergency (:mod:`bridge.endpoint.emergency`) and sends that message *before* its emergency floor
request, so the signed declaration normally comes before, or just after, the relay's ``floor``
event ``emergency``. A hostile relay can still show the floor's emergency and drop the signed
message (the members see a relay claim they cannot check), or make an emergency up. So when the
relay says ``by`` declared an emergency and, :data:`SIGNED_BOUND` seconds later, no signed
declaration from ``by`` (or from anyone, if the relay named nobody) is in force, an
:class:`~bridge.endpoint.events.EmergencyUnsigned` names the channel and the device the relay
named.

Only the live ``floor`` event of a channel we follow is watched, and not our own emergency:
the late-entry ``floor-state`` of a channel we just joined may carry an emergency declared
before we were a member, whose signed declaration was never ours to read.
"""

from __future__ import annotations

import logging

from bridge.endpoint import events as ev
from bridge.endpoint.output import Output

log = logging.getLogger("crossband.endpoint")
SIGNED_BOUND = 5.0  # s after the relay's emergency within which the signed one must be in force


class EmergencyWatch:
    def __init__(
        self, device: str, out: Output, declared: dict[str, str | None], bound: float = SIGNED_BOUND
    ) -> None:
        """``declared``: each channel's signed declarer (SignedEmergencies.declared), read."""
        self.device = device
        self._out = out
        self._declared = declared
        self.bound = bound
        self._pending: dict[str, tuple[str | None, float]] = {}  # ch -> (relay's by, deadline)

    def _signed(self, ch: str, by: str | None) -> bool:
        signer = self._declared.get(ch)
        return signer is not None and (by is None or signer == by)

    def on_relay(self, ch: str, active: bool, by: str | None, now: float) -> None:
        """The relay's ``floor`` event ``emergency`` for ``ch``."""
        if not active or by == self.device:  # ours: we signed it before we asked the floor
            self._pending.pop(ch, None)
        elif not self._signed(ch, by) and ch not in self._pending:
            self._pending[ch] = (by, now + self.bound)

    def get_timer(self) -> float | None:
        return min((at for _, at in self._pending.values()), default=None)

    def handle_timer(self, now: float) -> None:
        for ch, (by, at) in list(self._pending.items()):
            if self._signed(ch, by):
                del self._pending[ch]
            elif now >= at:
                del self._pending[ch]
                log.warning("event=emergency-unsigned channel=%s by=%s", ch, by)
                self._out.emit(ev.EmergencyUnsigned(ch, by, self.bound))

    def forget(self, ch: str) -> None:
        self._pending.pop(ch, None)
