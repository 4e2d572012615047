"""Three agencies, five devices, the real relay process on loopback (issue 3 "Must show")."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.request
from pathlib import Path

import pytest

from bridge.demo.memscan import process_memory
from bridge.endpoint import events as ev
from bridge.errors import RelayError
from bridge.wire import control as p
from crypto.agreement import RevocationList
from crypto.keys import Kem
from tests.bridge.harness import RelayProcess, drain, endpoint, next_event, quiet, until
from tests.world import World, make_world

CH = "shiprider-7"


@pytest.fixture
def world() -> World:
    w = make_world(now=int(time.time()))
    w.device("us-cbp", "dispatch-1", ("dispatcher", "member"), kind="console")
    w.device("us-cbp", "gw-blaine", ("member",), kind="radio-gateway")
    w.device("ca-rcmp", "vessel-1", ("member",), kind="vessel", kem=Kem.MLKEM768_X25519)
    w.device("ca-rcmp", "dispatch-2", ("dispatcher", "member"), kind="console")
    w.device("mx-gn", "c4", ("observer",), kind="console")
    return w


@pytest.fixture
def relay(tmp_path: Path, world: World):  # type: ignore[no-untyped-def]
    r = RelayProcess(tmp_path, world, max_talk_time=1.5)
    r.start()
    yield r
    r.stop()


def roster(world: World, *names: str) -> list:  # type: ignore[type-arg]
    roles = {
        "us-cbp/dispatch-1": "dispatcher",
        "ca-rcmp/dispatch-2": "dispatcher",
        "mx-gn/c4": "observer",
    }
    return [(world.devices[n].cred, roles.get(n, "member")) for n in names]


ALL = (
    "us-cbp/dispatch-1",
    "us-cbp/gw-blaine",
    "ca-rcmp/vessel-1",
    "ca-rcmp/dispatch-2",
    "mx-gn/c4",
)


async def open_all(relay: RelayProcess, world: World, tmp: Path, names=ALL):  # type: ignore[no-untyped-def]
    eps = {}
    for n in names:
        eps[n] = await endpoint(relay, world, world.devices[n], tmp)
    return eps


async def talk(ep, ch: str, frames: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    assert await ep.start_burst(ch)
    for f in frames:
        ep.send_voice(ch, f)
        await asyncio.sleep(0.005)
    await ep.end_burst(ch)


async def messages_until_barrier(sender, receiver, barrier: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Send ``barrier`` and return the texts ``receiver`` got before it arrived."""
    await sender.send_text(CH, barrier)
    before = []
    while (text := (await next_event(receiver, ev.Message, timeout=10)).body.decode()) != barrier:
        before.append(text)
    return before


def metrics(relay: RelayProcess) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{relay.port}/metrics", timeout=5).read()
    out = {}
    for line in text.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


async def test_trilateral_channel_voice_messages_observer_removal_revocation(
    relay: RelayProcess, world: World, tmp_path: Path
) -> None:
    eps = await open_all(relay, world, tmp_path)
    disp, gw, vessel, disp2, obs = (eps[n] for n in ALL)
    try:
        await disp.commit(CH, roster(world, *ALL), agreement=world.agreement, name="Shiprider 7")
        for ep in eps.values():
            await next_event(ep, ev.ChannelUpdated, channel=CH, epoch=1)
        # Voice from the Canadian vessel reaches every other member, the observer included.
        await talk(vessel, CH, [b"vessel-%d" % i for i in range(10)])
        for ep in (disp, gw, disp2, obs):
            got = [
                (await next_event(ep, ev.Voice, sender=vessel.device)).payload for _ in range(10)
            ]
            assert got == [b"vessel-%d" % i for i in range(10)]
            seal = await next_event(ep, ev.BurstSealed, sender=vessel.device)
            assert seal.verified and seal.frames == 10
        # ... and back from the US gateway to the vessel.
        await talk(gw, CH, [b"gw-%d" % i for i in range(5)])
        assert (await next_event(vessel, ev.Voice, sender=gw.device)).payload == b"gw-0"
        # Messages both ways, signed by their senders.
        await disp.send_text(CH, "US dispatch to vessel: hold position")
        m = await next_event(vessel, ev.Message, sender=disp.device)
        assert m.body == b"US dispatch to vessel: hold position"
        await vessel.send_text(CH, "vessel: holding")
        assert (await next_event(disp, ev.Message, sender=vessel.device)).body == b"vessel: holding"
        assert (await next_event(obs, ev.Message, sender=vessel.device)).body == b"vessel: holding"

        # The observer hears but cannot transmit: no floor, no messages, no voice.
        assert await obs.request_floor(CH) == "denied"
        member = obs.channels[CH]
        assert not member.may_send()
        fake = disp.channels[CH].protect(b"spoof", 1)  # a valid frame, but not the observer's
        with pytest.raises(RelayError) as e:
            await obs._post(CH, "obs-1", fake, wait=True, timeout=5)
        assert e.value.code == p.Codes.NOT_PERMITTED
        before = metrics(relay)["crossband_frames_dropped_total"]
        obs.link.udp.transport.sendto(
            p.udp_media_up(obs.link.udp_token, obs.link.udp_key, obs.channel_no[CH], fake)
        )
        dropped = "crossband_frames_dropped_total"
        await until(lambda: metrics(relay)[dropped] > before, what="the relay dropped the frame")
        assert metrics(relay)[dropped] == before + 1

        # Removing the gateway cuts it off from the next epoch.
        drain(gw)
        await disp.commit(CH, roster(world, *(n for n in ALL if n != gw.device)))
        update = await next_event(gw, ev.ChannelUpdated, channel=CH, epoch=2)
        assert update.removed
        await next_event(vessel, ev.ChannelUpdated, channel=CH, epoch=2)
        await talk(vessel, CH, [b"after-removal"])
        assert (await next_event(disp2, ev.Voice, sender=vessel.device)).payload == b"after-removal"
        # The removed gateway is in no channel that could carry a later barrier: watch a while.
        assert not [e for e in await quiet(gw, 0.3) if isinstance(e, ev.Voice | ev.Message)]

        # Revoking the gateway: the relay drops it and refuses it from then on.
        rl = RevocationList.create(
            world.roots["us-cbp"],
            1,
            int(time.time()),
            {world.devices["us-cbp/gw-blaine"].cred.serial},
        )
        assert await disp.publish_revocation(rl) == 1
        err = await next_event(gw, ev.Error, timeout=10, code=p.Codes.REVOKED)
        assert err.code == "revoked"
    finally:
        for ep in eps.values():
            await ep.stop()
    fresh = await endpoint_refused(relay, world, tmp_path / "again")
    assert fresh == p.Codes.REVOKED


async def endpoint_refused(relay: RelayProcess, world: World, tmp: Path) -> str:
    from bridge.endpoint.endpoint import Endpoint

    tmp.mkdir()
    d = world.devices["us-cbp/gw-blaine"]
    ep = Endpoint(d.cred, d.keys, world.trust, relay.url, str(tmp / "gw.db"))
    await ep.start()
    try:
        e = await next_event(ep, ev.Error, timeout=10)
        return str(e.code)
    finally:
        await ep.stop()


async def test_floor_priority_emergency_max_talk_time_late_entry(
    relay: RelayProcess, world: World, tmp_path: Path
) -> None:
    names = ALL[:4]
    eps = await open_all(relay, world, tmp_path, names)
    disp, gw, vessel, disp2 = (eps[n] for n in names)
    obs = None
    try:
        await disp.commit(CH, roster(world, *ALL), agreement=world.agreement)
        for ep in eps.values():
            await next_event(ep, ev.ChannelUpdated, channel=CH)
        assert await vessel.request_floor(CH, "normal") == "granted"
        assert await disp2.request_floor(CH, "normal") == "queued"
        # Higher priority preempts.
        assert await gw.request_floor(CH, "high") == "granted"
        revoked = await next_event(vessel, ev.FloorEvent, event="revoked")
        assert revoked.device == vessel.device and revoked.reason == "preempted"
        # Voice from the preempted talker is dropped at the relay.
        drain(disp)
        vessel.send_voice(CH, b"not my turn")
        gw.send_voice(CH, b"gw has the floor")
        assert (await next_event(disp, ev.Voice)).payload == b"gw has the floor"
        # Emergency preempts and puts the channel in a visible emergency state.
        assert await disp.request_floor(CH, "emergency") == "granted"
        for ep in (gw, vessel, disp2):
            e = await next_event(ep, ev.Emergency)
            assert e.active and e.by == disp.device
        # Late entry: the observer joins mid-burst and is told who talks, and of the emergency.
        obs = await endpoint(relay, world, world.devices["mx-gn/c4"], tmp_path)
        t = await next_event(obs, ev.TalkerChanged, reason="late-entry")
        assert t.talker == disp.device
        assert (await next_event(obs, ev.Emergency)).active
        # Releasing hands the floor to the queue; max talk time then revokes it.
        await disp.release_floor(CH)
        granted = await next_event(disp2, ev.FloorEvent, event="granted", device=disp2.device)
        assert granted.priority == "normal"
        cut = await next_event(disp2, ev.FloorEvent, timeout=5, event="revoked")
        assert cut.reason == "max-talk-time"
        await disp.clear_emergency(CH)
        assert not (await next_event(vessel, ev.Emergency)).active
    finally:
        for ep in [*eps.values(), *([obs] if obs else [])]:
            await ep.stop()


async def test_offline_member_catches_up_in_order_across_relay_kill9(
    relay: RelayProcess, world: World, tmp_path: Path
) -> None:
    disp = await endpoint(relay, world, world.devices["us-cbp/dispatch-1"], tmp_path)
    vessel = await endpoint(relay, world, world.devices["ca-rcmp/vessel-1"], tmp_path)
    try:
        await disp.commit(CH, roster(world, disp.device, vessel.device), agreement=world.agreement)
        await next_event(vessel, ev.ChannelUpdated, channel=CH)
        await vessel.stop()  # the vessel loses its link
        sent = [f"update {i}" for i in range(12)]
        for text in sent[:6]:
            await disp.send_text(CH, text)  # returns once the relay fsynced it
        relay.kill9()  # between acceptance and delivery
        relay.start()
        await disp.wait_connected(20)
        await until(
            lambda: disp.connected.is_set() and disp.link.ws is not None,
            timeout=10,
            what="the dispatcher's link is back",
        )
        for text in sent[6:]:
            await disp.send_text(CH, text)
        # The vessel comes back (same identity, same state file) and gets everything once, in order.
        vessel = await endpoint(relay, world, world.devices["ca-rcmp/vessel-1"], tmp_path)
        got = [(await next_event(vessel, ev.Message, timeout=10)).body.decode() for _ in sent]
        assert got == sent
        # Delivery is in order, so a later message is a barrier: nothing came twice before it.
        assert await messages_until_barrier(disp, vessel, "barrier 1") == []
        await vessel.stop()
        vessel = await endpoint(relay, world, world.devices["ca-rcmp/vessel-1"], tmp_path)
        assert await messages_until_barrier(disp, vessel, "barrier 2") == []  # acked: not again
        # Membership survived the restart: it can still talk on the channel.
        await vessel.send_text(CH, "back online")
        assert (await next_event(disp, ev.Message, sender=vessel.device)).body == b"back online"
    finally:
        await vessel.stop()
        await disp.stop()


async def test_relay_never_holds_plaintext(
    relay: RelayProcess, world: World, tmp_path: Path
) -> None:
    canary = b"CANARY-7f3a9c-plaintext-must-never-reach-the-relay"
    disp = await endpoint(relay, world, world.devices["us-cbp/dispatch-1"], tmp_path)
    vessel = await endpoint(
        relay, world, world.devices["ca-rcmp/vessel-1"], tmp_path, transport="ws"
    )
    gw_dev = world.devices["us-cbp/gw-blaine"]
    try:
        await disp.commit(
            CH, roster(world, disp.device, vessel.device, gw_dev.id), agreement=world.agreement
        )
        await next_event(vessel, ev.ChannelUpdated, channel=CH)
        await talk(disp, CH, [canary + b"-voice-%d" % i for i in range(20)])
        await disp.send_text(CH, canary + b"-text")  # gw is offline: stored at the relay
        await vessel.send_text(CH, canary + b"-from-vessel")
        assert (await next_event(vessel, ev.Voice)).payload.startswith(canary)
        assert (await next_event(disp, ev.Message)).body.startswith(canary)
        assert relay.proc is not None
        memory = process_memory(relay.proc.pid)
        assert len(memory) > 1_000_000
        forms = [canary, base64.b64encode(canary)[:40], canary.decode().encode("utf-16-le")]
        for form in forms:
            assert form not in memory
        # Check that the search works at all: the relay does hold the public device ids.
        assert disp.device.encode() in memory
    finally:
        await disp.stop()
        await vessel.stop()
    relay.stop()
    for path in relay.dir.iterdir():
        data = path.read_bytes()
        for form in forms:
            assert form not in data, f"plaintext found in {path.name}"
    assert (relay.dir / "relay.db").stat().st_size > 0
    # The search covered the real files: the audit log names the message event it logged.
    audit = [json.loads(line) for line in (relay.dir / "audit.log").read_text().splitlines()]
    assert "message" in {record["event"] for record in audit}


async def test_concurrent_commits_one_wins_the_other_rebases(
    relay: RelayProcess, world: World, tmp_path: Path
) -> None:
    names = ("us-cbp/dispatch-1", "ca-rcmp/dispatch-2", "ca-rcmp/vessel-1", "us-cbp/gw-blaine")
    eps = await open_all(relay, world, tmp_path, names)
    us, ca, vessel, gw = (eps[n] for n in names)
    try:
        await us.commit(CH, roster(world, *names[:3]), agreement=world.agreement)
        for ep in (ca, vessel):
            await next_event(ep, ev.ChannelUpdated, channel=CH, epoch=1)
        # Both dispatchers change the roster at the same moment, each from epoch 1.
        add_gw = roster(world, *names)
        drop_vessel = roster(world, names[0], names[1], names[3])
        first, second = await asyncio.gather(us.commit(CH, add_gw), ca.commit(CH, drop_vessel))
        assert sorted([first.epoch, second.epoch]) == [2, 3]
        last = max((first, second), key=lambda c: c.epoch)
        # Everyone still in the channel converges on the same verified head.
        for ep in (us, ca, gw):
            await next_event(ep, ev.ChannelUpdated, channel=CH, epoch=3, timeout=10)
            assert ep.channels[CH].last_commit.hash == last.hash
    finally:
        for ep in eps.values():
            await ep.stop()
