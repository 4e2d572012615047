"""A commit is decoded and verified on a thread of its own, not on the event loop: a
500-member rekey (~150 ms of decoding and signature checks, docs/benchmarks.md) used to stop
every channel's voice and every answer for that long."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from bridge.relay.core import RelayCore
from bridge.relay.memory_store import MemoryStore
from bridge.relay.server import RelayServer
from bridge.wire import control as p
from crypto.channel import CommitBundle
from tests.bridge.relay.helpers import NullAudit
from tests.bridge.relay.net import RawWebSocket, auth_msg
from tests.world import Device, make_world


async def _login(port: int, d: Device) -> RawWebSocket:
    ws = await RawWebSocket.connect("127.0.0.1", port)
    ws.send_text(auth_msg(d, await ws.receive_json(5)))
    assert (await ws.receive_json(5))["t"] == "welcome"
    return ws


async def test_the_loop_answers_others_while_a_commit_is_verified(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = make_world(now=int(time.time()))
    disp = world.device("us-cbp", "disp", ("dispatcher", "member"))
    officer = world.device("ca-rcmp", "officer", ("member",))
    bundle = world.commit(disp, [(disp, "dispatcher"), (officer, "member")], None)
    entered, release = threading.Event(), threading.Event()
    real = CommitBundle.decode

    def slow_decode(data: bytes) -> CommitBundle:  # a verification that takes as long as we say
        entered.set()
        assert release.wait(10), "never released: the loop was blocked"
        return real(data)

    server = RelayServer(RelayCore(world.trust, MemoryStore(), NullAudit()), udp_port=None)
    await server.start()
    try:
        d, o = await _login(server.port, disp), await _login(server.port, officer)
        monkeypatch.setattr(CommitBundle, "decode", staticmethod(slow_decode))
        text = p.b64(bundle.encode())
        d.send_text(p.control("commit", bundle=text, ch=bundle.commit.channel, epoch=1))
        loop = asyncio.get_running_loop()
        assert await asyncio.wait_for(loop.run_in_executor(None, entered.wait, 5), 6)
        o.send_text(p.control("ping"))  # verification is under way: the loop still answers
        assert (await o.receive_json(2))["t"] == "pong"
        release.set()
        got = await d.receive_json(10)
        while got["t"] != "commit-ok":
            got = await d.receive_json(10)
        assert got["ch"] == bundle.commit.channel
        d.close()
        o.close()
    finally:
        release.set()
        await server.stop()
