"""Faults 2 and 5 end to end: real endpoints through the real relay process on loopback."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bridge.endpoint import events as ev
from bridge.endpoint.core import MALFORMED_CONTENT
from bridge.endpoint.endpoint import Endpoint
from crypto.agreement import RevocationList
from crypto.group import CONTEXT_DATA
from tests.bridge.harness import RelayProcess, endpoint, next_event
from tests.world import Device, World, make_world

CH = "shiprider-9"
DEEP = b"[" * 20_000 + b"]" * 20_000


@pytest.fixture
def world() -> World:
    w = make_world(now=int(time.time()))
    w.device("us-cbp", "disp", ("dispatcher", "member"))
    w.device("ca-rcmp", "boat", ("member",))
    w.device("us-cbp", "gw", ("member",))
    w.device("ca-rcmp", "x", ("member",))
    return w


@pytest.fixture
def relay(tmp_path: Path, world: World):  # type: ignore[no-untyped-def]
    r = RelayProcess(tmp_path, world)
    r.start()
    yield r
    r.stop()


def devs(w: World) -> tuple[Device, Device, Device, Device]:
    d = w.devices
    return d["us-cbp/disp"], d["ca-rcmp/boat"], d["us-cbp/gw"], d["ca-rcmp/x"]


async def until_message(ep: Endpoint, body: bytes, timeout: float = 10.0) -> list[ev.Event]:
    """Every event up to the message ``body`` (deadline: TimeoutError)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen: list[ev.Event] = []
    while True:
        e = await next_event(ep, object, deadline - loop.time())
        seen.append(e)
        if isinstance(e, ev.Message) and e.body == body:
            return seen


async def test_nested_json_from_a_member_disconnects_nobody(
    relay: RelayProcess, world: World, tmp_path: Path
) -> None:
    disp, boat, gw, _ = devs(world)
    eps = [await endpoint(relay, world, d, tmp_path) for d in (disp, boat, gw)]
    sender, listeners = eps[0], eps[1:]
    try:
        members = [(disp.cred, "dispatcher"), (boat.cred, "member"), (gw.cred, "member")]
        await sender.commit(CH, members, agreement=world.agreement)
        for ep in listeners:
            await next_event(ep, ev.ChannelUpdated, channel=CH, epoch=1)
        for i in range(8):  # 8 such messages took a channel offline for 32 s
            frame = sender.channels[CH].protect(DEEP, CONTEXT_DATA)
            await sender._post(CH, f"deep-{i}", frame, wait=True, timeout=5)
        await sender.send_text(CH, "after the nested ones")
        for ep in listeners:
            seen = await until_message(ep, b"after the nested ones")
            assert not [e for e in seen if isinstance(e, ev.Disconnected)]
            errors = [e.code for e in seen if isinstance(e, ev.Error)]
            assert errors.count(MALFORMED_CONTENT) == 8
            assert ep.stats["malformed_content"] == 8 and ep.reconnects == 0
            assert ep.connected.is_set()
    finally:
        for ep in eps:
            await ep.stop()


async def test_removed_device_re_added_after_another_commit_rejoins(
    relay: RelayProcess, world: World, tmp_path: Path
) -> None:
    disp, boat, gw, _ = devs(world)
    d = await endpoint(relay, world, disp, tmp_path)
    b = await endpoint(relay, world, boat, tmp_path)
    try:
        await d.commit(
            CH, [(disp.cred, "dispatcher"), (boat.cred, "member")], agreement=world.agreement
        )
        await next_event(b, ev.ChannelUpdated, channel=CH, epoch=1)
        await d.commit(CH, [(disp.cred, "dispatcher")])
        assert (await next_event(b, ev.ChannelUpdated, channel=CH, epoch=2)).removed
        await d.commit(CH, [(disp.cred, "dispatcher"), (gw.cred, "member")])  # not shown to boat
        await b.stop()  # and a restart while out
        b = await endpoint(relay, world, boat, tmp_path)
        await d.commit(CH, [(disp.cred, "dispatcher"), (boat.cred, "member")])
        back = await next_event(b, ev.ChannelUpdated, channel=CH, epoch=4)
        assert not back.removed
        await d.send_text(CH, "welcome back")
        assert (await next_event(b, ev.Message, sender=disp.id)).body == b"welcome back"
        await b.send_text(CH, "glad to be back")
        assert (await next_event(d, ev.Message, sender=boat.id)).body == b"glad to be back"
    finally:
        await d.stop()
        await b.stop()


async def test_member_that_refused_a_commit_catches_up_after_a_restart(
    relay: RelayProcess, world: World, tmp_path: Path
) -> None:
    disp, boat, _, x = devs(world)
    newer = {
        "ca-rcmp": RevocationList.create(world.roots["ca-rcmp"], 1, world.now, {x.cred.serial})
    }

    async def boat_endpoint() -> Endpoint:
        ep = Endpoint(
            boat.cred,
            boat.keys,
            world.trust,
            relay.url,
            str(tmp_path / "boat.db"),
            revocations=newer,
        )
        await ep.start()
        await ep.wait_connected(15)
        return ep

    d = await endpoint(relay, world, disp, tmp_path)
    b = await boat_endpoint()
    try:
        await d.commit(
            CH, [(disp.cred, "dispatcher"), (boat.cred, "member")], agreement=world.agreement
        )
        await next_event(b, ev.ChannelUpdated, channel=CH, epoch=1)
        await d.commit(CH, [(disp.cred, "dispatcher"), (boat.cred, "member"), (x.cred, "member")])
        assert (await next_event(b, ev.Error, code="revoked")).code == "revoked"
        await b.stop()
        b = await boat_endpoint()
        await d.commit(CH, [(disp.cred, "dispatcher"), (boat.cred, "member")])  # x dropped
        update = await next_event(b, ev.ChannelUpdated, channel=CH, epoch=3)
        assert x.id not in update.roster
        await d.send_text(CH, "x is out")
        assert (await next_event(b, ev.Message, sender=disp.id)).body == b"x is out"
    finally:
        await d.stop()
        await b.stop()
