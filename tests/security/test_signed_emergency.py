"""Attack 7 through the real relay and the hostile-relay harness: an emergency is believed only
as its declarer signed it. A relay that injects a fake emergency gets it shown as a relay claim
(``source="relay"``, unverified), and a relay that hides the floor's emergency messages does
not hide the signed declaration and clear."""

from __future__ import annotations

from pathlib import Path

from bridge.endpoint import events as ev
from bridge.wire import control as p
from crypto.keys import VerifyKey
from tests.bridge.harness import RelayProcess, drain, next_event
from tests.rigs.hostile_relay import HostileRelay
from tests.security.policies import DropWhere, where
from tests.security.test_harness import CH, DISPATCH, VESSEL, pair
from tests.world import World


async def test_an_injected_emergency_is_labelled_a_relay_claim(
    hostile: HostileRelay, pinned: tuple[RelayProcess, VerifyKey], world: World, tmp_path: Path
) -> None:
    async with pair(hostile, world, tmp_path, pinned[1]) as (_disp, vessel):
        fake = p.control("floor", ch=CH, event="emergency", device=DISPATCH, active=True)
        hostile.inject_ws("down", fake, device=VESSEL)
        e = await next_event(vessel, ev.Emergency, timeout=10)
        assert (e.active, e.by, e.source, e.verified) == (True, DISPATCH, "relay", False)
        assert vessel.emergency == {CH: True}  # the relay's claim, kept apart
        assert vessel.core.signed_emergency == {}  # nobody signed an emergency
        assert not [x for x in drain(vessel) if isinstance(x, ev.EmergencySigned)]


async def test_a_relay_hiding_the_emergency_does_not_hide_the_signed_one(
    hostile: HostileRelay, pinned: tuple[RelayProcess, VerifyKey], world: World, tmp_path: Path
) -> None:
    hostile.policy = DropWhere(where(direction="down", t="floor", device=VESSEL))
    async with pair(hostile, world, tmp_path, pinned[1]) as (disp, vessel):
        assert await disp.request_floor(CH, "emergency") == "granted"
        e = await next_event(vessel, ev.EmergencySigned, timeout=10)
        assert (e.active, e.by, e.source, e.verified) == (True, DISPATCH, "signed", True)
        await disp.release_floor(CH)
        await disp.clear_emergency(CH)
        e = await next_event(vessel, ev.EmergencySigned, timeout=10)
        assert (e.active, e.by, e.source, e.verified) == (False, DISPATCH, "signed", True)
        assert vessel.core.signed_emergency == {CH: None}
        assert not vessel.emergency.get(CH)  # the relay's emergency never reached the vessel
        assert not [x for x in drain(vessel) if isinstance(x, ev.Emergency)]
