"""The TCP proxy on loopback: a steady stream is delayed by the configured amount (not by a
sum of delays), jitter never reorders bytes, a "hold" outage delivers late on the same
connection, a "reset" outage breaks connections until the link is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.rigs.impair import Impairment
from tests.rigs.tcp_proxy import TcpProxy

Addr = tuple[str, int]
LATE = 0.06  # how late a timer may fire on a loaded 2-core machine


ARRIVALS: list[tuple[float, bytes]] = []  # what the echo server read, and when


@pytest.fixture
async def echo() -> AsyncIterator[Addr]:
    ARRIVALS.clear()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                ARRIVALS.append((time.monotonic(), data))
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[:2]
    server.close()
    await server.wait_closed()


async def connect(proxy: TcpProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*proxy.address)


async def test_round_trip_delay_within_tolerance(echo: Addr) -> None:
    async with TcpProxy(echo, Impairment(delay=0.1), Impairment(delay=0.05)) as proxy:
        reader, writer = await connect(proxy)
        sent = time.monotonic()
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 2.0) == b"ping"
        rtt = time.monotonic() - sent
        writer.close()
    assert 0.15 - 0.002 <= rtt <= 0.15 + LATE, rtt


async def test_stream_delay_does_not_accumulate(echo: Addr) -> None:
    async with TcpProxy(echo, Impairment(delay=0.1)) as proxy:
        reader, writer = await connect(proxy)
        sends: list[float] = []
        for i in range(20):
            sends.append(time.monotonic())
            writer.write(bytes([i]))
            await asyncio.sleep(0.01)  # pacing the talker, not waiting for a result
        got, arrivals = b"", []
        async with asyncio.timeout(3.0):
            while len(got) < 20:
                got += await reader.read(1)
                arrivals.append(time.monotonic())
        writer.close()
    assert got == bytes(range(20))
    assert arrivals[-1] - sends[-1] <= 0.1 + LATE  # 20 chunks: not 20 x 100 ms


async def test_jitter_keeps_byte_order(echo: Addr) -> None:
    imp = Impairment(delay=0.05, jitter=0.04, seed=3)
    async with TcpProxy(echo, imp, imp) as proxy:
        reader, writer = await connect(proxy)
        payload = b"".join(i.to_bytes(2, "big") for i in range(300))
        for k in range(0, len(payload), 20):
            writer.write(payload[k : k + 20])
            await writer.drain()
            await asyncio.sleep(0.002)
        got = await asyncio.wait_for(reader.readexactly(len(payload)), 5.0)
        writer.close()
    assert got == payload


async def test_hold_outage_delivers_late_on_the_same_connection(echo: Addr) -> None:
    async with TcpProxy(echo, on_outage="hold") as proxy:
        reader, writer = await connect(proxy)
        writer.write(b"a")
        assert await asyncio.wait_for(reader.readexactly(1), 2.0) == b"a"
        proxy.link.set_down()
        writer.write(b"held")
        await writer.drain()
        await proxy.wait_until(lambda: proxy.read["forward"] == 5, timeout=2.0)  # read it ...
        assert proxy.bytes["forward"] == 1  # ... and not delivered it
        up = time.monotonic()
        proxy.link.set_up()
        assert await asyncio.wait_for(reader.readexactly(4), 2.0) == b"held"
        assert ARRIVALS[-1][1] == b"held" and ARRIVALS[-1][0] >= up  # held until the link was up
        assert proxy.accepted == 1 and proxy.resets == 0
        writer.close()


async def test_reset_outage_breaks_connections_until_up(echo: Addr) -> None:
    async with TcpProxy(echo, on_outage="reset") as proxy:
        reader, writer = await connect(proxy)
        writer.write(b"a")
        assert await asyncio.wait_for(reader.readexactly(1), 2.0) == b"a"
        proxy.link.set_down()
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), 2.0)
        reader2, _ = await connect(proxy)  # accepted by the kernel, then reset
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader2.readexactly(1), 2.0)
        proxy.link.set_up()
        reader3, writer3 = await connect(proxy)
        writer3.write(b"back")
        assert await asyncio.wait_for(reader3.readexactly(4), 2.0) == b"back"
        writer3.close()
    assert proxy.resets >= 2


async def test_scheduled_outage_holds_until_the_window_ends(echo: Addr) -> None:
    async with TcpProxy(echo) as proxy:
        reader, writer = await connect(proxy)
        writer.write(b"a")
        assert await asyncio.wait_for(reader.readexactly(1), 2.0) == b"a"
        assert proxy.clock is not None
        start = proxy.clock()
        proxy.link.schedule(start, 0.3)  # down now, for 300 ms, on the proxy's (real) clock
        sent = time.monotonic()
        writer.write(b"b")
        assert await asyncio.wait_for(reader.readexactly(1), 2.0) == b"b"
        waited = time.monotonic() - sent
        writer.close()
    assert 0.3 - 0.01 <= waited <= 0.3 + LATE, waited
