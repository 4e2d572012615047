"""The hostile-relay harness itself (issue 9 "Must show": the attacker rig), against the real
relay process and real endpoints that pin the relay's key: the proxy is transparent, and each
verb (drop, replay, hold and release, reorder, delay, duplicate, modify, inject) does what it
says, with what the endpoint does about it today."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import pytest

from bridge.endpoint import events as ev
from bridge.endpoint.core import MALFORMED_FROM_RELAY
from bridge.endpoint.endpoint import Endpoint
from bridge.wire import media as wm
from crypto.keys import VerifyKey
from tests.bridge.harness import RelayProcess, drain, next_event, until
from tests.rigs.hostile_relay import ATTACKER, HostileRelay
from tests.security.pinned import endpoint_via
from tests.security.policies import (
    Chain,
    Delay,
    DropWhere,
    Duplicate,
    Hold,
    Message,
    Modify,
    Pred,
    Record,
    where,
)
from tests.security.wsframes import BINARY
from tests.world import World

CH = "harness-1"
DISPATCH, VESSEL = "us-cbp/dispatch-1", "ca-rcmp/vessel-1"
Pair = tuple[Endpoint, Endpoint]


@asynccontextmanager
async def pair(
    hr: HostileRelay,
    world: World,
    tmp: Path,
    key: VerifyKey,
    transport: Literal["udp", "ws"] = "udp",
) -> AsyncIterator[Pair]:
    """The dispatcher and the vessel through ``hr``, in channel CH; both stopped after."""
    eps: list[Endpoint] = []
    try:
        for name in (DISPATCH, VESSEL):
            eps.append(await endpoint_via(hr.url, world, world.devices[name], tmp, key, transport))
        disp, vessel = eps
        roster = [
            (world.devices[DISPATCH].cred, "dispatcher"),
            (world.devices[VESSEL].cred, "member"),
        ]
        await disp.commit(CH, roster, agreement=world.agreement, name="Harness")
        for ep in eps:
            await next_event(ep, ev.ChannelUpdated, timeout=10, channel=CH, epoch=1)
        yield disp, vessel
    finally:
        for ep in eps:
            await ep.stop()


async def talk(ep: Endpoint, frames: list[bytes]) -> None:
    assert await ep.start_burst(CH)
    for f in frames:
        ep.send_voice(CH, f)
        await asyncio.sleep(0.005)  # paced like speech, not a wait for a result
    await ep.end_burst(CH)


async def heard(ep: Endpoint, sender: str, n: int) -> tuple[list[bytes], ev.BurstSealed]:
    got = [(await next_event(ep, ev.Voice, timeout=10, sender=sender)).payload for _ in range(n)]
    return got, await next_event(ep, ev.BurstSealed, timeout=10, sender=sender)


def to_vessel_text(**more: object) -> Pred:
    return where(direction="down", t="deliver", kind="msg", device=VESSEL, **more)


FRAMES = [b"voice-%d" % i for i in range(10)]


@pytest.mark.parametrize("transport", ["udp", "ws"])
async def test_the_proxy_is_transparent(
    hostile: HostileRelay,
    pinned: tuple[RelayProcess, VerifyKey],
    world: World,
    tmp_path: Path,
    transport: Literal["udp", "ws"],
) -> None:
    """A talk burst and texts both ways pass end to end, the relay's key pinned; and they did
    go through the proxy (UDP through its port, media and texts in its records)."""
    if transport == "ws":
        hostile.fragment = 64  # and every forwarded message is re-fragmented, both ways
    async with pair(hostile, world, tmp_path, pinned[1], transport) as (disp, vessel):
        assert disp.link.relay_key is not None and vessel.link.relay_key is not None
        await talk(vessel, FRAMES)
        got, seal = await heard(disp, VESSEL, len(FRAMES))
        assert got == FRAMES and seal.verified and seal.frames == len(FRAMES)
        await disp.send_text(CH, "dispatch to vessel")
        assert (await next_event(vessel, ev.Message, timeout=10)).body == b"dispatch to vessel"
        await vessel.send_text(CH, "vessel to dispatch")
        assert (await next_event(disp, ev.Message, timeout=10)).body == b"vessel to dispatch"
        if transport == "udp":
            assert vessel.link.udp is not None and vessel.link.udp.transport is not None
            assert vessel.link.udp.transport.get_extra_info("peername")[1] == hostile.udp_port
            up = where(transport="udp", direction="up", opcode=wm.UDP_MEDIA, device=VESSEL)
            down = where(transport="udp", direction="down", opcode=wm.UDP_MEDIA_DOWN)
        else:
            up = where(transport="ws", direction="up", opcode=BINARY, device=VESSEL)
            down = where(transport="ws", direction="down", opcode=BINARY, device=DISPATCH)
        # the frames, and the talker's in-band checkpoint(s): one per 200 ms and a final one
        n_up = len([m for m in hostile.seen if up(m)])
        assert len(FRAMES) + 1 <= n_up <= len(FRAMES) + 2
        assert len([m for m in hostile.seen if down(m) and m.device == DISPATCH]) == n_up
        texts = [m for m in hostile.seen if where(t="deliver", kind="msg")(m)]
        assert {m.device for m in texts} == {DISPATCH, VESSEL}
    assert hostile.errors == [] and {m.device for m in hostile.seen} >= {DISPATCH, VESSEL}


async def test_drop_a_text(
    hostile: HostileRelay, pinned: tuple[RelayProcess, VerifyKey], world: World, tmp_path: Path
) -> None:
    """A dropped delivery never reaches the vessel, and nothing notices: the vessel's ack of
    the next one is cumulative at the relay (the store forgets every seq up to it), so the
    dropped text is not offered again after a reconnect either. Lost: 1 of 1, undetected."""
    drop = DropWhere(to_vessel_text(), limit=1)
    hostile.policy = drop
    async with pair(hostile, world, tmp_path, pinned[1]) as (disp, vessel):
        await disp.send_text(CH, "one")
        await disp.send_text(CH, "two")
        assert (await next_event(vessel, ev.Message, timeout=10)).body == b"two"
        assert len(drop.dropped) == 1 and not any(isinstance(e, ev.Message) for e in drain(vessel))
        await vessel.link.drop()  # a new connection: the relay offers what was never acked
        await next_event(vessel, ev.Disconnected, timeout=10)
        await next_event(vessel, ev.Connected, timeout=15)
        await disp.send_text(CH, "three")  # a barrier: redeliveries come before new messages
        assert (await next_event(vessel, ev.Message, timeout=10)).body == b"three"
        assert vessel.stats["messages_received"] == 2 and vessel.stats["malformed_from_relay"] == 0


async def test_replay_a_text(
    hostile: HostileRelay, pinned: tuple[RelayProcess, VerifyKey], world: World, tmp_path: Path
) -> None:
    """The same delivery replayed verbatim: the vessel acknowledges it again and shows it once
    (it remembers the delivery's id)."""
    rec = Record(to_vessel_text())
    hostile.policy = rec
    async with pair(hostile, world, tmp_path, pinned[1]) as (disp, vessel):
        await disp.send_text(CH, "hold position")
        assert (await next_event(vessel, ev.Message, timeout=10)).body == b"hold position"
        seq = rec.messages[0].control["seq"]  # type: ignore[index]
        acked = where(direction="up", t="ack", seq=seq, device=VESSEL)
        await hostile.wait_for(acked)
        assert rec.replay() == 1
        await hostile.wait_for(acked, count=2)  # the vessel has handled the replay
        assert not any(isinstance(e, ev.Message) for e in drain(vessel))
        assert vessel.stats["messages_received"] == 1


async def test_replay_a_text_under_a_new_outer_id(
    hostile: HostileRelay, pinned: tuple[RelayProcess, VerifyKey], world: World, tmp_path: Path
) -> None:
    """The delivery replayed with a delivery id and seq of the relay's choosing, in the same
    session: the frame's SFrame counter was seen, so it is refused as undecryptable."""
    rec = Record(to_vessel_text())
    hostile.policy = rec
    async with pair(hostile, world, tmp_path, pinned[1]) as (disp, vessel):
        await disp.send_text(CH, "hold position")
        assert (await next_event(vessel, ev.Message, timeout=10)).body == b"hold position"
        seq = rec.messages[0].control["seq"]  # type: ignore[index]
        rec.replay(change=lambda m: m.with_control(id="relay-chose-this"))
        await next_event(vessel, ev.Error, timeout=10, code="undecryptable")
        await hostile.wait_for(where(direction="up", t="ack", seq=seq), count=2)
        assert not any(isinstance(e, ev.Message) for e in drain(vessel))
        assert vessel.stats["messages_undecryptable"] == 1


async def test_replay_a_text_after_the_listener_restarts(
    hostile: HostileRelay, pinned: tuple[RelayProcess, VerifyKey], world: World, tmp_path: Path
) -> None:
    """Issue 9 fault 3 through the harness: the vessel restarts (same state file), and the
    relay replays an old delivery under a new id. Shown once: on the code before the fix the
    replay window was not persisted and de-duplication used the relay's id, so the old text
    came back as new."""
    rec = Record(to_vessel_text())
    hostile.policy = rec
    async with pair(hostile, world, tmp_path, pinned[1]) as (disp, vessel):
        await disp.send_text(CH, "hold position")
        assert (await next_event(vessel, ev.Message, timeout=10)).body == b"hold position"
        seq = rec.messages[0].control["seq"]  # type: ignore[index]
        acked = where(direction="up", t="ack", seq=seq, device=VESSEL)
        await hostile.wait_for(acked)
        await vessel.stop()
        again = await endpoint_via(hostile.url, world, world.devices[VESSEL], tmp_path, pinned[1])
        try:
            assert CH in again.channels  # membership came back from the state file
            replay = rec.messages[0].with_control(id="relay-chose-this")
            hostile.inject_ws("down", replay, device=VESSEL)
            await hostile.wait_for(acked, count=2)  # the restarted vessel handled it
            shown = [e for e in drain(again) if isinstance(e, ev.Message)]
            assert shown == [] and again.stats["messages_received"] == 0
        finally:
            await again.stop()


async def test_hold_then_release_in_reverse(
    hostile: HostileRelay, pinned: tuple[RelayProcess, VerifyKey], world: World, tmp_path: Path
) -> None:
    """Three deliveries held: nothing reaches the vessel; released in reverse order, the vessel
    shows all three in the order they now arrive (c, b, a)."""
    hold = Hold(to_vessel_text(), limit=3)
    hostile.policy = hold
    async with pair(hostile, world, tmp_path, pinned[1]) as (disp, vessel):
        for body in ("a", "b", "c"):
            await disp.send_text(CH, body)  # accepted by the relay: stored for the vessel
        await hostile.wait_for(to_vessel_text(), count=3)
        assert len(hold.held) == 3 and not [m for m in hostile.sent if to_vessel_text()(m)]
        assert hold.release(reverse=True) == 3
        got = [(await next_event(vessel, ev.Message, timeout=10)).body for _ in range(3)]
        assert got == [b"c", b"b", b"a"]


async def test_delay_a_text(
    hostile: HostileRelay, pinned: tuple[RelayProcess, VerifyKey], world: World, tmp_path: Path
) -> None:
    hostile.policy = Delay(0.3, to_vessel_text())
    async with pair(hostile, world, tmp_path, pinned[1]) as (disp, vessel):
        await disp.send_text(CH, "late")
        assert (await next_event(vessel, ev.Message, timeout=10)).body == b"late"
        seen = (await hostile.wait_for(to_vessel_text()))[0]
        sent = (await hostile.wait_for(to_vessel_text(), log="sent"))[0]
        assert sent.at - seen.at >= 0.3


async def test_duplicate_voice_and_modify_a_text(
    hostile: HostileRelay, pinned: tuple[RelayProcess, VerifyKey], world: World, tmp_path: Path
) -> None:
    """Every upstream voice datagram sent twice: the listener plays each frame once (SFrame's
    replay window) and the seal still verifies. A delivery with one ciphertext byte changed:
    refused as undecryptable."""

    def flip(m: Message) -> Message:
        body = bytearray(base64.b64decode(m.control["body"]))  # type: ignore[index]
        body[-1] ^= 1
        return m.with_control(body=base64.b64encode(bytes(body)).decode())

    modify = Modify(to_vessel_text(), flip)
    media = where(transport="udp", direction="up", opcode=wm.UDP_MEDIA, device=VESSEL)
    hostile.policy = Chain(Duplicate(media), modify)
    async with pair(hostile, world, tmp_path, pinned[1]) as (disp, vessel):
        await talk(vessel, FRAMES)
        got, seal = await heard(disp, VESSEL, len(FRAMES))
        assert got == FRAMES and seal.verified and seal.received == len(FRAMES)
        doubled = len([m for m in hostile.sent if media(m)])  # frames and checkpoints, twice
        assert doubled % 2 == 0 and 2 * (len(FRAMES) + 1) <= doubled <= 2 * (len(FRAMES) + 2)
        assert not any(isinstance(e, ev.Voice) for e in drain(disp))
        await disp.send_text(CH, "tampered")
        await next_event(vessel, ev.Error, timeout=10, code="undecryptable")
        assert modify.changed == 1 and vessel.stats["messages_undecryptable"] == 1


async def test_inject_garbage(
    hostile: HostileRelay, pinned: tuple[RelayProcess, VerifyKey], world: World, tmp_path: Path
) -> None:
    """A control message that is not JSON and a datagram that is no relay datagram, injected
    as if from the relay: each counted as malformed; the connection stays up."""
    async with pair(hostile, world, tmp_path, pinned[1]) as (_disp, vessel):
        hostile.inject_ws("down", "not json {", device=VESSEL)
        await next_event(vessel, ev.Error, timeout=10, code=MALFORMED_FROM_RELAY)
        assert vessel.stats["malformed_from_relay"] == 1
        hostile.inject_udp("down", b"\x00garbage", device=VESSEL)
        await until(lambda: vessel.stats["malformed_media"] == 1, what="malformed_media == 1")
        await vessel.send_text(CH, "still here")  # the relay accepted it: the link is up
        assert vessel.reconnects == 0 and hostile.errors == []


async def test_a_register_replayed_from_the_attackers_address(
    hostile: HostileRelay, pinned: tuple[RelayProcess, VerifyKey], world: World, tmp_path: Path
) -> None:
    """The attacker socket (an address no endpoint uses) re-sends the vessel's captured UDP
    register, then the dispatcher talks: the vessel hears all 10 frames and the attacker's
    socket receives nothing (issue 9 fault 5; before it the vessel heard none)."""
    register = where(transport="udp", direction="up", opcode=wm.UDP_REGISTER, device=VESSEL)
    async with pair(hostile, world, tmp_path, pinned[1]) as (disp, vessel):
        captured = (await hostile.wait_for(register))[-1]
        sent = hostile.inject_udp("up", captured.payload, attacker=True)
        assert sent.device == ATTACKER and sent.origin == "inject"
        await talk(disp, FRAMES)
        got, seal = await heard(vessel, DISPATCH, len(FRAMES))
        assert got == FRAMES and seal.verified
        assert [m for m in hostile.seen if m.device == ATTACKER] == []
