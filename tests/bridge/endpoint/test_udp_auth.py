"""The endpoint's UDP side is authenticated (issue 9, fault 5): against the test's own relay on
127.0.0.1 (an aiohttp WebSocket server and a UDP socket, stopped by the test).

Before: any datagram from the relay's address that parsed went to the decryptor (an attacker
spoofing the relay's source address reached it with anything it liked), and the link sent two
registers at the welcome and never again, so after a NAT rebinding a listener's downstream
stayed on the dead port. Now a downstream datagram must carry the session's downstream MAC
(otherwise counted in ``udp_bad_mac`` and dropped before the handler sees it), and the link
re-registers with a fresh ``seq`` every keepalive, which carries it across a rebinding.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bridge.endpoint.link import RelayLink
from bridge.endpoint.udp_binding import UdpBinding
from bridge.wire import control as p
from bridge.wire import media as wm
from tests.bridge.endpoint.test_link import FakeRelay, Recorder, authenticated, device, welcome
from tests.bridge.harness import free_port, until
from tests.rigs.udp_proxy import UdpProxy

KEY = b"k" * 32  # the key test_link's welcome hands out
FRAME = b"an sframe frame"
Addr = tuple[str, int]


@pytest.fixture
async def relay() -> AsyncIterator[FakeRelay]:
    port = free_port()
    fake = FakeRelay(f"ws://127.0.0.1:{port}/ws")

    async def handler(request: web.Request) -> web.WebSocketResponse:
        fake.connections += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        assert fake.script is not None
        await fake.script(ws, fake.connections)
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield fake
    finally:
        await runner.cleanup()


class UdpRelay(asyncio.DatagramProtocol):
    """The relay's UDP side: records every register and the address it came from."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.registers: list[tuple[Addr, wm.UdpUp]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        up = wm.parse_udp_up(data)
        if up.kind == wm.UDP_REGISTER:
            self.registers.append((addr, up))

    @property
    def link_addr(self) -> Addr | None:
        return self.registers[-1][0] if self.registers else None


class Nat(UdpProxy):
    """The UDP proxy as a NAT whose mapping can be rebound: after :meth:`rebind` the client's
    next datagram leaves from a new port, and the old port is gone."""

    def rebind(self) -> None:
        for up in self._upstreams.values():
            if up.transport is not None:
                up.transport.close()
        self._upstreams.clear()


async def udp_relay() -> tuple[asyncio.DatagramTransport, UdpRelay, int]:
    loop = asyncio.get_running_loop()
    transport, udp = await loop.create_datagram_endpoint(UdpRelay, local_addr=("127.0.0.1", 0))
    return transport, udp, transport.get_extra_info("sockname")[1]


async def test_a_forged_downstream_datagram_never_reaches_the_decryptor(relay: FakeRelay) -> None:
    transport, udp, udp_port = await udp_relay()

    async def script(ws: web.WebSocketResponse, n: int) -> None:
        await authenticated(ws, welcome(udp_port))

    relay.script = script
    d, rec = device(), Recorder()
    link = RelayLink(d.cred, d.keys.sign, relay.url, rec, transport="udp")
    mine, other = wm.udp_down_mac(KEY), wm.udp_down_mac(os.urandom(32))
    template = wm.udp_media_down(7, FRAME)
    good = wm.udp_seal_down(mine, template)
    forged = [
        bytes((p.UDP_MAGIC, p.UDP_MEDIA_DOWN, 0, 0, 0, 7)) + FRAME,  # no MAC (the old format)
        template,  # the placeholder
        wm.udp_seal_down(other, template),  # another listener's copy
        good[:-9] + bytes([good[-9] ^ 1]) + good[-8:],  # one bit of the frame flipped
        good[:-1] + bytes([good[-1] ^ 1]),  # one bit of the MAC flipped
    ]
    try:
        await link.start()
        await until(lambda: udp.link_addr is not None, 10, "the link's UDP registration")
        for data in forged:
            transport.sendto(data, udp.link_addr)
        transport.sendto(good, udp.link_addr)
        await until(lambda: bool(rec.media), 10, "the relay's own datagram")
        assert rec.media == [(7, FRAME)]
        assert link.stats["udp_bad_mac"] == len(forged)
        assert link.stats["malformed_media"] == 0
    finally:
        await link.stop()
        transport.close()


async def test_registers_are_fresh_and_repeated_every_keepalive(relay: FakeRelay) -> None:
    transport, udp, udp_port = await udp_relay()

    async def script(ws: web.WebSocketResponse, n: int) -> None:
        await authenticated(ws, welcome(udp_port))

    relay.script = script
    d, rec = device(), Recorder()
    link = RelayLink(d.cred, d.keys.sign, relay.url, rec, transport="udp", udp_keepalive=0.2)
    try:
        await link.start()
        await until(lambda: len(udp.registers) >= 5, 10, "five registers")
        seqs = [up.seq for _, up in udp.registers]
        assert seqs[:5] == [1, 2, 3, 4, 5]
        assert all(wm.udp_mac_ok(KEY, up) for _, up in udp.registers)
    finally:
        await link.stop()
        transport.close()


async def test_the_link_re_registers_after_a_nat_rebinding(relay: FakeRelay) -> None:
    """Behind a NAT that rebinds: the relay learns the new port from the next keepalive, and
    its downstream reaches the listener again, within a bound."""
    keepalive = 0.3
    transport, udp, udp_port = await udp_relay()
    nat = Nat(("127.0.0.1", udp_port))
    await nat.start()

    async def script(ws: web.WebSocketResponse, n: int) -> None:
        await authenticated(ws, welcome(nat.address[1]))  # the relay as seen through the NAT

    relay.script = script
    d, rec = device(), Recorder()
    link = RelayLink(d.cred, d.keys.sign, relay.url, rec, transport="udp", udp_keepalive=keepalive)
    sealed = wm.udp_seal_down(wm.udp_down_mac(KEY), wm.udp_media_down(7, FRAME))
    try:
        await link.start()
        await until(lambda: udp.link_addr is not None, 10, "the link's UDP registration")
        before = udp.link_addr
        assert before is not None
        transport.sendto(sealed, before)
        await until(lambda: len(rec.media) == 1, 5, "voice before the rebinding")
        nat.rebind()
        loop = asyncio.get_running_loop()
        rebound_at = loop.time()
        transport.sendto(sealed, before)  # to the old mapping: lost
        await until(lambda: udp.link_addr != before, 3 * keepalive, "a register via the new port")
        assert loop.time() - rebound_at <= keepalive + 0.2
        after = udp.link_addr
        assert after is not None
        transport.sendto(sealed, after)
        await until(lambda: len(rec.media) == 2, 5, "voice after the rebinding")
        assert rec.media == [(7, FRAME), (7, FRAME)]
    finally:
        await link.stop()
        await nat.close()
        transport.close()


def test_a_binding_that_was_stopped_accepts_nothing_and_sends_nothing() -> None:
    stats: dict[str, int] = {}
    b = UdpBinding(stats)
    good = wm.udp_seal_down(wm.udp_down_mac(KEY), wm.udp_media_down(7, FRAME))
    assert b.receive(good) is None and stats["udp_bad_mac"] == 1  # not started
    b.start(b"t" * wm.TOKEN_LEN, KEY, 0.0)
    assert b.receive(good) == (7, FRAME)
    b.stop()
    assert b.receive(good) is None and stats["udp_bad_mac"] == 2
    assert b.get_timer() is None and b.datagrams_to_send(100.0) == []
