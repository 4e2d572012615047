"""Fault 7: caps on connections and on unauthenticated ones, an authentication deadline, and
cheap checks (size, role, channel) before a commit bundle is decoded."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from pathlib import Path

import pytest

from bridge.errors import ProtocolError
from bridge.relay.core import RelayCore
from bridge.relay.memory_store import MemoryStore
from bridge.relay.server import RelayServer
from bridge.relay.state import RelayConfig
from bridge.wire import control as p
from crypto.channel import CommitBundle
from tests.bridge.relay.helpers import NullAudit, commit_msg, login, run
from tests.bridge.relay.net import RawWebSocket, auth_msg
from tests.world import NOW, make_world


def test_connection_caps_refuse_with_overloaded() -> None:
    w = make_world()
    a = w.device("us-cbp", "disp", ("dispatcher", "member"))
    core = RelayCore(
        w.trust, MemoryStore(), NullAudit(), RelayConfig(max_connections=3, max_unauthenticated=2)
    )
    core.connect(NOW)
    core.connect(NOW)
    with pytest.raises(ProtocolError) as refused:  # a third idle connection
        core.connect(NOW)
    assert refused.value.code == p.Codes.OVERLOADED
    core.disconnect(1, NOW)
    login(core, a)  # authenticated sessions do not count against the unauthenticated cap
    core.connect(NOW)
    with pytest.raises(ProtocolError) as refused:  # three connections in all
        core.connect(NOW)
    assert refused.value.code == p.Codes.OVERLOADED
    assert core.metrics.c["connections_refused"] == 2


def test_authentication_deadline_on_the_core_timer() -> None:
    w = make_world()
    a = w.device("us-cbp", "disp", ("dispatcher", "member"))
    core = RelayCore(w.trust, MemoryStore(), NullAudit(), RelayConfig(auth_timeout=10.0))
    t0 = 1000.0  # monotonic; the wall clock is given separately
    idle, _ = core.connect(t0)
    core.connect(t0 + 5)
    sid_a, _ = login(core, a, now=t0, wall=NOW)
    run(core, core.handle_timer(t0, wall=NOW))  # the first store sweep
    assert core.next_timer() == t0 + 10.0
    assert run(core, core.handle_timer(t0 + 9.99, wall=NOW)) == []
    closed = run(core, core.handle_timer(t0 + 10.0, wall=NOW + 10))
    assert closed == [(idle, {"t": "closed", "code": p.Codes.AUTH_TIMEOUT})]
    assert core.next_timer() == t0 + 15.0  # the younger one's deadline
    assert sid_a in core.sessions and core.metrics.c["auth_timeouts"] == 1


def _garbage_commit(size: int, **hints: object) -> dict[str, object]:
    hints = {"ch": "inc-new", "epoch": 1, **hints}
    return {"t": "commit", "v": 1, "bundle": base64.b64encode(os.urandom(size)).decode(), **hints}


def test_commit_cheap_checks_come_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    w = make_world()
    a = w.device("us-cbp", "disp", ("dispatcher", "member"))
    v = w.device("ca-rcmp", "vessel", ("member",))
    core = RelayCore(w.trust, MemoryStore(), NullAudit())
    sa, sv = login(core, a)[0], login(core, v)[0]
    run(
        core,
        core.handle(sa, commit_msg(w.commit(a, [(a, "dispatcher"), (v, "member")], None)), NOW),
    )

    def no_decoding(data: bytes) -> object:
        raise AssertionError("decoded a bundle a cheap check should have refused")

    monkeypatch.setattr(CommitBundle, "decode", staticmethod(no_decoding))
    # Somebody who is no dispatcher: refused as a member would refuse it, without decoding.
    out = run(core, core.handle(sv, _garbage_commit(3_000_000), NOW))
    assert [(m["code"], m["detail"]) for _, m in out] == [
        (p.Codes.COMMIT_REFUSED, "not-dispatcher")
    ]
    # A dispatcher naming an epoch the channel already has: told to rebase, without decoding.
    out = run(core, core.handle(sa, _garbage_commit(3_000_000, ch="inc-1", epoch=1), NOW))
    assert [(m["code"], m["epoch"]) for _, m in out] == [(p.Codes.REBASE, 1)]
    # A dispatcher the channel's head does not list: only a member of the previous roster
    # may issue the next commit, so it is refused without decoding.
    other = w.device("us-cbp", "disp-2", ("dispatcher", "member"))
    so = login(core, other)[0]
    out = run(core, core.handle(so, _garbage_commit(3_000_000, ch="inc-1", epoch=2), NOW))
    assert [(m["code"], m["detail"], m["ch"]) for _, m in out] == [
        (p.Codes.COMMIT_REFUSED, "not-a-member", "inc-1")
    ]


def test_a_commit_must_name_its_channel_and_epoch() -> None:
    """Without ``ch``/``epoch`` the relay could not refuse before decoding: refused as
    malformed by the parser, before any bundle is looked at."""
    msg = _garbage_commit(1000)
    for missing in ("ch", "epoch"):
        text = p.control("commit", **{k: v for k, v in msg.items() if k not in ("t", "v", missing)})
        with pytest.raises(ProtocolError) as err:
            p.parse_control(text)
        assert err.value.code == p.Codes.MALFORMED and missing in err.value.detail
    text = p.control("commit", bundle=msg["bundle"], ch="inc-1", epoch=0)
    with pytest.raises(ProtocolError):
        p.parse_control(text)


def test_big_messages_are_charged_to_the_rate_limit_before_parsing() -> None:
    w = make_world()
    a = w.device("us-cbp", "disp", ("dispatcher", "member"))
    core = RelayCore(w.trust, MemoryStore(), NullAudit())
    sa = login(core, a)[0]
    refused = 0
    for _ in range(10):  # 10 x 3 MB within one instant: a flood, not a dispatcher at work
        try:
            core.admit(sa, 3_000_000, NOW)
        except ProtocolError as exc:
            assert exc.code == p.Codes.RATE_LIMITED
            refused += 1
    assert refused >= 5
    core.admit(sa, 1000, NOW)  # small messages cost nothing extra
    core.admit(sa, 3_000_000, NOW + 60)  # the bucket has refilled: no refusal


async def test_idle_connections_are_capped_and_time_out(tmp_path: Path) -> None:
    world = make_world(now=int(time.time()))
    d = world.device("us-cbp", "disp", ("dispatcher", "member"))
    config = RelayConfig(max_unauthenticated=3, auth_timeout=0.5)
    server = RelayServer(RelayCore(world.trust, MemoryStore(), NullAudit(), config), udp_port=None)
    await server.start()
    idle: list[RawWebSocket] = []
    try:
        for _ in range(3):
            ws = await RawWebSocket.connect("127.0.0.1", server.port)
            assert (await asyncio.wait_for(ws.receive_json(), 5))["t"] == "challenge"
            idle.append(ws)
        over = await RawWebSocket.connect("127.0.0.1", server.port)
        assert (await asyncio.wait_for(over.receive_json(), 5))["code"] == p.Codes.OVERLOADED
        assert await asyncio.wait_for(over.closed(), 5) == p.Codes.OVERLOADED
        # The idle ones are closed at the authentication deadline (the core's timer).
        reasons = await asyncio.wait_for(asyncio.gather(*(ws.closed() for ws in idle)), 5)
        assert reasons == [p.Codes.AUTH_TIMEOUT] * 3
        # Then a device that does authenticate gets in.
        ws = await RawWebSocket.connect("127.0.0.1", server.port)
        challenge = await asyncio.wait_for(ws.receive_json(), 5)
        ws.send_text(auth_msg(d, challenge))
        assert (await asyncio.wait_for(ws.receive_json(), 5))["t"] == "welcome"
        ws.close()
        assert server.core.metrics.c["auth_timeouts"] == 3
    finally:
        for ws in idle:
            ws.close()
        await server.stop()
