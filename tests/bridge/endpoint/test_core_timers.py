"""The endpoint core's timing rules, on a fake clock: the floor release waits UDP_TAIL after the
last UDP frame (it was a 60 ms sleep), and old epoch keys are erased when their timer fires."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.endpoint.voice import UDP_TAIL
from crypto.attribution import BOUND
from crypto.channel import CommitBundle
from tests.bridge.endpoint.rig import CH, NO, Clock, Node
from tests.world import Device, World, make_world


@pytest.fixture
def world() -> World:
    w = make_world()
    w.device("us-cbp", "disp", ("dispatcher", "member"))
    w.device("ca-rcmp", "boat", ("member",))
    return w


def talking_node(world: World, tmp_path: Path, transport: str) -> tuple[Node, CommitBundle]:
    disp, boat = world.devices["us-cbp/disp"], world.devices["ca-rcmp/boat"]
    e1 = world.commit(disp, [(disp, "dispatcher"), (boat, "member")], None)
    node = Node(world, boat, tmp_path / "boat.db", Clock(world.now + 5), transport=transport)
    node.commit(e1)
    node.core.confirms.get_timer = lambda: None  # type: ignore[method-assign]  # not these rules
    node.sent = []
    node.core.start_burst(CH)
    return node, e1


def sent(node: Node) -> list[dict[str, str]]:
    """What the core sent, but its commit confirmations (tests/bridge/endpoint/
    test_core_freshness.py): these tests are about the floor release and key erasure."""
    out = [json.loads(c) for c in node.core.data_to_send()]
    return [m for m in out if m["t"] != "confirm"]


def test_release_waits_for_the_udp_tail_then_goes_before_the_seal(
    world: World, tmp_path: Path
) -> None:
    node, _ = talking_node(world, tmp_path, "udp")
    clock, core = node.clock, node.core
    try:
        for _ in range(3):
            core.send_voice(CH, b"\x00" * 40, clock.now)
            clock.advance(0.02)
        assert [no for no, _ in core.media_to_send()] == [NO, NO, NO]
        last = clock.now - 0.02
        seal = core.end_burst(CH, clock.now)
        assert seal is not None and seal.frames == 3
        assert sent(node) == []  # nothing yet: the last frame is 20 ms old
        assert core.get_timer() == pytest.approx(last + UDP_TAIL)
        core.handle_timer(last + UDP_TAIL - 0.001)
        assert sent(node) == []
        core.handle_timer(last + UDP_TAIL)
        out = sent(node)
        assert [m["t"] for m in out] == ["floor-release", "msg"] and out[1]["id"] == seal.burst
        assert [a.key for a in core.answers()][-1] == ("released", CH)
        assert core.get_timer() is None
    finally:
        node.close()


def test_over_websocket_or_after_the_tail_the_release_goes_at_once(
    world: World, tmp_path: Path
) -> None:
    for transport, wait in (("ws", 0.0), ("udp", UDP_TAIL)):
        node, _ = talking_node(world, tmp_path / transport, transport)
        try:
            node.core.send_voice(CH, b"\x01" * 40, node.clock.now)
            node.core.end_burst(CH, node.clock.advance(wait))
            assert [m["t"] for m in sent(node)] == ["floor-release", "msg"]
        finally:
            node.close()


def test_a_new_floor_request_sends_the_held_release_first(world: World, tmp_path: Path) -> None:
    node, _ = talking_node(world, tmp_path, "udp")
    try:
        node.core.send_voice(CH, b"\x02" * 40, node.clock.now)
        node.core.end_burst(CH, node.clock.now)
        node.core.request_floor(CH, "normal")
        assert [m["t"] for m in sent(node)] == ["floor-release", "msg", "floor-request"]
        node.core.handle_timer(node.clock.advance(1.0))  # nothing left to fire
        assert sent(node) == []
    finally:
        node.close()


def test_a_clock_stepped_back_does_not_hold_the_release(world: World, tmp_path: Path) -> None:
    node, _ = talking_node(world, tmp_path, "udp")
    try:
        node.core.send_voice(CH, b"\x03" * 40, node.clock.now)
        node.core.end_burst(CH, node.clock.now)
        node.core.handle_timer(node.clock.now - 3600)  # NTP stepped the wall clock back
        assert [m["t"] for m in sent(node)] == ["floor-release", "msg"]
    finally:
        node.close()


def test_old_epoch_keys_are_erased_by_the_core_timer(world: World, tmp_path: Path) -> None:
    node, e1 = talking_node(world, tmp_path, "ws")
    disp: Device = world.devices["us-cbp/disp"]
    boat: Device = world.devices["ca-rcmp/boat"]
    tx = world.member(disp)
    tx.process_commit(e1, world.now)
    late = [tx.protect(b"in flight %d" % i) for i in range(2)]
    try:
        node.commit(world.commit(disp, [(disp, "dispatcher"), (boat, "member")], e1))
        at = node.core.get_timer()
        assert at is not None
        assert at == pytest.approx(node.clock.now + node.core.channels[CH].grace)
        node.core.handle_timer(at - 0.01)
        node.core.receive_media(NO, late[0], at - 0.01)  # still in its grace period
        assert node.core.stats["voice_decrypted"] == 1
        node.core.handle_timer(at)
        # What is left: the in-flight frame nobody has vouched for (no checkpoint came).
        assert node.core.get_timer() == pytest.approx(at - 0.01 + BOUND)
        node.core.receive_media(NO, late[1], at - 0.005)  # before the deadline, yet erased
        assert node.core.stats["voice_undecryptable"] == 1
    finally:
        node.close()
