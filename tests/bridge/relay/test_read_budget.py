"""Fault 7, the flood's cost: a session over its control budget is not *read* until the
budget could take its message again, so a flood of 4 MB commits costs the relay its budget's
worth of reading and parsing, not everything the sender can push (TCP holds the rest)."""

from __future__ import annotations

import asyncio
import base64
import os
import time

import pytest

from bridge.errors import ProtocolError
from bridge.relay.core import MAX_READ_PAUSE, PENALTY, RelayCore
from bridge.relay.memory_store import MemoryStore
from bridge.relay.server import RelayServer
from bridge.relay.state import RelayConfig
from bridge.wire import control as p
from tests.bridge.relay.helpers import NullAudit, login
from tests.bridge.relay.net import RawWebSocket, auth_msg
from tests.world import NOW, Device, make_world

MB = 1_000_000  # 15 rate-limit tokens (one per 64 KiB)


def test_read_pause_lasts_until_the_budget_can_take_the_message() -> None:
    w = make_world()
    a = w.device("us-cbp", "disp", ("dispatcher", "member"))
    core = RelayCore(
        w.trust, MemoryStore(), NullAudit(), RelayConfig(control_rate=10.0, control_burst=20.0)
    )
    sid = login(core, a)[0]
    now = float(NOW) + 100  # past the login's own charge: a full bucket of 20
    core.admit(sid, MB, now)  # 15 tokens: 5 left
    with pytest.raises(ProtocolError) as err:
        core.admit(sid, MB, now)
    assert err.value.code == p.Codes.RATE_LIMITED
    pause = core.read_pause(sid, MB, now)
    assert pause == pytest.approx((16 - 5) / 10.0)  # 15 tokens for the size, one to handle it
    assert core.metrics.c["read_pauses"] == 1
    core.admit(sid, MB, now + pause)  # after the pause, it is taken
    # Bounded, whatever the size; nothing to wait for when the budget is there.
    assert 0 < core.read_pause(sid, 40 * MB, now + pause) <= MAX_READ_PAUSE
    assert core.read_pause(sid, 10, now + 60) == 0.0


def test_large_messages_from_a_non_dispatcher_are_refused_unparsed_with_the_longest_pause() -> None:
    """Once logged in, only commits are larger than MAX_SMALL_CONTROL, and only dispatchers
    send commits: an observer's 4 MB message is refused before it is parsed and its session
    is not read for MAX_READ_PAUSE (the old relay parsed each one first)."""
    w = make_world()
    o = w.device("mx-gn", "observer", ("observer",))
    core = RelayCore(w.trust, MemoryStore(), NullAudit())
    sid = login(core, o)[0]
    with pytest.raises(ProtocolError) as err:
        core.admit(sid, p.MAX_SMALL_CONTROL + 1, float(NOW))
    assert err.value.code == p.Codes.TOO_LARGE
    assert core.read_pause(sid, p.MAX_SMALL_CONTROL + 1, float(NOW)) == MAX_READ_PAUSE
    assert core.banned(sid, float(NOW))  # the driver ends the session...
    core.disconnect(sid, float(NOW))
    with pytest.raises(ProtocolError) as err:  # ...and the device may not come straight back
        login(core, o, now=float(NOW) + 1)
    assert err.value.code == p.Codes.TOO_LARGE and "log in again" in err.value.detail
    sid = login(core, o, now=float(NOW) + PENALTY)[0]  # after the penalty it may
    assert not core.banned(sid, float(NOW) + PENALTY)
    core.admit(sid, p.MAX_SMALL_CONTROL, float(NOW) + PENALTY)  # normal messages pass


async def test_a_flooding_observer_is_cut_off_after_one_message() -> None:
    """Fault 7's flood from a device in no channel that may never send commits: its first
    4 MB message ends its session (the old relay read ~100 of them a second)."""
    world = make_world(now=int(time.time()))
    observer = world.device("mx-gn", "observer", ("observer",))
    server = RelayServer(RelayCore(world.trust, MemoryStore(), NullAudit()), udp_port=None)
    await server.start()
    try:
        ws = await _login(server.port, observer)
        junk = "A" * (3 * MB)
        for _ in range(3):
            ws.send_text(p.control("commit", bundle=junk, ch="inc-9", epoch=1))
        assert (await ws.receive_json(5))["code"] == p.Codes.TOO_LARGE
        assert await ws.closed(5) == p.Codes.TOO_LARGE
        again = await RawWebSocket.connect("127.0.0.1", server.port)
        again.send_text(auth_msg(observer, await again.receive_json(5)))
        assert (await again.receive_json(5))["code"] == p.Codes.TOO_LARGE
        again.close()
    finally:
        await server.stop()


async def _login(port: int, d: Device) -> RawWebSocket:
    ws = await RawWebSocket.connect("127.0.0.1", port)
    challenge = await ws.receive_json(5)
    ws.send_text(auth_msg(d, challenge))
    assert (await ws.receive_json(5))["t"] == "welcome"
    return ws


async def _answers(ws: RawWebSocket, until: str) -> list[dict[str, object]]:
    got: list[dict[str, object]] = []
    while not got or got[-1].get("t") != until:
        got.append(await ws.receive_json(15))
    return got


async def test_a_flooding_session_is_read_no_faster_than_its_budget() -> None:
    world = make_world(now=int(time.time()))
    flooder = world.device("us-cbp", "flooder", ("dispatcher", "member"))
    bystander = world.device("us-cbp", "officer", ("member",))
    config = RelayConfig(control_rate=10.0, control_burst=20.0)
    server = RelayServer(RelayCore(world.trust, MemoryStore(), NullAudit(), config), udp_port=None)
    await server.start()
    try:
        fl, by = await _login(server.port, flooder), await _login(server.port, bystander)
        junk = base64.b64encode(os.urandom(MB * 3 // 4)).decode()
        started = asyncio.get_running_loop().time()
        for _ in range(4):  # taken, rate-limited (pause), taken, rate-limited (pause)
            fl.send_text(p.control("commit", bundle=junk, ch="inc-9", epoch=1))
        fl.send_text(p.control("ping"))
        # While the flooder is not read, everybody else is: the bystander's ping is answered.
        by.send_text(p.control("ping"))
        assert (await by.receive_json(2))["t"] == "pong"
        answers = await _answers(fl, "pong")
        took = asyncio.get_running_loop().time() - started
        codes = [m.get("code") for m in answers if m["t"] == "error"]
        assert codes.count(p.Codes.RATE_LIMITED) == 2, codes
        # Two pauses, ~(16 - 3) / 10 and (16 - 0) / 10 s: the old relay answered in ms.
        assert took >= 2.4, f"the flood was read in {took:.2f} s"
        assert server.core.metrics.c["read_pauses"] == 2
        fl.close()
        by.close()
    finally:
        await server.stop()


async def test_a_refusal_before_parsing_still_names_the_request() -> None:
    """A message refused by its size charge is below the large-message size: the refusal
    carries its ``rid``, so the sender's request fails at once instead of hanging until its
    timeout (a member sending texts of ~110 KB used to wait 5 s for nothing)."""
    world = make_world(now=int(time.time()))
    member = world.device("us-cbp", "officer", ("member",))
    config = RelayConfig(control_rate=10.0, control_burst=20.0)
    server = RelayServer(RelayCore(world.trust, MemoryStore(), NullAudit(), config), udp_port=None)
    await server.start()
    try:
        ws = await _login(server.port, member)
        body = "A" * 240_000  # 3 tokens for its size, one to handle it: 8 are over budget
        for i in range(8):
            ws.send_text(p.control("msg", ch="inc-9", id=f"m-{i}", frame=body, rid=f"r-{i}"))
        answers = [await ws.receive_json(15) for _ in range(8)]
        limited = [m for m in answers if m.get("code") == p.Codes.RATE_LIMITED]
        assert limited and all(m.get("rid", "").startswith("r-") for m in limited), answers
        ws.close()
    finally:
        await server.stop()
