"""Fault 5, relay side: whatever one message does to the relay (JSON nested past the parser's
recursion limit, ids of the wrong type, a handler that raises something unforeseen), it is
answered with a coded error, and an authenticated connection stays up (a handler's own bug:
test_driver.py)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from bridge.wire import control as p
from tests.bridge.harness import RelayProcess
from tests.bridge.relay.net import RawWebSocket, auth_msg
from tests.world import World, make_world

DEEP = "[" * 200_000 + "]" * 200_000  # RecursionError in json.loads
DEEP_OBJECT = '{"t":"ping","v":1,"rid":' + '{"a":' * 100_000 + "1" + "}" * 100_001


@pytest.fixture
def world() -> World:
    w = make_world(now=int(time.time()))
    w.device("us-cbp", "dispatch-1", ("dispatcher", "member"))
    return w


async def _logged_in(port: int, world: World) -> RawWebSocket:
    ws = await RawWebSocket.connect("127.0.0.1", port)
    challenge = await asyncio.wait_for(ws.receive_json(), 5)
    ws.send_text(auth_msg(world.devices["us-cbp/dispatch-1"], challenge))
    assert (await asyncio.wait_for(ws.receive_json(), 5))["t"] == "welcome"
    return ws


async def test_hostile_messages_get_coded_errors(tmp_path: Path, world: World) -> None:
    relay = RelayProcess(tmp_path, world)
    relay.start()
    try:
        # Before authentication: a coded error, then the relay hangs up (as for any refusal).
        for junk in (DEEP, DEEP_OBJECT, json.dumps({"t": "msg", "v": 1, "ch": "c", "id": 5})):
            ws = await RawWebSocket.connect("127.0.0.1", relay.port)
            await asyncio.wait_for(ws.receive_json(), 5)
            ws.send_text(junk)
            reply = await asyncio.wait_for(ws.receive_json(), 5)
            assert reply["t"] == "error" and reply["code"] in (
                p.Codes.MALFORMED,
                p.Codes.AUTH_REQUIRED,
            )
            assert await asyncio.wait_for(ws.closed(), 5) == reply["code"]
            ws.close()
        # Authenticated: a coded error each time, and the connection keeps working.
        ws = await _logged_in(relay.port, world)
        hostile = [
            DEEP,
            DEEP_OBJECT,
            json.dumps({"t": "msg", "v": 1, "ch": "c", "id": 5, "frame": "AA"}),
            json.dumps({"t": "lookup", "v": 1, "devices": [], "rid": {"not": ["a string"]}}),
            json.dumps({"t": "ack", "v": 1, "seq": 10**30}),
        ]
        for junk in hostile:
            ws.send_text(junk)
            reply = await asyncio.wait_for(ws.receive_json(), 5)
            assert reply["t"] in ("error", "directory"), reply
            assert "rid" not in reply or reply["rid"] is None  # never echoes a structure
            ws.send_text(json.dumps({"t": "ping", "v": 1}))
            assert (await asyncio.wait_for(ws.receive_json(), 5))["t"] == "pong"
        ws.close()
        assert relay.running
    finally:
        relay.stop()
