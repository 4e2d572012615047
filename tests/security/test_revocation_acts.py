"""Revocation that acts (issue 10), live: the real relay, three endpoints on loopback, voice
flowing. A revocation list written by ``crossband keys revoke`` and published through the
relay cuts the revoked device off within :data:`~tests.security.revocation_rig.BOUND` seconds
(its old epoch key opens no frame sent after the cut), while the dispatcher keeps hearing the
vessel on the new epoch (:mod:`tests.security.revocation_rig` runs the scenario)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crypto.keys import VerifyKey
from tests.bridge.harness import RelayProcess
from tests.rigs.hostile_relay import HostileRelay
from tests.security.revocation_rig import BOUND, DISPATCH, VESSEL, revoke_world, run_cutoff
from tests.world import World


@pytest.fixture
def world() -> World:
    return revoke_world()


@pytest.mark.parametrize("publisher", [DISPATCH, VESSEL])
async def test_a_published_revocation_cuts_the_device_off_within_the_bound(
    hostile: HostileRelay,
    pinned: tuple[RelayProcess, VerifyKey],
    world: World,
    tmp_path: Path,
    publisher: str,
) -> None:
    """Published by the dispatcher (adopted on the relay's ``revocation-ok``) or by another
    member (the relay's push reaches the dispatcher)."""
    result = await run_cutoff(hostile.url, world, tmp_path, pinned[1], publisher)
    assert result.seconds <= BOUND, result
    assert result.before > 0 and result.after > 0
    assert result.dispatcher_heard >= 1  # the others stay on the air
    print(f"cut-off {result.seconds * 1000:.0f} ms ({publisher} published)")
