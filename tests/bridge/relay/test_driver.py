"""The asyncio driver: one timer armed from the core (no polling), monotonic time inside and
wall time where members see it, Prometheus exposition from a registry per server, and a
handler's own bug answered ``internal`` without harm."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.relay.core import RelayCore
from bridge.relay.memory_store import MemoryStore
from bridge.relay.server import RelayServer
from bridge.relay.state import RelayConfig
from bridge.wire import control as p
from tests.bridge.relay.helpers import NullAudit
from tests.bridge.relay.net import RawWebSocket, auth_msg, http_get, parse_metrics
from tests.world import World, dispatch_and_vessel

# Every name the hand-written exposition had; tests, the demo and bench/ read some of them.
OLD_NAMES = [
    "crossband_connections",
    "crossband_authenticated",
    "crossband_channels",
    "crossband_store_queue_depth",
    *(
        f"crossband_{name}_total"
        for name in (
            "frames_in",
            "frames_out",
            "frames_dropped",
            "floor_grants",
            "messages_accepted",
            "commits_accepted",
            "auth_refused",
            "protocol_errors",
        )
    ),
]


@pytest.fixture
def world() -> World:
    return dispatch_and_vessel()


async def _logged_in(port: int, world: World, device: str = "us-cbp/dispatch-1") -> RawWebSocket:
    ws = await RawWebSocket.connect("127.0.0.1", port)
    challenge = await asyncio.wait_for(ws.receive_json(), 5)
    ws.send_text(auth_msg(world.devices[device], challenge))
    assert (await asyncio.wait_for(ws.receive_json(), 5))["t"] == "welcome"
    return ws


async def _next(ws: RawWebSocket, t: str, timeout: float = 5.0) -> dict[str, object]:
    async def find() -> dict[str, object]:
        while True:
            msg = await ws.receive_json()
            if msg["t"] == t:
                return msg

    return await asyncio.wait_for(find(), timeout)


async def test_the_timer_is_armed_from_the_core(world: World) -> None:
    d = world.devices["us-cbp/dispatch-1"]
    core = RelayCore(world.trust, MemoryStore(), NullAudit(), RelayConfig(max_talk_time=0.4))
    server = RelayServer(core, udp_port=None)
    await server.start()
    try:
        loop = asyncio.get_running_loop()
        assert server.timer_deadline == core.next_timer()  # the store sweep, a minute away
        assert server.timer_deadline is not None and server.timer_deadline > loop.time() + 30
        ws = await _logged_in(server.port, world)
        v = world.devices["ca-rcmp/vessel-1"]
        bundle = world.commit(d, [(d, "dispatcher"), (v, "member")], None)
        ws.send_text(p.control("commit", bundle=p.b64(bundle.encode()), ch="inc-1", epoch=1))
        await _next(ws, "commit-ok")
        granted_at = loop.time()
        ws.send_text(
            json.dumps({"t": "floor-request", "v": 1, "ch": "inc-1", "priority": "normal"})
        )
        await _next(ws, "floor")
        deadline = server.timer_deadline
        assert deadline == core.next_timer() and granted_at < deadline <= granted_at + 0.5
        revoked = await _next(ws, "floor", timeout=2.0)  # fired at the core's deadline
        assert (revoked["event"], revoked["reason"]) == ("revoked", "max-talk-time")
        assert loop.time() >= deadline
        # Late entry shows the wall clock, though the floor runs on the monotonic one.
        ws.send_text(
            json.dumps({"t": "floor-request", "v": 1, "ch": "inc-1", "priority": "normal"})
        )
        await _next(ws, "floor")
        ws2 = await _logged_in(server.port, world, v.id)
        state = await _next(ws2, "floor-state")
        assert abs(float(str(state["since"])) - time.time()) < 5
        ws.close()
        ws2.close()
    finally:
        await server.stop()


async def test_metrics_come_from_a_registry_per_server(world: World) -> None:
    servers = [
        RelayServer(RelayCore(world.trust, MemoryStore(), NullAudit()), udp_port=None)
        for _ in range(2)
    ]
    for server in servers:
        await server.start()
    try:
        ws = await _logged_in(servers[0].port, world)
        text = (await asyncio.to_thread(http_get, servers[0].port, "/metrics"))[1].decode()
        families = {f.name for f in text_string_to_metric_families(text)}  # it parses
        assert "crossband_store_failures" in families and "crossband_slow_readers" in families
        first = parse_metrics(text)
        assert all(name in first for name in OLD_NAMES), [n for n in OLD_NAMES if n not in first]
        assert first["crossband_authenticated"] == 1
        other = parse_metrics(
            (await asyncio.to_thread(http_get, servers[1].port, "/metrics"))[1].decode()
        )
        assert other["crossband_authenticated"] == 0  # no shared, global registry
        status, body = await asyncio.to_thread(http_get, servers[0].port, "/healthz")
        assert status == 200 and json.loads(body)["ok"] is True
        ws.close()
    finally:
        for server in servers:
            await server.stop()


async def test_an_unforeseen_exception_is_internal_and_harmless(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> object:
        raise ZeroDivisionError("a bug in a handler")

    monkeypatch.setitem(RelayCore.HANDLERS, "lookup", broken)
    server = RelayServer(RelayCore(world.trust, MemoryStore(), NullAudit()), udp_port=None)
    await server.start()
    try:
        ws = await _logged_in(server.port, world)
        ws.send_text(json.dumps({"t": "lookup", "v": 1, "devices": [], "rid": "r1"}))
        reply = await asyncio.wait_for(ws.receive_json(), 5)
        assert (reply["code"], reply["rid"]) == (p.Codes.INTERNAL, "r1")
        assert "bug" not in reply["detail"]  # exception text never goes on the wire
        ws.send_text(json.dumps({"t": "ping", "v": 1}))
        assert (await asyncio.wait_for(ws.receive_json(), 5))["t"] == "pong"
        assert server.core.metrics.c["internal_errors"] == 1
        ws.close()
    finally:
        await server.stop()
