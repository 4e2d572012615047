"""The UDP proxy on loopback: the delay it applies is the configured one (within a tolerance,
on a deadline), the jittered delays are the seeded model's, the loss is the model's and lies
within binomial bounds, an outage blocks both ways and the link resumes."""

from __future__ import annotations

import asyncio
import math
import struct
import time
from collections.abc import AsyncIterator, Callable
from typing import cast

import pytest

from tests.rigs.impair import Direction, Impairment
from tests.rigs.udp_proxy import UdpProxy

Addr = tuple[str, int]
LATE = 0.06  # how late a timer may fire on a loaded 2-core machine


class Sink(asyncio.DatagramProtocol):
    """Records (arrival time, datagram); echoes each datagram back when ``echo``."""

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.got: list[tuple[float, bytes]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.changed = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self.got.append((time.monotonic(), data))
        self.changed.set()
        if self.echo and self.transport is not None:
            self.transport.sendto(data, addr)

    @property
    def address(self) -> Addr:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


async def open_sink(echo: bool = False) -> Sink:
    loop = asyncio.get_running_loop()
    _, sink = await loop.create_datagram_endpoint(lambda: Sink(echo), local_addr=("127.0.0.1", 0))
    return sink


@pytest.fixture
async def target() -> AsyncIterator[Sink]:
    sink = await open_sink(echo=True)
    yield sink
    assert sink.transport is not None
    sink.transport.close()


@pytest.fixture
async def client() -> AsyncIterator[Sink]:
    sink = await open_sink()
    yield sink
    assert sink.transport is not None
    sink.transport.close()


def send(client: Sink, proxy: UdpProxy, seq: int) -> float:
    assert client.transport is not None
    sent = time.monotonic()
    client.transport.sendto(struct.pack("!Id", seq, sent), proxy.address)
    return sent


def sent_count(proxy: UdpProxy, n: int) -> Callable[[], bool]:
    return lambda: proxy.forward.sent == n


def seqs(sink: Sink) -> list[int]:
    return [struct.unpack("!Id", d)[0] for _, d in sink.got]


async def test_delay_applied_within_tolerance(target: Sink, client: Sink) -> None:
    async with UdpProxy(target.address, Impairment(delay=0.1)) as proxy:
        sent = [send(client, proxy, i) for i in range(5)]
        await target.until(lambda: len(target.got) == 5, timeout=0.1 + 2.0)
    transit = [t - s for (t, _), s in zip(target.got, sent, strict=True)]
    assert all(0.1 - 0.002 <= x <= 0.1 + LATE for x in transit), transit


async def test_replies_come_back_with_their_own_delay(target: Sink, client: Sink) -> None:
    fwd, back = Impairment(delay=0.05), Impairment(delay=0.08)
    async with UdpProxy(target.address, fwd, back) as proxy:
        sent = send(client, proxy, 1)
        await client.until(lambda: len(client.got) == 1)
    rtt = client.got[0][0] - sent
    assert 0.13 - 0.002 <= rtt <= 0.13 + LATE, rtt
    assert proxy.delivered == {"forward": 1, "back": 1}


async def test_jitter_follows_the_seeded_model(target: Sink, client: Sink) -> None:
    imp = Impairment(delay=0.08, jitter=0.04, seed=11)
    expected = Direction(imp)  # the same seed replayed: the schedule the proxy must follow
    async with UdpProxy(target.address, imp) as proxy:
        sent: dict[int, float] = {}
        for i in range(40):
            sent[i] = send(client, proxy, i)
            await asyncio.sleep(0.01)  # pacing the sender, not waiting for a result
        await target.until(lambda: len(target.got) == 40)
    transit = {seq: t - sent[seq] for (t, _), seq in zip(target.got, seqs(target), strict=True)}
    for i in range(40):
        want = expected.datagram(0.0)  # sent at 0: arrives at its transit time
        assert want is not None
        assert want - 0.002 <= transit[i] <= want + LATE, (i, want, transit[i])
    assert seqs(target) != sorted(seqs(target))  # 40 ms of jitter at 10 ms spacing reorders


@pytest.mark.parametrize("seed", [1, 2])
async def test_loss_is_the_models_and_within_binomial_bounds(
    target: Sink, client: Sink, seed: int
) -> None:
    n, loss = 2000, 0.05
    async with UdpProxy(target.address, Impairment(loss=loss, seed=seed)) as proxy:
        for i in range(n):
            send(client, proxy, i)
            if i % 50 == 49:  # keep socket buffers from overflowing: wait for the batch
                await proxy.wait_until(sent_count(proxy, i + 1), timeout=5)
        await proxy.wait_until(lambda: proxy.forward.sent == n, timeout=5)
        await target.until(lambda: len(target.got) == proxy.delivered["forward"])
    replay = Direction(Impairment(loss=loss, seed=seed))
    want_lost = {i for i in range(n) if replay.datagram(float(i)) is None}
    assert set(range(n)) - set(seqs(target)) == want_lost  # exactly the model's drops
    mean, sd = n * loss, math.sqrt(n * loss * (1 - loss))
    assert mean - 4.5 * sd <= len(want_lost) <= mean + 4.5 * sd, len(want_lost)


async def test_outage_blocks_both_ways_and_resumes(target: Sink, client: Sink) -> None:
    async with UdpProxy(target.address) as proxy:
        send(client, proxy, 0)
        await client.until(lambda: len(client.got) == 1)  # echoed: the path works
        proxy.link.set_down()
        for i in range(1, 6):
            send(client, proxy, i)
        await proxy.wait_until(lambda: proxy.forward.dropped_down == 5, timeout=5)
        proxy.link.set_up()
        send(client, proxy, 99)
        await client.until(lambda: len(client.got) == 2)
    # The datagrams sent in the outage would have arrived before 99 (no delay, in order).
    assert seqs(target) == [0, 99] and seqs(client) == [0, 99]


async def test_scheduled_30s_outage_on_a_fake_clock(target: Sink, client: Sink) -> None:
    now = [0.0]
    async with UdpProxy(target.address, clock=lambda: now[0]) as proxy:
        proxy.link.schedule(10.0, 30.0)
        for t, seq in ((5.0, 1), (10.0, 2), (39.9, 3), (40.0, 4)):
            now[0] = t
            send(client, proxy, seq)
            await proxy.wait_until(sent_count(proxy, seq), timeout=5)
        await target.until(lambda: len(target.got) == 2)
    assert seqs(target) == [1, 4]
    assert proxy.forward.dropped_down == 2
