"""The UDP side of the hostile-relay harness (:class:`tests.rigs.hostile_relay.HostileRelay`).

The endpoints send their datagrams to :attr:`UdpMitm.port` (the harness rewrote the relay's
``welcome`` to say so), and for each endpoint address the proxy opens a socket of its own
towards the relay, as a NAT would. The relay sends a session's downstream to the address its
register came from, which is that socket, so downstream comes back through the proxy too. Every
datagram in either direction is handed to ``on_message(msg, forward)``. The UDP session token
(upstream bytes 2 to 10) names the device, once the harness has seen its ``welcome``.

The attacker's socket is one more socket towards the relay, from an address no endpoint uses:
what it sends goes to the relay, and what the relay sends it is handed over with
``forward=None`` (there is nobody to forward it to) and ``device="attacker"``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from bridge.wire import media as wm
from tests.security.policies import Forward, Message, Way

Addr = tuple[str, int]
ATTACKER = "attacker"
OnMessage = Callable[[Message, Forward | None], None]


def kind(data: bytes) -> int:
    """The datagram's kind byte (``wm.UDP_MEDIA``, ``UDP_REGISTER``, ``UDP_MEDIA_DOWN``), else 0."""
    return data[1] if len(data) >= 2 and data[0] == wm.UDP_MAGIC else 0


class _Back(asyncio.DatagramProtocol):
    """The proxy's socket towards the relay for one endpoint (``client``), or the attacker's."""

    def __init__(self, mitm: UdpMitm, no: int, client: Addr | None) -> None:
        self.mitm, self.no, self.client = mitm, no, client
        self.device: str | None = ATTACKER if client is None else None
        self.transport: asyncio.DatagramTransport | None = None
        self.queued: list[bytes] = []  # forwarded before the socket was open

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        for data in self.queued:
            self.transport.sendto(data)
        self.queued.clear()

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self.mitm._down(self, data)


class _Front(asyncio.DatagramProtocol):
    def __init__(self, mitm: UdpMitm) -> None:
        self.mitm = mitm

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self.mitm._up(addr, data)


class UdpMitm:
    def __init__(
        self,
        target: Addr,
        on_message: OnMessage,
        on_sent: Callable[[Message], None],
        tokens: dict[bytes, str],
    ) -> None:
        self.target = target
        self.on_message, self.on_sent = on_message, on_sent
        self.tokens = tokens  # session token -> device, filled in by the harness
        self._front: asyncio.DatagramTransport | None = None
        self._backs: dict[Addr, _Back] = {}
        self._attacker: _Back | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        assert self._front is not None, "start() first"
        return int(self._front.get_extra_info("sockname")[1])

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._front, _ = await loop.create_datagram_endpoint(
            lambda: _Front(self), local_addr=("127.0.0.1", 0)
        )
        attacker = self._attacker = _Back(self, -1, None)
        await loop.create_datagram_endpoint(lambda: attacker, remote_addr=self.target)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for back in [*self._backs.values(), *([self._attacker] if self._attacker else [])]:
            if back.transport is not None:
                back.transport.close()
        if self._front is not None:
            self._front.close()

    def inject(self, direction: Way, payload: bytes, device: str | None, attacker: bool) -> Message:
        if attacker:
            if direction != "up" or self._attacker is None:
                raise ValueError("the attacker socket sends upstream only")
            back = self._attacker
        else:
            matching = [b for b in self._backs.values() if device in (None, b.device)]
            if not matching:
                raise LookupError(f"no UDP client of {device or 'any device'} yet")
            back = matching[-1]
        now = asyncio.get_running_loop().time()
        msg = Message("udp", direction, kind(payload), payload, back.no, back.device, now, "inject")
        (self._send_up if direction == "up" else self._send_down)(back, msg)
        return msg

    def _up(self, client: Addr, data: bytes) -> None:
        back = self._backs.get(client)
        if back is None:
            back = self._backs[client] = _Back(self, len(self._backs), client)
            task = asyncio.get_running_loop().create_task(self._open(back))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if kind(data) in (wm.UDP_MEDIA, wm.UDP_REGISTER) and len(data) >= 2 + wm.TOKEN_LEN:
            back.device = self.tokens.get(data[2 : 2 + wm.TOKEN_LEN], back.device)
        now = asyncio.get_running_loop().time()
        msg = Message("udp", "up", kind(data), data, back.no, back.device, now)
        self.on_message(msg, lambda m: self._send_up(back, m))

    def _down(self, back: _Back, data: bytes) -> None:
        now = asyncio.get_running_loop().time()
        msg = Message("udp", "down", kind(data), data, back.no, back.device, now)
        self.on_message(msg, None if back.client is None else lambda m: self._send_down(back, m))

    async def _open(self, back: _Back) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: back, remote_addr=self.target)

    def _send_up(self, back: _Back, msg: Message) -> None:
        if back.transport is not None:
            back.transport.sendto(msg.payload)
        else:
            back.queued.append(msg.payload)
        self.on_sent(msg)

    def _send_down(self, back: _Back, msg: Message) -> None:
        if self._front is None or back.client is None:
            raise ValueError("nobody to send to")
        self._front.sendto(msg.payload, back.client)
        self.on_sent(msg)
