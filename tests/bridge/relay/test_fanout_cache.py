"""The relay core caches each (channel, sender)'s fan-out targets: the frame after a member
leaves, joins, re-registers its UDP address or changes the roster goes to exactly the new set."""

from __future__ import annotations

from typing import Any

from bridge.relay.core import RelayCore
from bridge.relay.memory_store import MemoryStore
from bridge.wire import control as p
from crypto.counters import MemoryCounterStore
from crypto.group import ChannelMember
from tests.bridge.relay.helpers import NullAudit, commit_msg, login, run
from tests.world import NOW, make_world

Targets = tuple[set[tuple[str, int]], set[int]]


def test_next_frame_goes_to_exactly_the_new_target_set() -> None:
    w = make_world()
    a = w.device("us-cbp", "disp", ("dispatcher", "member"))
    v = w.device("ca-rcmp", "vessel", ("member",))
    b = w.device("ca-rcmp", "boat", ("member",))
    o = w.device("mx-gn", "obs", ("observer",))
    core = RelayCore(w.trust, MemoryStore(), NullAudit())
    sids = {d.id: login(core, d)[0] for d in (a, v, b, o)}
    first = w.commit(a, [(a, "dispatcher"), (v, "member"), (o, "observer")], None)
    run(core, core.handle(sids[a.id], commit_msg(first), NOW))
    chan = core.channels["inc-1"]
    talker = ChannelMember(v.id, v.keys, w.trust, MemoryCounterStore())
    talker.process_commit(first, NOW)
    floor = {"t": "floor-request", "v": 1, "ch": "inc-1", "priority": "normal"}
    run(core, core.handle(sids[v.id], floor, NOW))

    seqs = iter(range(1, 100))

    def register(sid: int, addr: tuple[str, int]) -> None:
        s = core.sessions[sid]
        assert core.udp_datagram(p.udp_register(s.token, s.udp_key, next(seqs)), addr, NOW) is None

    def frame() -> Targets:
        s = core.sessions[sids[v.id]]
        up = p.udp_media_up(s.token, s.udp_key, chan.no, talker.protect(b"voice"))
        routed: Any = core.udp_datagram(up, ("127.0.0.1", 5000), NOW)
        assert routed is not None
        return {addr for addr, _mac in routed[1]}, set(routed[2])

    register(sids[a.id], ("127.0.0.1", 6001))
    assert frame() == ({("127.0.0.1", 6001)}, {sids[o.id]})
    assert frame() == ({("127.0.0.1", 6001)}, {sids[o.id]})  # served from the cache
    register(sids[a.id], ("127.0.0.1", 6002))  # a's NAT mapping moved
    assert frame() == ({("127.0.0.1", 6002)}, {sids[o.id]})
    run(core, core.disconnect(sids[o.id], NOW))  # o leaves
    assert frame() == ({("127.0.0.1", 6002)}, set())
    sids[o.id] = login(core, o)[0]  # o comes back, on a new session
    assert frame() == ({("127.0.0.1", 6002)}, {sids[o.id]})
    register(sids[o.id], ("127.0.0.1", 6003))  # and moves to UDP
    assert frame() == ({("127.0.0.1", 6002), ("127.0.0.1", 6003)}, set())
    # The roster changes: b joins, o is removed.
    second = w.commit(a, [(a, "dispatcher"), (v, "member"), (b, "member")], first)
    run(core, core.handle(sids[a.id], commit_msg(second), NOW))
    talker.process_commit(second, NOW)
    assert frame() == ({("127.0.0.1", 6002)}, {sids[b.id]})
    assert core.metrics.c["frames_out"] == 2 + 2 + 2 + 1 + 2 + 2 + 2
