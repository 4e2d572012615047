"""Full collections off the voice path: sessions that connect after start-up are frozen with
their batch (before, only what existed at start was, and every full collection walked every
later session: 30-400 ms pauses at 2,420 sessions); one full collection every THAW_AFTER
disconnects reclaims what froze with sessions that ended."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref

import pytest

from bridge.relay import collector as collector_mod
from bridge.relay.collector import FREEZE_DELAY, Collector
from bridge.relay.core import RelayCore
from bridge.relay.memory_store import MemoryStore
from bridge.relay.metrics import Metrics
from bridge.relay.server import RelayServer
from tests.bridge.relay.helpers import NullAudit
from tests.bridge.relay.net import RawWebSocket, auth_msg
from tests.world import make_world


def _tracked(obj: object) -> bool:
    """Is ``obj`` in a generation the collector walks (not frozen)?"""
    return any(o is obj for o in gc.get_objects())


async def test_sessions_that_log_in_later_are_frozen_with_their_batch() -> None:
    world = make_world(now=int(time.time()))
    d = world.device("us-cbp", "officer", ("member",))
    server = RelayServer(RelayCore(world.trust, MemoryStore(), NullAudit()), udp_port=None)
    await server.start()
    try:
        ws = await RawWebSocket.connect("127.0.0.1", server.port)
        ws.send_text(auth_msg(d, await ws.receive_json(5)))
        assert (await ws.receive_json(5))["t"] == "welcome"
        (session,) = [s for s in server.core.sessions.values() if s.device == d.id]
        assert _tracked(session)  # young: not frozen yet
        async with asyncio.timeout(FREEZE_DELAY + 5):
            while server.core.metrics.c["gc_freezes"] < 2:  # the start-up freeze, then this
                await asyncio.sleep(0.05)
        assert not _tracked(session)
        ws.close()
    finally:
        await server.stop()


async def test_one_full_collection_every_thaw_after_disconnects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(collector_mod, "THAW_AFTER", 3)
    metrics = Metrics()
    c = Collector(asyncio.get_running_loop(), metrics)
    c.start()

    class Cycle:
        me: object = None

    garbage = Cycle()
    garbage.me = garbage  # cyclic: only the collector can free it
    ref = weakref.ref(garbage)
    c.authenticated()
    async with asyncio.timeout(FREEZE_DELAY + 5):
        while metrics.c["gc_freezes"] < 2:
            await asyncio.sleep(0.05)
    assert not _tracked(garbage)
    del garbage
    c.disconnected()
    c.disconnected()
    gc.collect()
    assert ref() is not None  # frozen garbage outlives collections: the price of freezing
    c.disconnected()  # the third: unfreeze, collect, freeze again
    assert metrics.c["gc_freezes"] == 3
    assert ref() is None
    c.stop()
