"""Fault 7 against the real relay process (``limits:`` in relay.yaml): idle connections over
``max_unauthenticated`` are refused with ``overloaded``, and those that never authenticate are
closed with ``auth-timeout``; a device that authenticates still gets in."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bridge.wire import control as p
from tests.bridge.harness import RelayProcess
from tests.bridge.relay.net import RawWebSocket, auth_msg, parse_metrics
from tests.world import make_world


async def test_idle_connections_are_capped_and_time_out(tmp_path: Path) -> None:
    world = make_world(now=int(time.time()))
    d = world.device("us-cbp", "dispatch-1", ("dispatcher", "member"))
    relay = RelayProcess(tmp_path, world, limits={"max_unauthenticated": 3, "auth_timeout": 1.0})
    relay.start()
    idle: list[RawWebSocket] = []
    try:
        for _ in range(3):
            ws = await RawWebSocket.connect("127.0.0.1", relay.port)
            assert (await asyncio.wait_for(ws.receive_json(), 5))["t"] == "challenge"
            idle.append(ws)
        over = await RawWebSocket.connect("127.0.0.1", relay.port)
        assert (await asyncio.wait_for(over.receive_json(), 5))["code"] == p.Codes.OVERLOADED
        assert await asyncio.wait_for(over.closed(), 5) == p.Codes.OVERLOADED
        over.close()
        reasons = await asyncio.wait_for(asyncio.gather(*(ws.closed() for ws in idle)), 5)
        assert reasons == [p.Codes.AUTH_TIMEOUT] * 3
        ws = await RawWebSocket.connect("127.0.0.1", relay.port)
        ws.send_text(auth_msg(d, await asyncio.wait_for(ws.receive_json(), 5)))
        assert (await asyncio.wait_for(ws.receive_json(), 5))["t"] == "welcome"
        ws.close()
        m = parse_metrics(relay.metrics())
        assert m["crossband_auth_timeouts_total"] == 3
        assert m["crossband_connections_refused_total"] == 1
    finally:
        for ws in idle:
            ws.close()
        relay.stop()
