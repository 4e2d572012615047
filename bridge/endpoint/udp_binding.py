"""The endpoint's side of its UDP binding with the relay, sans-IO: when to register, and which
downstream datagrams are the relay's.

The relay sends a session's voice by UDP to the address its last *fresh* register came from
(:mod:`bridge.wire.media`: every register carries a ``seq`` above the last one, so a captured
register replayed from elsewhere is refused). This object keeps that binding alive:

- :meth:`start` (each ``welcome``: a new token and key) registers at once and again
  :data:`SECOND_TRY` seconds later (a register lost on the way costs no voice: until the relay
  has a UDP address for the session it sends its voice over the WebSocket);
- then every :data:`KEEPALIVE` seconds, which keeps a NAT mapping open and, when a NAT
  rebinds the endpoint's source port, moves the relay's downstream to the new port within
  one keepalive (the endpoint cannot see its NAT's ports; the relay never follows media
  datagrams to a new address, since anybody can replay those).

:meth:`receive` checks a downstream datagram's structure, then its MAC under the session's
downstream key, before anything reaches the decryptor; what fails is counted in the stats it
was given (``malformed_media``, ``udp_bad_mac``) and dropped. Time is a parameter (monotonic
seconds): the driver calls :meth:`datagrams_to_send` at :meth:`get_timer`.
"""

from __future__ import annotations

from typing import Final

from bridge.errors import RemoteProtocolError
from bridge.wire import media as wm

__all__ = ["KEEPALIVE", "SECOND_TRY", "UdpBinding"]

KEEPALIVE: Final = 5.0  # seconds between registers (NAT mappings often last 30 s; rebinding bound)
SECOND_TRY: Final = 0.5  # seconds after the first register of a session, a second one


class UdpBinding:
    def __init__(self, stats: dict[str, int], keepalive: float = KEEPALIVE) -> None:
        if keepalive <= 0:
            raise ValueError("keepalive must be positive")
        self.stats = stats
        stats.setdefault("malformed_media", 0)
        stats.setdefault("udp_bad_mac", 0)
        stats.setdefault("udp_registers", 0)
        self.keepalive = keepalive
        self._token = b""
        self._key = b""
        self._mac: wm.DownMac | None = None
        self._seq = 0
        self._due: float | None = None
        self._second: float | None = None  # when the second register of a session is due

    @property
    def active(self) -> bool:
        return self._mac is not None

    def start(self, token: bytes, key: bytes, now: float) -> None:
        """A new session (``welcome``): its token and UDP key; register now."""
        if len(token) != wm.TOKEN_LEN or not key:
            raise ValueError("udp token or key")
        self._token, self._key, self._mac = token, key, wm.udp_down_mac(key)
        self._seq = 0
        self._due, self._second = now, now + SECOND_TRY

    def stop(self) -> None:
        """The session ended: nothing more to register, nothing more to accept."""
        self._token, self._key, self._mac = b"", b"", None
        self._due = self._second = None

    def get_timer(self) -> float | None:
        return self._due

    def datagrams_to_send(self, now: float) -> list[bytes]:
        """The register due at ``now``, if any (then the next one is scheduled)."""
        if self._due is None or now < self._due:
            return []
        self._seq += 1
        second, self._second = self._second, None
        self._due = second if second is not None and second > now else now + self.keepalive
        self.stats["udp_registers"] += 1
        return [wm.udp_register(self._token, self._key, self._seq)]

    def receive(self, data: bytes) -> tuple[int, bytes] | None:
        """``(channel_no, sframe)`` of the relay's datagram ``data``, or None (counted)."""
        try:
            channel_no, frame = wm.parse_udp_down(data)
        except RemoteProtocolError:
            self.stats["malformed_media"] += 1
            return None
        if self._mac is None or not wm.udp_down_ok(self._mac, data):
            self.stats["udp_bad_mac"] += 1
            return None
        return channel_no, frame
