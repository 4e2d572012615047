"""Burst-seal verification at a listening endpoint, whatever the arrival order: voice (UDP) can
overtake the floor grant (WebSocket), and the seal (message path) can overtake the last frames.
Driven through :class:`~bridge.endpoint.core.EndpointCore` on a fake clock."""

from __future__ import annotations

from pathlib import Path

from bridge.endpoint import events as ev
from bridge.endpoint.seen import PRUNE_SLACK, SEEN_TTL
from bridge.endpoint.voice import SEAL_WAIT
from crypto.group import ChannelMember
from crypto.messages import BurstHasher, BurstSeal
from crypto.sframe import decode_header
from tests.bridge.endpoint.rig import CH, NO, Clock, Node, checkpoint_for
from tests.world import make_world


def sealed(tx: ChannelMember, sender: str, burst: str, frames: list[bytes]) -> bytes:
    h = BurstHasher()
    for f in frames:
        h.add(f, decode_header(f)[1])
    seal = BurstSeal(CH, 1, sender, burst, h.count, h.first_ctr or 0, h.last_ctr or 0, h.digest())
    return tx.seal_burst(seal)[1]


def test_seal_verified_despite_reordering_and_an_early_seal(tmp_path: Path) -> None:
    w = make_world()
    disp = w.device("us-cbp", "disp", ("dispatcher", "member"))
    talker = w.device("ca-rcmp", "vessel", ("member",))
    bundle = w.commit(disp, [(disp, "dispatcher"), (talker, "member")], None)
    clock = Clock(w.now + 5)
    node = Node(w, disp, tmp_path / "d.db", clock)
    try:
        node.commit(bundle)
        node.core.confirms.get_timer = lambda: None  # type: ignore[method-assign]  # not these rules
        tx = w.member(talker)
        tx.process_commit(bundle, w.now)
        frames = [tx.protect(b"frame-%d" % i) for i in range(5)]
        seal = sealed(tx, talker.id, "b1", frames)
        core = node.core
        core.receive_media(NO, frames[1], clock.advance(0.02))  # out of order, before the grant
        core.receive_media(NO, frames[0], clock.advance(0.02))
        node.relay("floor", ch=CH, event="granted", device=talker.id, priority="normal")
        core.receive_media(NO, frames[2], clock.advance(0.02))
        core.receive_media(NO, frames[3], clock.advance(0.02))
        seal_at = clock.now
        node.deliver("msg", seal, "seal")  # the seal overtakes frame 4
        node.pump()
        assert not node.take(ev.BurstSealed)
        core.receive_media(NO, frames[4], clock.advance(0.01))
        core.receive_media(NO, checkpoint_for(tx, frames), clock.now)  # the talker signs them
        node.pump()
        (done,) = node.take(ev.BurstSealed)
        assert done.verified and done.received == 5 and done.sender == talker.id
        assert len(node.take(ev.Voice)) == 5
        assert core.get_timer() == seal_at + SEEN_TTL + PRUNE_SLACK  # no seal wait: the id's end
        # A burst whose frame never arrives is reported, after SEAL_WAIT, as unverified.
        more = [tx.protect(b"more-%d" % i) for i in range(3)]
        core.receive_media(NO, more[0], clock.advance(0.02))
        core.receive_media(NO, more[2], clock.advance(0.02))
        node.deliver("msg", sealed(tx, talker.id, "b2", more), "seal")
        assert core.get_timer() == clock.now + SEAL_WAIT
        core.handle_timer(clock.advance(SEAL_WAIT - 0.01))
        node.pump()
        assert not node.take(ev.BurstSealed)
        core.handle_timer(clock.advance(0.01))
        node.pump()
        (late,) = node.take(ev.BurstSealed)
        assert not late.verified and late.received == 2 and late.frames == 3
    finally:
        node.close()


def test_a_seal_over_other_frames_is_not_verified(tmp_path: Path) -> None:
    w = make_world()
    disp = w.device("us-cbp", "disp", ("dispatcher", "member"))
    talker = w.device("ca-rcmp", "vessel", ("member",))
    bundle = w.commit(disp, [(disp, "dispatcher"), (talker, "member")], None)
    node = Node(w, disp, tmp_path / "d.db", Clock(w.now + 5))
    try:
        node.commit(bundle)
        node.core.confirms.get_timer = lambda: None  # type: ignore[method-assign]  # not these rules
        tx = w.member(talker)
        tx.process_commit(bundle, w.now)
        frames = [tx.protect(b"said-%d" % i) for i in range(3)]
        claimed = [frames[0], tx.protect(b"never sent"), frames[2]]
        for f in frames:
            node.core.receive_media(NO, f, node.clock.now)
        node.deliver("msg", sealed(tx, talker.id, "b3", claimed), "seal")
        (verdict,) = node.take(ev.BurstSealed)
        assert not verdict.verified
    finally:
        node.close()
