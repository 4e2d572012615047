"""The endpoint does not trust the relay: garbage from it is reported and ignored, and the
endpoint keeps (or re-establishes) its connection. The hostile relay here is the test's own
aiohttp server, speaking the protocol badly on purpose."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

from aiohttp import web

from bridge.endpoint import events as ev
from bridge.endpoint.endpoint import Endpoint
from bridge.wire import control as p
from tests.bridge.harness import free_port
from tests.world import make_world

JUNK = [
    "not json",
    "[1, 2, 3]",
    json.dumps({"t": "deliver"}),
    json.dumps({"t": "deliver", "seq": 1, "kind": "commit", "ch": "x", "id": "i", "body": "!!"}),
    json.dumps(
        {
            "t": "deliver",
            "seq": 2,
            "kind": "commit",
            "ch": "x",
            "id": "i",
            "body": base64.b64encode(b'{"commit": 1}').decode(),
        }
    ),
    json.dumps(
        {
            "t": "deliver",
            "seq": 3,
            "kind": "msg",
            "ch": "x",
            "id": "i",
            "body": base64.b64encode(b"\x00" * 40).decode(),
        }
    ),
    json.dumps({"t": "floor", "ch": "x"}),
    json.dumps({"t": "floor-state"}),
    json.dumps({"t": "channel", "ch": 5}),
    json.dumps({"t": "accepted"}),
    json.dumps({"t": "error"}),
    json.dumps({"t": "something-new", "v": 99}),
]


async def test_endpoint_survives_a_hostile_relay(tmp_path: Path) -> None:
    w = make_world(now=int(time.time()))
    d = w.device("ca-rcmp", "vessel-1", ("member",))
    connections = 0
    junk_sent = asyncio.Event()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        nonlocal connections
        connections += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(p.control("challenge", nonce="bm9uY2U=", relay="hostile"))
        await ws.receive(timeout=5)  # the device's auth
        await ws.send_str(
            p.control(
                "welcome",
                session=1,
                device=d.id,
                udp_token="AAAAAAAAAAA=",
                udp_key="AA==",
                udp_port=None,
                channels=[],
            )
        )
        for junk in JUNK:
            await ws.send_str(junk)
        await ws.send_bytes(b"\x02\x00\x00\x00\x07" + b"\xff" * 50)  # media for no channel
        junk_sent.set()
        if connections == 1:
            await asyncio.sleep(0.5)
            await ws.close()  # then drop the link: the endpoint must come back
        else:
            await asyncio.sleep(5)
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    ep = Endpoint(
        d.cred, d.keys, w.trust, f"ws://127.0.0.1:{port}/ws", str(tmp_path / "v.db"), transport="ws"
    )
    try:
        await ep.start()
        await ep.wait_connected(10)
        await asyncio.wait_for(junk_sent.wait(), 10)
        await asyncio.sleep(0.3)
        assert ep.connected.is_set()
        errors = []
        while not ep.events.empty():
            e = ep.events.get_nowait()
            if isinstance(e, ev.Error):
                errors.append(e.code)
        assert errors.count("malformed-from-relay") >= 6
        assert ep.stats["malformed_from_relay"] >= 6
        for _ in range(100):  # the hostile relay hung up: the endpoint reconnects by itself
            if connections >= 2 and ep.connected.is_set():
                break
            await asyncio.sleep(0.1)
        assert connections >= 2 and ep.reconnects >= 1
    finally:
        await ep.stop()
        await runner.cleanup()
