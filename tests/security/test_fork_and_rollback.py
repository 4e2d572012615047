"""Fault 2 (and fault 7's alarm) through the real relay and the hostile-relay harness: a relay
that withholds a commit, forks a channel's history, replays an old commit as a join, goes
silent, or drops a signed emergency is detected, and the user is told by an event.

The world here starts two hours ago (credentials and agreement valid since), so the test can
hold a genuine commit issued then: what a relay operator could have recorded and replays."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bridge.endpoint import events as ev
from bridge.endpoint.confirmations import STALE_EPOCH, StaleEpochError
from bridge.endpoint.emergency_watch import SIGNED_BOUND
from bridge.endpoint.endpoint import Endpoint
from bridge.endpoint.freshness import CONFIRM_BOUND, MAX_EPOCH_AGE
from bridge.wire import control as p
from crypto.channel import CommitBundle, create_commit
from crypto.identity import Credential
from crypto.keys import VerifyKey
from tests.bridge.harness import RelayProcess, drain, next_event
from tests.rigs.hostile_relay import HostileRelay
from tests.security.pinned import endpoint_via
from tests.security.policies import Chain, DropWhere, Forward, Message, Modify, where
from tests.world import World, make_world

CH = "fork-1"
DISPATCH, VESSEL, OFFICER = "us-cbp/dispatch-1", "ca-rcmp/vessel-1", "us-cbp/officer-1"
AGE = 7200  # s: how old the world (and the replayed commit) is


@pytest.fixture
def world() -> World:
    w = make_world(now=int(time.time()) - AGE)
    w.device("us-cbp", "dispatch-1", ("dispatcher", "member"))
    w.device("ca-rcmp", "vessel-1", ("member",))
    w.device("us-cbp", "officer-1", ("member",))
    return w


def roster(world: World, *names: str) -> list[tuple[Credential, str]]:
    return [(world.devices[n].cred, "dispatcher" if n == DISPATCH else "member") for n in names]


@asynccontextmanager
async def endpoints(
    hr: HostileRelay, world: World, tmp: Path, key: VerifyKey, *names: str
) -> AsyncIterator[list[Endpoint]]:
    eps: list[Endpoint] = []
    try:
        for name in names:
            eps.append(await endpoint_via(hr.url, world, world.devices[name], tmp, key))
        yield eps
    finally:
        for ep in eps:
            await ep.stop()


async def channel(disp: Endpoint, world: World, others: list[Endpoint], *names: str) -> None:
    await disp.commit(CH, roster(world, *names), agreement=world.agreement, name="Fork")
    for ep in others:
        await next_event(ep, ev.ChannelUpdated, timeout=10, channel=CH, epoch=1)


async def alarm_of(ep: Endpoint, kind: str, timeout: float) -> ev.FreshnessAlarm:
    """The next FreshnessAlarm of ``kind`` within ``timeout`` (others are skipped)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        e = await next_event(ep, ev.FreshnessAlarm, timeout=max(0.0, left))
        if e.kind == kind:
            return e  # type: ignore[no-any-return]


def commits_to(*devices: str) -> DropWhere:
    return DropWhere(
        lambda m: where(direction="down", t="deliver", kind="commit")(m) and m.device in devices
    )


class Leak:
    """The relay operator's aim: copy every text the vessel sends to the removed officer (the
    real relay no longer would), as a delivery the officer's old epoch key opens."""

    def __init__(self, hr: HostileRelay) -> None:
        self.hr, self.leaked = hr, 0

    def __call__(self, msg: Message, forward: Forward) -> None:
        forward(msg)
        c = msg.control
        if c is not None and where(direction="up", t="msg", device=VESSEL)(msg):
            self.leaked += 1
            seq = 1_000_000 + self.leaked
            out = p.control(
                "deliver", seq=seq, kind="msg", ch=CH, id=f"{VESSEL}/{c['id']}", body=c["frame"]
            )
            self.hr.inject_ws("down", out, device=OFFICER)


async def test_a_withheld_removal_is_noticed_and_the_removed_device_reads_nothing(
    hostile: HostileRelay, pinned: tuple[RelayProcess, VerifyKey], world: World, tmp_path: Path
) -> None:
    """The dispatcher removes the officer (epoch 2); the relay withholds that commit from the
    vessel and the officer, and would pass whatever the vessel sends on epoch 1 to the
    officer. The dispatcher's signed confirmation tells the vessel within the bound; it then
    sends nothing on epoch 1, so the officer reads nothing."""
    async with endpoints(hostile, world, tmp_path, pinned[1], DISPATCH, VESSEL, OFFICER) as eps:
        disp, vessel, officer = eps
        await channel(disp, world, [vessel, officer], DISPATCH, VESSEL, OFFICER)
        withhold, leak = commits_to(VESSEL, OFFICER), Leak(hostile)
        hostile.policy = Chain(withhold, leak)
        t0 = asyncio.get_running_loop().time()
        c2 = await disp.commit(CH, roster(world, DISPATCH, VESSEL))
        assert c2.epoch == 2 and len(withhold.dropped) == 2
        alarm = await alarm_of(vessel, "behind", CONFIRM_BOUND)
        noticed = asyncio.get_running_loop().time() - t0
        assert alarm.channel == CH and alarm.epoch == 1 and alarm.evidence[0].epoch == 2
        assert alarm.evidence[0].device == DISPATCH
        assert noticed <= CONFIRM_BOUND, noticed
        with pytest.raises(StaleEpochError):
            await vessel.send_text(CH, "for the dispatcher only")
        with pytest.raises(StaleEpochError):
            vessel.send_voice(CH, b"voice for the dispatcher only")
        await next_event(vessel, ev.Error, timeout=5, code=STALE_EPOCH)  # the user is told
        ups = [m for m in hostile.seen if where(direction="up", t="msg", device=VESSEL)(m)]
        assert ups == [] and leak.leaked == 0
        assert not [e for e in drain(officer) if isinstance(e, ev.Message | ev.Voice)]
        # The relay lets the commit through (a reconnect: it was never acknowledged).
        hostile.policy = Chain(leak)
        await vessel.link.drop()
        await next_event(vessel, ev.ChannelUpdated, timeout=15, channel=CH, epoch=2)
        await vessel.send_text(CH, "on epoch 2")
        assert (await next_event(disp, ev.Message, timeout=10)).body == b"on epoch 2"
        assert leak.leaked == 1  # the operator copied it, but the officer holds no epoch 2 key
        assert not [e for e in drain(officer) if isinstance(e, ev.Message)]


def fork_of(world: World, disp: Endpoint) -> CommitBundle:
    """Another genuine epoch 2 on the dispatcher's epoch 1 (a second dispatcher console)."""
    previous = disp.core.last_commit(CH)
    assert previous is not None
    bundle, _ = create_commit(
        issuer=world.devices[DISPATCH].cred,
        issuer_keys=world.devices[DISPATCH].keys,
        channel=CH,
        name=previous.name,
        agreement=world.agreement,
        members=roster(world, DISPATCH, VESSEL),
        previous=previous,
        expires=previous.expires,
        now=int(time.time()),
    )
    return bundle


async def test_a_forked_history_raises_a_fork_alarm_at_both_members(
    hostile: HostileRelay, pinned: tuple[RelayProcess, VerifyKey], world: World, tmp_path: Path
) -> None:
    """The relay shows the vessel one epoch 2 and the dispatcher another."""
    async with endpoints(hostile, world, tmp_path, pinned[1], DISPATCH, VESSEL) as (disp, vessel):
        await channel(disp, world, [vessel], DISPATCH, VESSEL)
        other = fork_of(world, disp)
        body = base64.b64encode(other.encode()).decode()
        swap = Modify(
            where(direction="down", t="deliver", kind="commit", device=VESSEL),
            lambda m: m.with_control(body=body),
        )
        hostile.policy = swap
        t0 = asyncio.get_running_loop().time()
        mine = await disp.commit(CH, roster(world, DISPATCH, VESSEL))
        await next_event(vessel, ev.ChannelUpdated, timeout=10, channel=CH, epoch=2)
        assert swap.changed == 1 and vessel.core.last_commit(CH) == other.commit
        at_vessel = await alarm_of(vessel, "fork", CONFIRM_BOUND)
        at_disp = await alarm_of(disp, "fork", CONFIRM_BOUND)
        took = asyncio.get_running_loop().time() - t0
        assert at_vessel.channel == at_disp.channel == CH and took <= CONFIRM_BOUND, took
        seen = {(c.device, c.commit) for c in at_vessel.evidence + at_disp.evidence}
        assert seen == {(DISPATCH, mine.hash), (VESSEL, other.commit.hash)}  # both histories
        for c in at_vessel.evidence + at_disp.evidence:
            c.verify(world.devices[c.device].cred)


async def test_an_old_commit_replayed_as_a_join_is_refused(
    hostile: HostileRelay, pinned: tuple[RelayProcess, VerifyKey], world: World, tmp_path: Path
) -> None:
    """The vessel lost its state. The relay hands it, for its join, a genuine epoch 1 issued
    two hours ago that still lists the officer; the vessel refuses it and joins on the
    dispatcher's next (recent) commit."""
    disp_dev = world.devices[DISPATCH]
    members = roster(world, DISPATCH, VESSEL, OFFICER)
    old, _ = create_commit(
        issuer=disp_dev.cred,
        issuer_keys=disp_dev.keys,
        channel=CH,
        name="Fork",
        agreement=world.agreement,
        members=members,
        previous=None,
        expires=world.now + AGE + 3600,
        now=world.now,
    )
    assert time.time() - old.commit.issued_at > MAX_EPOCH_AGE
    body = base64.b64encode(old.encode()).decode()
    async with endpoints(hostile, world, tmp_path, pinned[1], DISPATCH, VESSEL) as (disp, vessel):
        replay = Modify(
            where(direction="down", t="deliver", kind="commit", device=VESSEL),
            lambda m: m.with_control(body=body),
        )
        hostile.policy = replay
        await disp.commit(CH, roster(world, DISPATCH, VESSEL), agreement=world.agreement)
        alarm = await alarm_of(vessel, "stale-join", 10)
        assert (alarm.channel, alarm.epoch) == (CH, 1) and replay.changed == 1
        assert CH not in vessel.channels
        assert not [e for e in drain(vessel) if isinstance(e, ev.ChannelUpdated)]
        hostile.policy = Chain()
        await disp.commit(CH, roster(world, DISPATCH, VESSEL))
        joined = await next_event(vessel, ev.ChannelUpdated, timeout=10, channel=CH)
        assert joined.epoch == 2 and OFFICER not in joined.roster


async def test_a_relay_withholding_every_confirmation_is_noticed(
    hostile: HostileRelay, pinned: tuple[RelayProcess, VerifyKey], world: World, tmp_path: Path
) -> None:
    hostile.policy = DropWhere(where(direction="down", t="confirm", device=VESSEL))
    async with endpoints(hostile, world, tmp_path, pinned[1], DISPATCH, VESSEL) as (disp, vessel):
        t0 = asyncio.get_running_loop().time()
        await channel(disp, world, [vessel], DISPATCH, VESSEL)
        alarm = await next_event(vessel, ev.FreshnessAlarm, timeout=CONFIRM_BOUND + 3)
        took = asyncio.get_running_loop().time() - t0
        assert (alarm.kind, alarm.channel) == ("silent", CH)
        assert CONFIRM_BOUND - 0.5 <= took <= CONFIRM_BOUND + 3, took
        assert not [e for e in drain(disp) if isinstance(e, ev.FreshnessAlarm)]  # it hears


async def test_a_dropped_signed_emergency_raises_an_alarm_within_the_bound(
    hostile: HostileRelay, pinned: tuple[RelayProcess, VerifyKey], world: World, tmp_path: Path
) -> None:
    """The relay shows the floor's emergency but drops the dispatcher's signed declaration."""
    hostile.policy = DropWhere(where(direction="down", t="deliver", kind="msg", device=VESSEL))
    async with endpoints(hostile, world, tmp_path, pinned[1], DISPATCH, VESSEL) as (disp, vessel):
        await channel(disp, world, [vessel], DISPATCH, VESSEL)
        assert await disp.request_floor(CH, "emergency") == "granted"
        claim = await next_event(vessel, ev.Emergency, timeout=10)
        t0 = asyncio.get_running_loop().time()
        assert (claim.active, claim.by, claim.source) == (True, DISPATCH, "relay")
        alarm = await next_event(vessel, ev.EmergencyUnsigned, timeout=SIGNED_BOUND + 3)
        took = asyncio.get_running_loop().time() - t0
        assert alarm == ev.EmergencyUnsigned(CH, DISPATCH, SIGNED_BOUND)
        assert SIGNED_BOUND - 0.5 <= took <= SIGNED_BOUND + 3, took
        assert vessel.core.signed_emergency == {}
        assert not [e for e in drain(disp) if isinstance(e, ev.EmergencyUnsigned)]  # its own
