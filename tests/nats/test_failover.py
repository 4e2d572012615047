"""Failures in a country of two relay nodes over a 3-node NATS cluster (issue 14).

* kill -9 of relay node A mid-stream: its members reconnect to node B (the endpoint link
  takes one URL; the test points it at B, as a load balancer or DNS would), and every
  message acknowledged to a sender reaches every recipient exactly once, as do the messages
  that were in flight (resent by their sender, de-duplicated by ``Nats-Msg-Id``);
* kill -9 of the NATS node that leads the queue stream mid-stream: nothing acknowledged is
  lost, nothing is delivered twice.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

from bridge.demo.relay_process import RelayProcess
from bridge.endpoint import events as ev
from bridge.endpoint.endpoint import Endpoint
from tests.bridge.harness import next_event, quiet
from tests.nats.rig import CH, node_endpoint, roster
from tests.rigs.nats import NatsCluster
from tests.world import World

DISP, GW, VESSEL = "us-cbp/dispatch-1", "us-cbp/gw-blaine", "ca-rcmp/vessel-1"
N = 30
RECONNECT_LIMIT = 2.0  # seconds from the kill until the member is back, on the other node
SETTLE = 3.0  # seconds of quiet after the last delivery: longer than the consumer's ack wait


async def stream(sender: Endpoint, tag: str, acked: list[str], after: asyncio.Event) -> None:
    for i in range(N):
        await sender.send_text(CH, f"{tag}-{i}", timeout=40)
        acked.append(f"{tag}-{i}")
        if i == N // 3:
            after.set()
        await asyncio.sleep(0.02)


async def received(ep: Endpoint, sender: str, want: set[str], timeout: float) -> Counter[str]:
    """Texts from ``sender`` that ``ep`` got, until it has ``want`` and then stays quiet."""
    got: Counter[str] = Counter()
    deadline = asyncio.get_running_loop().time() + timeout
    while not want <= set(got):
        left = deadline - asyncio.get_running_loop().time()
        m = await next_event(ep, ev.Message, timeout=max(left, 0.01), sender=sender)
        got[m.body.decode()] += 1
    for e in await quiet(ep, SETTLE):
        if isinstance(e, ev.Message) and e.sender == sender:
            got[e.body.decode()] += 1
    return got


async def open_channel(world: World, eps: list[Endpoint]) -> None:
    await eps[0].commit(CH, roster(world, DISP, GW, VESSEL), agreement=world.agreement)
    for ep in eps[1:]:
        await next_event(ep, ev.ChannelUpdated, channel=CH, epoch=1, timeout=10)


async def test_relay_node_killed_mid_stream_members_move_and_lose_nothing(
    nodes: list[RelayProcess], world: World, tmp_path: Path
) -> None:
    a, b = nodes
    disp = await node_endpoint(a, world, world.devices[DISP], tmp_path)
    gw = await node_endpoint(a, world, world.devices[GW], tmp_path)
    vessel = await node_endpoint(b, world, world.devices[VESSEL], tmp_path)
    eps = [disp, gw, vessel]
    try:
        await open_channel(world, eps)
        from_b: list[str] = []
        from_a: list[str] = []
        third_b, third_a = asyncio.Event(), asyncio.Event()
        senders = [
            asyncio.create_task(stream(vessel, "b", from_b, third_b)),
            asyncio.create_task(stream(gw, "a", from_a, third_a)),
        ]
        await asyncio.wait_for(asyncio.gather(third_a.wait(), third_b.wait()), 20)
        killed = time.monotonic()
        a.kill9()
        for ep in (disp, gw):
            ep.link.relay_url = b.url  # what a load balancer in front of both would do
        await asyncio.wait_for(
            asyncio.gather(*(ep.connected.wait() for ep in (disp, gw))), RECONNECT_LIMIT + 5
        )
        reconnect = time.monotonic() - killed
        await asyncio.wait_for(asyncio.gather(*senders), 60)
        assert len(from_b) == len(from_a) == N
        for ep in (disp, gw):
            got = await received(ep, vessel.device, set(from_b), 30)
            assert got == Counter(from_b), "every acknowledged message from B, exactly once"
        got = await received(vessel, gw.device, set(from_a), 30)
        assert got == Counter(from_a), "every message of A's sender, exactly once"
        assert reconnect <= RECONNECT_LIMIT, f"reconnected after {reconnect:.2f} s"
        # Voice flows again between the moved members and node B's own.
        assert await vessel.start_burst(CH)
        vessel.send_voice(CH, b"after-failover")
        await vessel.end_burst(CH)
        assert (await next_event(disp, ev.Voice, sender=vessel.device)).payload == (
            b"after-failover"
        )
        print(f"relay node kill: members back on node B after {reconnect * 1000:.0f} ms")
    finally:
        for ep in eps:
            await ep.stop()


async def test_nats_node_killed_mid_stream_loses_nothing_acknowledged(
    nodes: list[RelayProcess], cluster: NatsCluster, world: World, tmp_path: Path
) -> None:
    a, b = nodes
    disp = await node_endpoint(a, world, world.devices[DISP], tmp_path)
    gw = await node_endpoint(b, world, world.devices[GW], tmp_path)
    vessel = await node_endpoint(b, world, world.devices[VESSEL], tmp_path)
    eps = [disp, gw, vessel]
    try:
        await open_channel(world, eps)
        acked: list[str] = []
        third = asyncio.Event()
        sender = asyncio.create_task(stream(vessel, "v", acked, third))
        await asyncio.wait_for(third.wait(), 20)
        leader = cluster.stream_leader("CB_QUEUE")
        killed = time.monotonic()
        cluster.kill9(leader)
        await asyncio.wait_for(sender, 90)
        stalled = time.monotonic() - killed
        assert len(acked) == N
        for ep in (disp, gw):
            got = await received(ep, vessel.device, set(acked), 40)
            assert got == Counter(acked), "every acknowledged message, exactly once"
        print(f"NATS stream leader kill: the rest of the stream took {stalled:.2f} s")
    finally:
        for ep in eps:
            await ep.stop()
