"""Fault 2 at the endpoint core, on a fake clock: a removed member can be re-added and rejoins,
and a member that refused one commit catches up when a valid one arrives — across restarts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from bridge.endpoint import events as ev
from crypto.agreement import RevocationList
from crypto.channel import CommitBundle
from crypto.group import ChannelMember
from tests.bridge.endpoint.rig import CH, Clock, Node
from tests.world import Device, World, make_world


@pytest.fixture
def world() -> World:
    w = make_world()
    w.device("us-cbp", "disp", ("dispatcher", "member"))
    w.device("ca-rcmp", "boat", ("member",))
    w.device("us-cbp", "gw", ("member",))
    w.device("ca-rcmp", "x", ("member",))
    return w


def devs(w: World) -> tuple[Device, Device, Device, Device]:
    d = w.devices
    return d["us-cbp/disp"], d["ca-rcmp/boat"], d["us-cbp/gw"], d["ca-rcmp/x"]


def talker(w: World, device: Device, *chain: CommitBundle) -> ChannelMember:
    m = w.member(device)
    m.process_commit(chain[0], w.now)
    for b in chain[1:]:
        m.install(m.prepare_commit(b, w.now), w.now)
    return m


def text(m: ChannelMember, body: bytes, msg_id: str = "t1") -> bytes:
    return m.sign_message(msg_id, "text", body, 1)[1]


def acked(node: Node) -> list[int]:
    return [m["seq"] for m in node.sent if m["t"] == "ack"]


def test_removed_member_re_added_epochs_later_rejoins_across_a_restart(
    world: World, tmp_path: Path
) -> None:
    disp, boat, gw, _ = devs(world)
    e1 = world.commit(disp, [(disp, "dispatcher"), (boat, "member")], None)
    e2 = world.commit(disp, [(disp, "dispatcher")], e1)  # boat removed: it is told (old roster)
    e3 = world.commit(disp, [(disp, "dispatcher"), (gw, "member")], e2)  # boat in neither roster
    e4 = world.commit(disp, [(disp, "dispatcher"), (boat, "member"), (gw, "member")], e3)
    node = Node(world, boat, tmp_path / "boat.db", Clock(world.now + 5))
    try:
        node.commit(e1)
        node.commit(e2)
        assert [u.removed for u in node.take(ev.ChannelUpdated)] == [False, True]
        node.restart()  # the removal survives a restart…
        assert node.take(ev.ChannelUpdated)[-1].removed
        node.commit(e4)  # …and so does the way back in: e3 was never ours to see
        (update,) = node.take(ev.ChannelUpdated)
        assert update.epoch == 4 and not update.removed and boat.id in update.roster
        assert not node.take(ev.Error)
        node.deliver("msg", text(talker(world, disp, e1, e2, e3, e4), b"welcome back"))
        (msg,) = node.take(ev.Message)
        assert msg.body == b"welcome back" and msg.sender == disp.id
        assert node.core.channels[CH].may_send()
        # An old commit replayed after all that changes nothing.
        node.commit(e1)
        assert node.core.channels[CH].epoch == 4 and acked(node)[-1] == node.seq
    finally:
        node.close()


def test_refused_commit_is_a_link_and_the_next_valid_commit_catches_up_after_restart(
    world: World, tmp_path: Path
) -> None:
    disp, boat, _, x = devs(world)
    newer = RevocationList.create(world.roots["ca-rcmp"], 1, world.now, {x.cred.serial})
    e1 = world.commit(disp, [(disp, "dispatcher"), (boat, "member")], None)
    e2 = world.commit(disp, [(disp, "dispatcher"), (boat, "member"), (x, "member")], e1)
    e3 = world.commit(disp, [(disp, "dispatcher"), (boat, "member")], e2)  # dispatcher caught up
    node = Node(
        world, boat, tmp_path / "boat.db", Clock(world.now + 5), revocations={"ca-rcmp": newer}
    )
    try:
        node.commit(e1)
        node.commit(e2)  # x is revoked in the list the boat holds, not in the dispatcher's
        assert [e.code for e in node.take(ev.Error)] == ["revoked"]
        assert [u.epoch for u in node.take(ev.ChannelUpdated)] == [1]
        assert acked(node) == [1, 2]
        member = node.core.channels[CH]
        assert member.epoch is None and not member.may_send()  # a link: no key for e2
        node.deliver("msg", text(talker(world, disp, e1, e2), b"for x too", "t2"))
        assert not node.take(ev.Message) and node.take(ev.Error)[0].code == "undecryptable"
        node.restart()  # the link is persisted as a link
        assert node.core.channels[CH].epoch is None
        node.commit(e3)
        (update,) = [u for u in node.take(ev.ChannelUpdated) if u.epoch == 3]
        assert not update.removed and x.id not in update.roster
        node.deliver("msg", text(talker(world, disp, e1, e2, e3), b"x is out", "t3"))
        (msg,) = node.take(ev.Message)
        assert msg.body == b"x is out" and node.core.channels[CH].may_send()
    finally:
        node.close()


def test_a_forged_commit_is_not_kept_as_a_link(world: World, tmp_path: Path) -> None:
    disp, boat, gw, _ = devs(world)
    e1 = world.commit(disp, [(disp, "dispatcher"), (boat, "member")], None)
    e2 = world.commit(disp, [(disp, "dispatcher"), (boat, "member"), (gw, "member")], e1)
    forged = replace(e2, commit=replace(e2.commit, signature=bytes(64)))
    by_member = world.commit(boat, [(boat, "member"), (disp, "dispatcher")], e1)
    node = Node(world, boat, tmp_path / "boat.db", Clock(world.now + 5))
    try:
        node.commit(e1)
        node.commit(forged)
        node.commit(by_member)  # authentic signature, but a member may not dispatch
        assert [e.code for e in node.take(ev.Error)] == ["bad-signature", "not-dispatcher"]
        assert node.core.channels[CH].epoch == 1  # neither moved the chain
        node.commit(e2)
        assert [u.epoch for u in node.take(ev.ChannelUpdated)] == [1, 2]
    finally:
        node.close()


def test_deliveries_behind_a_commit_wait_for_its_verification(world: World, tmp_path: Path) -> None:
    disp, boat, _, _ = devs(world)
    e1 = world.commit(disp, [(disp, "dispatcher"), (boat, "member")], None)
    node = Node(world, boat, tmp_path / "boat.db", Clock(world.now + 5))
    try:
        core, now = node.core, node.clock.now
        commit_msg = {"t": "deliver", "v": 1, "seq": 1, "kind": "commit", "ch": CH, "id": "c"}
        core.receive_control(json.dumps({**commit_msg, "body": _b64(e1.encode())}), now)
        frame = text(talker(world, disp, e1), b"first words")
        data_msg = {"t": "deliver", "v": 1, "seq": 2, "kind": "msg", "ch": CH, "id": "d"}
        core.receive_control(json.dumps({**data_msg, "body": _b64(frame)}), now)
        (job,) = core.jobs()
        assert core.data_to_send() == [] and not core.events_received()  # nothing acked yet
        core.job_done(job, job.run(), now)
        sent = [json.loads(c) for c in core.data_to_send()]
        assert [(m["t"], m["seq"]) for m in sent] == [("ack", 1), ("ack", 2)]
        got = core.events_received()
        assert [type(e) for e in got] == [ev.ChannelUpdated, ev.Message]
    finally:
        node.close()


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def test_a_substituted_secret_is_a_link_until_the_genuine_bundle_arrives(
    world: World, tmp_path: Path
) -> None:
    from crypto.channel import seal_info

    disp, boat, gw, _ = devs(world)
    e1 = world.commit(disp, [(disp, "dispatcher"), (boat, "member")], None)
    e2 = world.commit(disp, [(disp, "dispatcher"), (boat, "member"), (gw, "member")], e1)
    info = seal_info(e2.commit.channel, e2.commit.epoch, e2.commit.hash)
    evil = replace(e2, sealed={**e2.sealed, boat.id: boat.cred.hpke_key.seal(b"r" * 32, info)})
    node = Node(world, boat, tmp_path / "boat.db", Clock(world.now + 5))
    try:
        node.commit(e1)
        node.commit(evil)  # the relay sealed a secret of its own to us: caught, no key from it
        assert [e.code for e in node.take(ev.Error)] == ["key-confirmation"]
        assert node.core.channels[CH].epoch is None
        node.commit(e2)  # the same commit, genuine: it replaces the link
        assert [u.epoch for u in node.take(ev.ChannelUpdated)] == [1, 2]
        node.deliver("msg", text(talker(world, disp, e1, e2), b"genuine"))
        assert [m.body for m in node.take(ev.Message)] == [b"genuine"]
    finally:
        node.close()


def test_a_state_write_failure_acknowledges_nothing_and_asks_for_a_reconnect(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bridge.errors import StoreError
    from bridge.wire.codes import Code

    disp, boat, _, _ = devs(world)
    e1 = world.commit(disp, [(disp, "dispatcher"), (boat, "member")], None)
    node = Node(world, boat, tmp_path / "boat.db", Clock(world.now + 5))
    try:
        node.sent = []

        def disk_full(*_args: object) -> None:
            raise StoreError("endpoint state: disk full")

        monkeypatch.setattr(node.state, "save_commit", disk_full)
        node.commit(e1)
        node.deliver("msg", b"\x00" * 40)  # arrives while stalled: not acknowledged either
        assert [e.code for e in node.take(ev.Error)] == [Code.STORE_FAILED]
        assert acked(node) == [] and CH not in node.core.channels  # nothing changed
        assert node.core.take_reconnect_request() and not node.core.take_reconnect_request()
        monkeypatch.undo()  # the disk has room again; the relay redelivers after the reconnect
        node.core.receive_welcome({"channels": []}, node.clock.now)
        node.seq = 0
        node.commit(e1)
        assert [u.epoch for u in node.take(ev.ChannelUpdated)] == [1] and acked(node) == [1]
    finally:
        node.close()
