"""The relay's sans-IO core driven directly: commit ordering, roles, routing, the parser."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import ProtocolError
from bridge.relay.core import RelayCore
from bridge.relay.memory_store import MemoryStore
from bridge.wire import control as p
from tests.bridge.relay.helpers import NullAudit, commit_msg, login, run
from tests.world import NOW, make_world


@pytest.fixture
def setup():  # type: ignore[no-untyped-def]
    w = make_world()
    a = w.device("us-cbp", "disp", ("dispatcher", "member"))
    b = w.device("ca-rcmp", "disp", ("dispatcher", "member"))
    v = w.device("ca-rcmp", "vessel", ("member",))
    o = w.device("mx-gn", "obs", ("observer",))
    core = RelayCore(w.trust, MemoryStore(), NullAudit())
    sids = {d.id: login(core, d)[0] for d in (a, b, v, o)}
    return w, (a, b, v, o), core, sids


def test_first_commit_for_an_epoch_wins_later_ones_rebase(setup) -> None:  # type: ignore[no-untyped-def]
    w, (a, b, v, o), core, sids = setup
    members = [(a, "dispatcher"), (b, "dispatcher"), (v, "member"), (o, "observer")]
    b1 = w.commit(a, members, None)
    sends = run(core, core.handle(sids[a.id], commit_msg(b1), NOW))
    assert any(m["t"] == "commit-ok" for _, m in sends)
    # Every member (online) is told the channel number and gets the commit delivered.
    delivered = {sid for sid, m in sends if m["t"] == "deliver" and m["kind"] == "commit"}
    assert delivered == set(sids.values())
    # Two dispatchers race for epoch 2: the first wins, the second is told to rebase.
    us = w.commit(a, members[:3], b1)
    ca = w.commit(b, members[1:], b1)
    assert any(
        m["t"] == "commit-ok" for _, m in run(core, core.handle(sids[a.id], commit_msg(us), NOW))
    )
    late = run(core, core.handle(sids[b.id], commit_msg(ca), NOW))
    assert [m["code"] for _, m in late] == [p.Codes.REBASE] and late[0][1]["epoch"] == 2
    assert core.channels["inc-1"].head.epoch == 2


def test_commit_refused_from_non_dispatcher_and_for_another_issuer(setup) -> None:  # type: ignore[no-untyped-def]
    w, (a, b, v, o), core, sids = setup
    bad = w.commit(v, [(v, "member")], None)
    out = run(core, core.handle(sids[v.id], commit_msg(bad), NOW))
    assert out[0][1]["code"] == p.Codes.COMMIT_REFUSED and out[0][1]["detail"] == "not-dispatcher"
    good = w.commit(a, [(a, "dispatcher")], None)
    out = run(core, core.handle(sids[b.id], commit_msg(good), NOW))  # b may not submit a's
    assert [m["code"] for _, m in out] == [p.Codes.NOT_PERMITTED]


def test_routing_only_to_members_and_only_from_the_floor_holder(setup) -> None:  # type: ignore[no-untyped-def]
    w, (a, b, v, o), core, sids = setup
    outsider = w.device("us-cbp", "other", ("member",))
    sid_out = login(core, outsider)[0]
    b1 = w.commit(a, [(a, "dispatcher"), (v, "member"), (o, "observer")], None)
    run(core, core.handle(sids[a.id], commit_msg(b1), NOW))
    chan = core.channels["inc-1"]
    from crypto.counters import MemoryCounterStore
    from crypto.group import ChannelMember

    vm = ChannelMember(v.id, v.keys, w.trust, MemoryCounterStore())
    vm.process_commit(b1, NOW)
    frame = vm.protect(b"voice")
    sv = core.sessions[sids[v.id]]
    assert core.route(sv, chan.no, frame, NOW) is None  # no floor yet
    run(
        core,
        core.handle(
            sids[v.id], {"t": "floor-request", "v": 1, "ch": "inc-1", "priority": "normal"}, NOW
        ),
    )
    udp, ws = core.route(sv, chan.no, frame, NOW)  # type: ignore[misc]
    assert sorted(ws) == sorted([sids[a.id], sids[o.id]])  # not the sender, not the outsider
    assert sid_out not in ws and sids[b.id] not in ws
    # A frame under another member's KID is dropped even from the floor holder.
    am = ChannelMember(a.id, a.keys, w.trust, MemoryCounterStore())
    am.process_commit(b1, NOW)
    assert core.route(sv, chan.no, am.protect(b"x"), NOW) is None
    assert core.metrics.dropped["bad-kid"] == 1
    # The observer never gets the floor.
    out = run(
        core,
        core.handle(
            sids[o.id], {"t": "floor-request", "v": 1, "ch": "inc-1", "priority": "emergency"}, NOW
        ),
    )
    assert out[0][1]["event"] == "denied" and out[0][1]["reason"] == "not-permitted"


def test_unauthenticated_session_may_only_authenticate(setup) -> None:  # type: ignore[no-untyped-def]
    w, _, core, _ = setup
    sid, _ = core.connect(NOW)
    with pytest.raises(ProtocolError) as e:
        core.handle(sid, {"t": "ping", "v": 1}, NOW)
    assert e.value.code == p.Codes.AUTH_REQUIRED


def test_forged_auth_refused(setup) -> None:  # type: ignore[no-untyped-def]
    w, (a, b, v, o), core, _ = setup
    sid, _ = core.connect(NOW)
    msg = {
        "t": "auth",
        "v": 1,
        "credential": json.loads(a.cred.encode()),
        "nonce": "n",
        "sig": base64.b64encode(b.keys.sign.sign(b"whatever")).decode(),
    }
    with pytest.raises(ProtocolError) as e:
        core.handle(sid, msg, NOW)
    assert e.value.code == p.Codes.AUTH_FAILED


def test_rate_limit(setup) -> None:  # type: ignore[no-untyped-def]
    w, (a, *_), core, sids = setup
    codes = []
    for _ in range(300):
        try:
            core.handle(sids[a.id], {"t": "ping", "v": 1}, NOW)
        except ProtocolError as exc:
            codes.append(exc.code)
    assert codes and set(codes) == {p.Codes.RATE_LIMITED}


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200),
        st.dictionaries(
            st.sampled_from(["t", "v", "ch", "seq", "bundle", "id", "frame"]),
            st.one_of(
                st.integers(),
                st.text(max_size=10),
                st.none(),
                st.booleans(),
                st.sampled_from(list(p.CLIENT_MESSAGES)),
                st.just(1),
            ),
            max_size=6,
        ).map(json.dumps),
    )
)
def test_parser_fuzz_only_protocol_errors(data: str | bytes) -> None:
    try:
        msg = p.parse_control(data)
    except ProtocolError as exc:
        assert exc.code in vars(p.Codes).values()
        return
    assert msg["t"] in p.CLIENT_MESSAGES


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_udp_junk_is_dropped(data: bytes) -> None:
    core = RelayCore(make_world().trust, MemoryStore(), NullAudit())
    assert core.udp_datagram(bytes([0xCB]) + data, ("127.0.0.1", 9), NOW) is None


def test_channels_tear_themselves_down_at_expiry(setup) -> None:  # type: ignore[no-untyped-def]
    w, (a, b, v, o), core, sids = setup
    from crypto.channel import create_commit

    bundle, _ = create_commit(
        issuer=a.cred,
        issuer_keys=a.keys,
        channel="short",
        name="Short",
        agreement=w.agreement,
        members=[(a.cred, "dispatcher"), (v.cred, "member")],
        previous=None,
        expires=NOW + 60,
        now=NOW,
    )
    run(core, core.handle(sids[a.id], commit_msg(bundle), NOW))
    chan = core.channels["short"]
    assert core.next_timer() == NOW + 60
    assert run(core, core.handle_timer(NOW + 59)) == []
    sends = run(core, core.handle_timer(NOW + 60))
    closed = {sid for sid, m in sends if m["t"] == "channel-closed" and m["ch"] == "short"}
    assert closed == {sids[a.id], sids[v.id]}
    assert "short" not in core.channels and chan.no not in core.by_no
    sv = core.sessions[sids[v.id]]
    assert core.route(sv, chan.no, b"\x00" * 40, NOW + 61) is None
    # A relay restarted from the same store does not bring it back.
    again = RelayCore(w.trust, core.store, NullAudit())
    assert "short" not in again.channels


class MemoryBus:
    """Stands in for the NATS subject between two relay nodes (unit test of the interface)."""

    def __init__(self) -> None:
        self.nodes: list[RelayCore] = []
        self.delivered: list[tuple[int, tuple[int, list, list] | None]] = []  # type: ignore[type-arg]

    def publish(self, channel: str, sender: str, frame: bytes) -> None:
        for i, node in enumerate(self.nodes):
            if sender not in node.by_device:  # every node but the origin
                self.delivered.append((i, node.from_remote(channel, sender, frame)))


def test_fan_out_across_relay_nodes_through_the_remote_interface() -> None:
    from crypto.counters import MemoryCounterStore
    from crypto.group import ChannelMember

    w = make_world()
    a = w.device("us-cbp", "disp", ("dispatcher", "member"))
    v = w.device("ca-rcmp", "vessel", ("member",))
    o = w.device("mx-gn", "obs", ("observer",))
    bus = MemoryBus()
    node_a = RelayCore(w.trust, MemoryStore(), NullAudit(), remote=bus)
    node_b = RelayCore(w.trust, MemoryStore(), NullAudit(), remote=bus)
    bus.nodes = [node_a, node_b]
    sid_a, sid_v = login(node_a, a)[0], login(node_a, v)[0]
    sid_b_disp = login(node_b, a)[0]  # the dispatcher console is on both nodes' books here
    sid_o = login(node_b, o)[0]
    bundle = w.commit(a, [(a, "dispatcher"), (v, "member"), (o, "observer")], None)
    for node, sid in ((node_a, sid_a), (node_b, sid_b_disp)):
        run(node, node.handle(sid, commit_msg(bundle), NOW))
    node_b.disconnect(sid_b_disp, NOW)
    run(
        node_a,
        node_a.handle(
            sid_v, {"t": "floor-request", "v": 1, "ch": "inc-1", "priority": "normal"}, NOW
        ),
    )
    vm = ChannelMember(v.id, v.keys, w.trust, MemoryCounterStore())
    vm.process_commit(bundle, NOW)
    routed = node_a.route(
        node_a.sessions[sid_v], node_a.channels["inc-1"].no, vm.protect(b"voice"), NOW
    )
    assert routed is not None and routed[1] == [sid_a]  # node A's own listener
    # ... and node B delivered the same frame to the observer connected there.
    assert bus.delivered == [(1, (node_b.channels["inc-1"].no, [], [sid_o]))]
    # A frame claimed by a device outside the channel is refused by the receiving node.
    assert node_b.from_remote("inc-1", "us-cbp/stranger", b"x") is None


def test_floor_state_comes_from_the_factory() -> None:
    from bridge.floor.control import FloorControl

    made: list[FloorControl] = []

    def factory(cfg):  # type: ignore[no-untyped-def]
        made.append(FloorControl(max_talk_time=5.0))
        return made[-1]

    w = make_world()
    a = w.device("us-cbp", "disp", ("dispatcher", "member"))
    core = RelayCore(w.trust, MemoryStore(), NullAudit(), floor_factory=factory)
    sid = login(core, a)[0]
    run(core, core.handle(sid, commit_msg(w.commit(a, [(a, "dispatcher")], None)), NOW))
    assert made and core.channels["inc-1"].floor is made[0]
