"""Audio over the console's WebSocket (aiohttp test server, fake endpoint): microphone frames
while push-to-talk is held become voice frames on the channel; a socket that closes lets go
of the floor; playout frames reach the browser unless it muted the channel."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import WSMsgType

from bridge.console.audio import FRAME_BYTES, listen_frame
from tests.console.fakes import CH
from tests.console.webkit import Rig, next_json, open_ws, rig

__all__ = ["rig"]  # the fixture, imported


async def until(cond: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_microphone_frames_become_voice_and_close_releases(rig: Rig) -> None:
    client, endpoint, service, _ = rig
    ws = await open_ws(client)
    await ws.send_bytes(b"\0" * FRAME_BYTES)  # not holding push-to-talk: refused
    await ws.send_json({"t": "ptt", "channel": CH, "down": True, "ref": 1})
    await next_json(ws, "ok", ref=1)
    await endpoint.wait_calls(1)
    assert endpoint.calls[0] == ("start_burst", CH, "normal")
    tone = bytes(range(256)) * (FRAME_BYTES // 256) + b"\0" * (FRAME_BYTES % 256)
    for _ in range(10):
        await ws.send_bytes(tone)
    await ws.send_bytes(b"\0" * (FRAME_BYTES - 2))  # not 20 ms at 16 kHz: refused
    await until(lambda: len(endpoint.voice) == 10)
    assert all(ch == CH and 0 < len(p) < FRAME_BYTES for ch, p in endpoint.voice)  # Opus
    assert (service.audio.stats.frames_in, service.audio.stats.frames_refused) == (10, 2)
    await ws.close()
    await endpoint.wait_calls(2)  # the browser went away: the floor is released
    assert endpoint.calls[1] == ("end_burst", CH)


async def test_push_to_talk_held_on_one_channel_at_a_time(rig: Rig) -> None:
    client, endpoint, service, _ = rig
    endpoint.channels["inc-2"] = endpoint.channels[CH]
    service.state.view("inc-2")
    ws = await open_ws(client)
    await ws.send_json({"t": "ptt", "channel": CH, "down": True, "ref": 1})
    await next_json(ws, "ok", ref=1)
    await ws.send_json({"t": "ptt", "channel": "inc-2", "down": True, "ref": 2})
    assert "another channel" in (await next_json(ws, "error", ref=2))["detail"]
    await ws.close()


async def receive_binary(ws: Any, timeout: float = 5.0) -> bytes:
    while True:
        msg = await asyncio.wait_for(ws.receive(), timeout)
        if msg.type == WSMsgType.BINARY:
            return bytes(msg.data)
        assert msg.type == WSMsgType.TEXT, msg


async def test_playout_reaches_the_browser_unless_muted(rig: Rig) -> None:
    client, _, service, _ = rig
    ws = await open_ws(client)
    await next_json(ws, "state")
    adapter = await service.audio.ensure(CH)
    first, second = b"\1\0" * (FRAME_BYTES // 2), b"\2\0" * (FRAME_BYTES // 2)
    adapter.play(first, ("ca-rcmp/gw-1",))
    assert await receive_binary(ws) == listen_frame(CH, first)
    await ws.send_json({"t": "listen", "channel": CH, "on": False, "ref": 1})
    await next_json(ws, "ok", ref=1)
    adapter.play(first, ("ca-rcmp/gw-1",))  # muted: not sent
    await ws.send_json({"t": "listen", "channel": CH, "on": True, "ref": 2})
    await next_json(ws, "ok", ref=2)
    adapter.play(second, ("ca-rcmp/gw-1",))
    assert await receive_binary(ws) == listen_frame(CH, second)  # the muted one never came
    await ws.send_json({"t": "listen", "channel": "nope", "on": False, "ref": 3})
    assert (await next_json(ws, "error", ref=3))["detail"] == "not a channel of this console"
    await ws.close()
