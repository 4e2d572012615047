"""Two relay nodes, one channel: members on different nodes talk and message (issue 14)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.demo.relay_process import RelayProcess
from bridge.endpoint import events as ev
from tests.bridge.harness import next_event
from tests.nats.rig import CH, node_endpoint, roster
from tests.world import World

DISP, GW, VESSEL = "us-cbp/dispatch-1", "us-cbp/gw-blaine", "ca-rcmp/vessel-1"


async def test_members_on_two_nodes_exchange_voice_and_texts(
    nodes: list[RelayProcess], world: World, tmp_path: Path
) -> None:
    a, b = nodes
    disp = await node_endpoint(a, world, world.devices[DISP], tmp_path)
    vessel = await node_endpoint(b, world, world.devices[VESSEL], tmp_path)
    try:
        await disp.commit(CH, roster(world, DISP, VESSEL), agreement=world.agreement)
        await next_event(vessel, ev.ChannelUpdated, channel=CH, epoch=1, timeout=10)
        # Voice from node B's member reaches node A's member, in order, and back.
        assert await vessel.start_burst(CH)
        for i in range(10):
            vessel.send_voice(CH, b"v-%d" % i)
            await asyncio.sleep(0.005)
        await vessel.end_burst(CH)
        got = [(await next_event(disp, ev.Voice, sender=vessel.device)).payload for _ in range(10)]
        assert got == [b"v-%d" % i for i in range(10)]
        assert (await next_event(disp, ev.BurstSealed, sender=vessel.device)).verified
        assert await disp.start_burst(CH)
        disp.send_voice(CH, b"d-0")
        await disp.end_burst(CH)
        assert (await next_event(vessel, ev.Voice, sender=disp.device)).payload == b"d-0"
        # Texts both ways, accepted on one node, delivered by the other.
        await disp.send_text(CH, "from A")
        assert (await next_event(vessel, ev.Message, sender=disp.device)).body == b"from A"
        await vessel.send_text(CH, "from B")
        assert (await next_event(disp, ev.Message, sender=vessel.device)).body == b"from B"
    finally:
        await disp.stop()
        await vessel.stop()
