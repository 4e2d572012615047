"""The relay link reads what the relay sends as hostile input: against the test's own relay on
127.0.0.1 (an aiohttp WebSocket server and a UDP socket, both stopped by the test).

Before: a downstream datagram or binary frame was split by hand (any length passed, so an
oversized or truncated frame reached the core); the challenge and the welcome were read with
``json.loads`` (duplicate keys, NaN, and a deeply nested challenge raised ``RecursionError``,
logged as a crash of the session). Now both media paths go through the wire parsers
(:func:`bridge.wire.media.parse_udp_down`, ``parse_ws_media``), malformed media is counted in
``link.stats["malformed_media"]`` and dropped, and authentication messages are parsed strictly
and checked against ``RELAY_MESSAGES``: a malformed one fails that attempt quietly and the link
tries again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from bridge.endpoint import events as ev
from bridge.endpoint.link import RelayLink
from bridge.wire import control as p
from bridge.wire.media import udp_down_mac, udp_seal_down
from tests.bridge.harness import free_port, until
from tests.world import Device, make_world

TOKEN, KEY = p.b64(b"t" * p.TOKEN_LEN), p.b64(b"k" * 32)
CHALLENGE = p.control("challenge", nonce=p.b64(b"n" * 16), relay="test-relay")
FRAME = b"an sframe frame"
TOO_LONG = b"x" * (p.MAX_SFRAME + 1)
BAD_DATAGRAMS = [  # (asyncio does not send an empty datagram)
    b"\xcb",
    bytes((p.UDP_MAGIC, p.UDP_MEDIA_DOWN, 0, 0, 0, 7)),  # no frame
    bytes((p.UDP_MAGIC, p.UDP_MEDIA_DOWN, 0, 0, 0, 7)) + TOO_LONG,
    bytes((p.UDP_MAGIC, p.UDP_MEDIA)) + b"\x00" * 30,  # an upstream datagram
    b"\x00\x03\x00\x00\x00\x07" + FRAME,  # wrong magic
]
BAD_BINARY = [
    b"\x02\x00\x00",  # truncated
    b"\x02\x00\x00\x00\x07" + TOO_LONG,
    b"\x01\x00\x00\x00\x07" + FRAME,  # an upstream frame
    b"\x09\x00\x00\x00\x07" + FRAME,  # unknown kind
]


def welcome(udp_port: int | None = None) -> str:
    return p.control(
        "welcome", session="s1", udp_token=TOKEN, udp_key=KEY, udp_port=udp_port, channels=[]
    )


@dataclass
class Recorder:
    """The link's handler: records what the link hands up."""

    welcomes: list[dict[str, Any]] = field(default_factory=list)
    media: list[tuple[int, bytes]] = field(default_factory=list)
    events: list[ev.Event] = field(default_factory=list)

    async def on_welcome(self, welcome: dict[str, Any]) -> None:
        self.welcomes.append(welcome)

    async def on_text(self, data: str) -> None:
        pass

    def on_media(self, channel_no: int, frame: bytes) -> None:
        self.media.append((channel_no, frame))

    def emit(self, event: ev.Event) -> None:
        self.events.append(event)


Script = Callable[[web.WebSocketResponse, int], Awaitable[None]]


@dataclass
class FakeRelay:
    url: str
    connections: int = 0
    script: Script | None = None


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
        async for _ in ws:  # until the link goes
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
    """The relay's UDP side: learns the link's address from its register datagram."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.link_addr: tuple[str, int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if p.parse_udp_up(data).kind == p.UDP_REGISTER:
            self.link_addr = addr


def device() -> Device:
    w = make_world()
    return w.device("ca-rcmp", "vessel-1", ("member",))


async def authenticated(ws: web.WebSocketResponse, hello: str) -> None:
    await ws.send_str(CHALLENGE)
    await ws.receive(timeout=5)  # the device's auth
    await ws.send_str(hello)


async def test_malformed_datagrams_are_counted_and_dropped(relay: FakeRelay) -> None:
    loop = asyncio.get_running_loop()
    udp_transport, udp = await loop.create_datagram_endpoint(UdpRelay, local_addr=("127.0.0.1", 0))
    udp_port = udp_transport.get_extra_info("sockname")[1]

    async def script(ws: web.WebSocketResponse, n: int) -> None:
        await authenticated(ws, welcome(udp_port))

    relay.script = script
    d, rec = device(), Recorder()
    link = RelayLink(d.cred, d.keys.sign, relay.url, rec, transport="udp")
    try:
        await link.start()
        await until(lambda: udp.link_addr is not None, 10, "the link's UDP registration")
        for junk in BAD_DATAGRAMS:
            udp_transport.sendto(junk, udp.link_addr)
        mac = udp_down_mac(b"k" * 32)
        udp_transport.sendto(udp_seal_down(mac, p.udp_media_down(7, FRAME)), udp.link_addr)
        await until(lambda: bool(rec.media), 10, "the valid datagram")
        assert rec.media == [(7, FRAME)]
        # an oversized frame now parses as a frame and a MAC (which is wrong)
        assert link.stats["malformed_media"] + link.stats["udp_bad_mac"] == len(BAD_DATAGRAMS)
    finally:
        await link.stop()
        udp_transport.close()


async def test_malformed_binary_frames_are_counted_and_dropped(relay: FakeRelay) -> None:
    async def script(ws: web.WebSocketResponse, n: int) -> None:
        await authenticated(ws, welcome())
        for junk in BAD_BINARY:
            await ws.send_bytes(junk)
        await ws.send_bytes(p.ws_media(p.WS_MEDIA_DOWN, 7, FRAME))

    relay.script = script
    d, rec = device(), Recorder()
    link = RelayLink(d.cred, d.keys.sign, relay.url, rec, transport="ws")
    try:
        await link.start()
        await until(lambda: bool(rec.media), 10, "the valid frame")
        assert rec.media == [(7, FRAME)]
        assert link.stats["malformed_media"] == len(BAD_BINARY)
        assert link.connected.is_set() and link.reconnects == 0
    finally:
        await link.stop()


AUTH_JUNK = {
    "deep challenge": ("[" * 100_000 + "]" * 100_000, None),
    "challenge without nonce": (p.control("challenge", relay="r"), None),
    "duplicate key in welcome": (CHALLENGE, welcome()[:-1] + f',"udp_token":"{TOKEN}"}}'),
    "NaN in welcome": (CHALLENGE, welcome()[:-1] + ',"udp_port":NaN}'),
    "port out of range": (CHALLENGE, welcome(70_000)),
    "short udp token": (CHALLENGE, welcome().replace(TOKEN, p.b64(b"t"))),
    "udp token not base64": (CHALLENGE, welcome().replace(TOKEN, "not base64!")),
    "not a welcome": (CHALLENGE, p.control("pong")),
}


@pytest.mark.parametrize("case", sorted(AUTH_JUNK))
async def test_a_malformed_authentication_fails_quietly_and_the_link_retries(
    relay: FakeRelay, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = AUTH_JUNK[case]

    async def script(ws: web.WebSocketResponse, n: int) -> None:
        await ws.send_str(first)
        if second is not None:
            await ws.receive(timeout=5)
            await ws.send_str(second)

    relay.script = script
    d, rec = device(), Recorder()
    link = RelayLink(d.cred, d.keys.sign, relay.url, rec, transport="ws")
    caplog.set_level(logging.INFO, logger="crossband.endpoint")
    try:
        await link.start()
        await until(lambda: relay.connections >= 3, 15, "two reconnects")
        assert rec.welcomes == [] and not link.connected.is_set()
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # no traceback
        assert any("code=malformed" in r.getMessage() for r in caplog.records)
    finally:
        await link.stop()


async def test_a_relay_that_drops_every_session_at_once_meets_a_growing_backoff(
    relay: FakeRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a session that ended without an exception (welcomed, then closed) reset the
    backoff to 0.2 s, so a relay dropping every session got a reconnect every 0.2 s (67 in
    30 s). Now only a session that lasted ``STABLE_SESSION`` resets it: with the jitter fixed
    at its midpoint, connections 1 → 5 are 0.2 + 0.4 + 0.8 + 1.0 = 2.4 s apart (were 0.8 s)."""
    monkeypatch.setattr("bridge.endpoint.link.random.random", lambda: 0.5)
    loop = asyncio.get_running_loop()
    seen: list[float] = []

    async def script(ws: web.WebSocketResponse, n: int) -> None:
        seen.append(loop.time())
        await authenticated(ws, welcome())
        await ws.close()

    relay.script = script
    d, rec = device(), Recorder()
    link = RelayLink(d.cred, d.keys.sign, relay.url, rec, transport="ws")
    try:
        await link.start()
        await until(lambda: relay.connections >= 5, 15, "four reconnects")
        assert len(rec.welcomes) >= 4  # each session was a real one
        assert seen[4] - seen[0] >= 2.0, f"reconnects {[round(t - seen[0], 2) for t in seen]}"
    finally:
        await link.stop()
