"""The floor across relay nodes: one talker at a time, decided by the channel's KV lease."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.demo.relay_process import RelayProcess
from bridge.endpoint import events as ev
from tests.bridge.harness import next_event, until
from tests.nats.rig import CH, node_endpoint, roster
from tests.world import World

DISP, GW, VESSEL = "us-cbp/dispatch-1", "us-cbp/gw-blaine", "ca-rcmp/vessel-1"
ROUNDS = 8


async def test_simultaneous_requests_on_two_nodes_grant_exactly_one(
    nodes: list[RelayProcess], world: World, tmp_path: Path
) -> None:
    a, b = nodes
    disp = await node_endpoint(a, world, world.devices[DISP], tmp_path)
    gw = await node_endpoint(a, world, world.devices[GW], tmp_path)
    vessel = await node_endpoint(b, world, world.devices[VESSEL], tmp_path)
    eps = (disp, gw, vessel)
    try:
        await disp.commit(CH, roster(world, DISP, GW, VESSEL), agreement=world.agreement)
        for ep in (gw, vessel):
            await next_event(ep, ev.ChannelUpdated, channel=CH, epoch=1, timeout=10)
        winners = []
        for _ in range(ROUNDS):
            answers = await asyncio.gather(gw.request_floor(CH), vessel.request_floor(CH))
            assert sorted(answers) == ["denied", "granted"], answers
            winner, loser = (gw, vessel) if answers[0] == "granted" else (vessel, gw)
            winners.append(winner.device)
            # Every member, on either node, sees the same talker; the loser's voice goes nowhere.
            for ep in eps:
                await until(lambda ep=ep: ep.floor.get(CH) == winner.device, 5, "the talker")
            await winner.release_floor(CH)
            for ep in eps:
                await until(lambda ep=ep: ep.floor.get(CH) is None, 5, "the floor free")
        assert set(winners) <= {gw.device, vessel.device} and len(winners) == ROUNDS
        # A higher priority on node A preempts the talker on node B.
        assert await vessel.request_floor(CH) == "granted"
        assert await disp.request_floor(CH, "high") == "granted"
        await next_event(vessel, ev.FloorEvent, event="granted", device=disp.device)
        assert await vessel.request_floor(CH) == "denied"
        await disp.release_floor(CH)
        await until(lambda: vessel.floor.get(CH) is None, 5, "the floor free after preemption")
    finally:
        for ep in eps:
            await ep.stop()
