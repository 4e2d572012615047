"""The endpoint does not trust the relay: garbage from it is counted, reported and ignored, and
the endpoint keeps (or re-establishes) its connection. First the core on its own, message by
message; then the asyncio endpoint against the test's own aiohttp server, which speaks the
protocol badly on purpose."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from aiohttp import web

from bridge.endpoint import events as ev
from bridge.endpoint.core import MALFORMED_FROM_RELAY
from bridge.endpoint.endpoint import Endpoint
from bridge.wire import control as p
from tests.bridge.endpoint.rig import Clock, Node
from tests.bridge.harness import free_port, next_event
from tests.world import make_world


def _deliver(seq: int, kind: str, body: str) -> str:
    return p.control("deliver", seq=seq, kind=kind, ch="x", id=f"i{seq}", body=body)


MALFORMED = [
    "not json",
    "[1, 2, 3]",
    json.dumps({"t": "deliver"}),  # no version
    p.control("deliver"),  # no fields
    _deliver(1, "commit", "!!"),  # not base64
    _deliver(2, "commit", base64.b64encode(b'{"commit": 1}').decode()),  # not a bundle
    p.control("floor", ch="x"),
    p.control("floor-state"),
    p.control("channel", ch=5),
    p.control("channel", ch="x", no=0),
    p.control("accepted"),
    p.control("error"),
    p.control("floor", ch="x", event="granted", device=["not", "a", "device"]),
    json.dumps({"t": "pong", "v": 99}),
]
UNDECRYPTABLE = [_deliver(3, "msg", base64.b64encode(b"\x00" * 40).decode())]
IGNORED = [p.control("something-new", extra=1), p.control("pong")]
JUNK = MALFORMED + UNDECRYPTABLE + IGNORED


def test_the_core_counts_every_malformed_relay_message(tmp_path: Path) -> None:
    w = make_world()
    node = Node(w, w.device("ca-rcmp", "vessel-1", ("member",)), tmp_path / "v.db", Clock(w.now))
    try:
        node.events.clear()
        for junk in JUNK:
            node.core.receive_control(junk, node.clock.now)
        node.pump()
        assert node.core.stats["malformed_from_relay"] == len(MALFORMED)
        codes = [e.code for e in node.take(ev.Error)]
        assert codes.count(MALFORMED_FROM_RELAY) == len(MALFORMED)
        assert codes.count("undecryptable") == 1 and len(codes) == len(MALFORMED) + 1
        # Deliveries with a sequence number are acknowledged even when refused: no redelivery.
        assert [m["seq"] for m in node.sent if m["t"] == "ack"] == [1, 2, 3]
    finally:
        node.close()


async def test_endpoint_survives_a_hostile_relay(tmp_path: Path) -> None:
    w = make_world()
    d = w.device("ca-rcmp", "vessel-1", ("member",))
    connections = 0

    async def handler(request: web.Request) -> web.WebSocketResponse:
        nonlocal connections
        connections += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(p.control("challenge", nonce="bm9uY2U=", relay="hostile"))
        await ws.receive(timeout=5)  # the device's auth
        welcome = p.control(
            "welcome",
            session=1,
            device=d.id,
            udp_token="AAAAAAAAAAA=",
            udp_key="AA==",
            udp_port=None,
            channels=[],
        )
        await ws.send_str(welcome)
        for junk in JUNK:
            await ws.send_str(junk)
        await ws.send_bytes(b"\x02\x00\x00\x00\x07" + b"\xff" * 50)  # media for no channel
        if connections == 1:
            await ws.send_str(p.control("pong"))
            await ws.close()  # then drop the link: the endpoint must come back
        else:
            async for _ in ws:  # until the endpoint stops
                pass
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"ws://127.0.0.1:{port}/ws"
    ep = Endpoint(d.cred, d.keys, w.trust, url, str(tmp_path / "v.db"), transport="ws")
    try:
        await ep.start()
        await next_event(ep, ev.Connected, timeout=10)
        for _ in MALFORMED:  # each one reported, none of them ends the connection
            await next_event(ep, ev.Error, timeout=10, code=MALFORMED_FROM_RELAY)
        await next_event(ep, ev.Error, timeout=10, code="undecryptable")
        assert ep.stats["malformed_from_relay"] == len(MALFORMED) and ep.reconnects == 0
        await next_event(ep, ev.Disconnected, timeout=10)  # the hostile relay hung up…
        await next_event(ep, ev.Connected, timeout=10)  # …and the endpoint came back by itself
        assert connections == 2 and ep.reconnects == 1 and ep.connected.is_set()
    finally:
        await ep.stop()
        await runner.cleanup()
