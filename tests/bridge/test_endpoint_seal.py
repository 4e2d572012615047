"""Burst-seal verification at a listening endpoint, whatever the arrival order: voice (UDP) can
overtake the floor grant (WebSocket), and the seal (message path) can overtake the last frames."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bridge.endpoint import events as ev
from bridge.endpoint.endpoint import Endpoint
from crypto.messages import BurstHasher, BurstSeal
from crypto.sframe import decode_header
from tests.world import make_world


async def test_seal_verified_despite_reordering_and_an_early_seal(tmp_path: Path) -> None:
    w = make_world(now=int(time.time()))
    disp = w.device("us-cbp", "disp", ("dispatcher", "member"))
    talker = w.device("ca-rcmp", "vessel", ("member",))
    bundle = w.commit(disp, [(disp, "dispatcher"), (talker, "member")], None)
    ep = Endpoint(disp.cred, disp.keys, w.trust, "ws://127.0.0.1:9/ws", str(tmp_path / "d.db"))
    try:
        ep._apply_commit(bundle, time.time())
        ep._set_channel_no("inc-1", 7)
        tx = w.member(talker)
        tx.process_commit(bundle, time.time())
        frames = [tx.protect(b"frame-%d" % i) for i in range(5)]
        sent = BurstHasher()
        for f in frames:
            sent.add(f, decode_header(f)[1])
        _, seal_frame = tx.seal_burst(
            BurstSeal(
                "inc-1",
                1,
                talker.id,
                "b1",
                sent.count,
                sent.first_ctr or 0,
                sent.last_ctr or 0,
                sent.digest(),
            )
        )
        ep.on_media(7, frames[1])  # out of order, and before the floor grant is known
        ep.on_media(7, frames[0])
        ep._on_floor({"ch": "inc-1", "event": "granted", "device": talker.id, "priority": "normal"})
        ep.on_media(7, frames[2])
        ep.on_media(7, frames[3])
        ep._on_data("inc-1", "seal-1", seal_frame, time.time())  # the seal overtakes frame 4
        assert not [e for e in _drain(ep) if isinstance(e, ev.BurstSealed)]
        ep.on_media(7, frames[4])
        (sealed,) = [e for e in _drain(ep) if isinstance(e, ev.BurstSealed)]
        assert sealed.verified and sealed.received == 5 and sealed.sender == talker.id
        # A burst whose frame never arrives is reported, after a short wait, as unverified.
        more = [tx.protect(b"more-%d" % i) for i in range(3)]
        h = BurstHasher()
        for f in more:
            h.add(f, decode_header(f)[1])
        _, seal2 = tx.seal_burst(
            BurstSeal(
                "inc-1", 1, talker.id, "b2", h.count, h.first_ctr or 0, h.last_ctr or 0, h.digest()
            )
        )
        ep.on_media(7, more[0])
        ep.on_media(7, more[2])
        ep._on_data("inc-1", "seal-2", seal2, time.time())
        await asyncio.sleep(0.7)
        (late,) = [e for e in _drain(ep) if isinstance(e, ev.BurstSealed)]
        assert not late.verified and late.received == 2 and late.frames == 3
    finally:
        ep.state.close()


def _drain(ep: Endpoint) -> list[ev.Event]:
    out = []
    while not ep.events.empty():
        out.append(ep.events.get_nowait())
    return out
