"""Fault 3 against the real relay process: a store that cannot write (the database locked by
another process) gets the sender a coded ``store-failed``, keeps its connection up, shows in
``/metrics`` and ``/healthz``, and the relay recovers when the store does."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from bridge.endpoint import events as ev
from bridge.errors import RelayError
from bridge.wire import control as p
from tests.bridge.harness import RelayProcess, endpoint, next_event
from tests.bridge.relay.net import http_get, parse_metrics
from tests.world import World, dispatch_and_vessel

CH = "inc-store"


@pytest.fixture
def world() -> World:
    return dispatch_and_vessel()


async def test_store_failure_is_a_coded_error_not_a_reconnect_storm(
    tmp_path: Path, world: World
) -> None:
    relay = RelayProcess(tmp_path, world)
    relay.start()
    disp = vessel = None
    lock = sqlite3.connect(relay.dir / "relay.db", isolation_level=None)
    try:
        disp = await endpoint(relay, world, world.devices["us-cbp/dispatch-1"], tmp_path)
        vessel = await endpoint(relay, world, world.devices["ca-rcmp/vessel-1"], tmp_path)
        roster = [(disp.cred, "dispatcher"), (vessel.cred, "member")]
        await disp.commit(CH, roster, agreement=world.agreement)
        await next_event(vessel, ev.ChannelUpdated, channel=CH)
        lock.execute("BEGIN EXCLUSIVE")  # nobody else can write until we roll back
        with pytest.raises(RelayError) as refused:
            await disp.send_text(CH, "while the store is down", timeout=20)
        assert refused.value.code == p.Codes.STORE_FAILED
        # Answered within its probe timeout (1 s) although the store is stuck, not after the
        # store's own 5 s busy wait: a deadline of 3 s that fails.
        status, body = await asyncio.to_thread(http_get, relay.port, "/healthz", 3)
        assert status == 503 and json.loads(body)["store"] == "failing"
        m = parse_metrics((await asyncio.to_thread(http_get, relay.port, "/metrics"))[1].decode())
        assert m["crossband_store_failures_total"] >= 1 and m["crossband_store_failing"] == 1
        assert disp.reconnects == 0 and vessel.reconnects == 0  # nobody's connection dropped
        lock.execute("ROLLBACK")
        status, body = await asyncio.to_thread(http_get, relay.port, "/healthz")
        assert status == 200 and json.loads(body)["ok"] is True
        await disp.send_text(CH, "after recovery", timeout=10)
        assert (await next_event(vessel, ev.Message, timeout=10)).body == b"after recovery"
        assert disp.reconnects == 0 and relay.running
    finally:
        lock.close()
        for ep in (disp, vessel):
            if ep is not None:
                await ep.stop()
        relay.stop()
