"""Fault 6 against the real relay process: a member that authenticates and then never reads
must not hold up anybody else. The talker's texts and floor requests are answered within a
deadline while megabytes pile up for the stalled member, which is dropped (``slow-reader``)
and counted in ``/metrics``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bridge.endpoint import events as ev
from tests.bridge.harness import RelayProcess, endpoint, next_event, until
from tests.bridge.relay.net import RawWebSocket, auth_msg, parse_metrics
from tests.world import World, dispatch_and_vessel

CH = "inc-slow"
TEXT = 60 * 1024  # each text ~110 KB on the wire once signed, sealed and base64-encoded
TEXTS = 100  # ~11 MB for the stalled member: far past its 1 MiB queue and socket buffers


@pytest.fixture
def world() -> World:
    w = dispatch_and_vessel()
    w.device("ca-rcmp", "stalled", ("member",))
    return w


async def test_a_member_that_never_reads_blocks_nobody(tmp_path: Path, world: World) -> None:
    # ~11 MB of texts in a few seconds is more than a member's default control budget
    # (50 tokens/s, one per 64 KiB): raised, so that this test is about the slow reader.
    relay = RelayProcess(tmp_path, world, limits={"control_rate": 500.0, "control_burst": 1000.0})
    relay.start()
    disp = vessel = None
    stalled = await RawWebSocket.connect("127.0.0.1", relay.port, rcvbuf=4096)
    try:
        challenge = await asyncio.wait_for(stalled.receive_json(), 5)
        stalled.send_text(auth_msg(world.devices["ca-rcmp/stalled"], challenge))
        assert (await asyncio.wait_for(stalled.receive_json(), 5))["t"] == "welcome"
        # From here on the stalled member reads nothing at all.
        disp = await endpoint(relay, world, world.devices["us-cbp/dispatch-1"], tmp_path)
        vessel = await endpoint(relay, world, world.devices["ca-rcmp/vessel-1"], tmp_path)
        roster = [
            (disp.cred, "dispatcher"),
            (vessel.cred, "member"),
            (world.devices["ca-rcmp/stalled"].cred, "member"),
        ]
        await disp.commit(CH, roster, agreement=world.agreement)
        await next_event(vessel, ev.ChannelUpdated, channel=CH)
        body = b"x" * TEXT
        for i in range(TEXTS):
            await disp.send_text(CH, body, timeout=5.0)  # accepted within 5 s, every time
            if i % 10 == 9:
                assert await disp.start_burst(CH, timeout=5.0)  # floor answered in time
                await asyncio.wait_for(disp.end_burst(CH), 5.0)
        await next_event(vessel, ev.Message, timeout=10)  # the reading member got them

        def dropped() -> bool:
            return parse_metrics(relay.metrics())["crossband_slow_readers_total"] >= 1

        await until(dropped, timeout=10, what="the stalled member dropped as a slow reader")
        assert relay.running and disp.reconnects == 0
    finally:
        stalled.close()
        for ep in (disp, vessel):
            if ep is not None:
                await ep.stop()
        relay.stop()
