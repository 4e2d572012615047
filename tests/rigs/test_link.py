"""An impaired link in front of a stand-in relay (aiohttp WebSocket + UDP echo on 127.0.0.1):
the endpoint side reaches both through 127.0.0.2 with the relay's own UDP port number, and one
outage stops both: the WebSocket message sent in it arrives once after it, the datagrams are
lost, and both work again as soon as the link is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

import aiohttp
import pytest
from aiohttp import web

from tests.rigs.impair import Impairment
from tests.rigs.link import ImpairedLink


class UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)


class UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: asyncio.Queue[bytes] = asyncio.Queue()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.got.put_nowait(data)


@dataclass
class Relay:
    url: str
    ws: tuple[str, int]
    udp: tuple[str, int]
    texts: list[str]


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    texts: list[str] = []

    async def ws_echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            texts.append(msg.data)
            await ws.send_str(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/ws", ws_echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(UdpEcho, local_addr=("127.0.0.1", 0))
    udp_addr = udp.get_extra_info("sockname")[:2]
    yield Relay(f"ws://127.0.0.1:{port}/ws", ("127.0.0.1", port), udp_addr, texts)
    udp.close()
    await runner.cleanup()


async def test_websocket_and_udp_through_one_link_and_one_outage(relay: Relay) -> None:
    link = ImpairedLink(relay.ws, relay.udp, up=Impairment(delay=0.02))
    async with link, aiohttp.ClientSession() as session:
        url = link.url(relay.url)
        assert url.startswith("ws://127.0.0.2:") and url.endswith("/ws")
        loop = asyncio.get_running_loop()
        udp = link.udp
        assert udp is not None
        _, client = await loop.create_datagram_endpoint(
            UdpClient,
            remote_addr=("127.0.0.2", relay.udp[1]),  # the relay's port number
        )
        async with session.ws_connect(url, heartbeat=None) as ws:
            await ws.send_str("before")
            assert (await ws.receive(timeout=2.0)).data == "before"
            client_transport = client.transport
            client_transport.sendto(b"u1")
            assert await asyncio.wait_for(client.got.get(), 2.0) == b"u1"

            with link.outage():
                await ws.send_str("during")
                client_transport.sendto(b"lost")
                await udp.wait_until(lambda: udp.forward.dropped_down == 1, 2.0)
                await link.ws.wait_until(lambda: link.ws.read["forward"] > 0, 2.0)
                assert relay.texts == ["before"]  # held at the proxy, not yet at the relay
                up = time.monotonic()
            assert (await ws.receive(timeout=2.0)).data == "during"
            assert time.monotonic() - up <= 2.0
            client_transport.sendto(b"u2")
            assert await asyncio.wait_for(client.got.get(), 2.0) == b"u2"
            assert client.got.empty()  # "lost" never came back
        client_transport.close()
    assert relay.texts == ["before", "during"]  # delivered once
