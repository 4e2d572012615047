"""Fixtures of the hostile-relay tests: a world valid now (a US dispatcher and a Canadian
vessel), the real relay process with a signing key (started and stopped by the test), and a
:class:`~tests.rigs.hostile_relay.HostileRelay` in front of it (stopped by the test)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from crypto.keys import VerifyKey
from tests.bridge.harness import RelayProcess
from tests.rigs.hostile_relay import HostileRelay
from tests.security.pinned import pinned_relay
from tests.world import World, dispatch_and_vessel


@pytest.fixture
def world() -> World:
    return dispatch_and_vessel()


@pytest.fixture
def pinned(tmp_path: Path, world: World) -> Iterator[tuple[RelayProcess, VerifyKey]]:
    relay, key = pinned_relay(tmp_path, world)
    relay.start()
    try:
        yield relay, key
    finally:
        relay.stop()


@pytest.fixture
async def hostile(pinned: tuple[RelayProcess, VerifyKey]) -> AsyncIterator[HostileRelay]:
    async with HostileRelay.around(pinned[0]) as hr:
        yield hr
