"""UDP is authenticated both ways (issue 9, fault 5), on the sans-IO relay core and the relay's
UDP port.

Before: a register datagram carried only the token and a MAC, and *any* authentic datagram
moved the session's UDP address, so a register (or a media datagram) captured on the wire and
re-sent from another address moved a member's downstream voice to the sender of the copy (the
victim heard 0 of 15 frames); downstream datagrams carried no MAC at all. Now a register
carries a ``seq`` the relay must not have seen (counted ``register-replay`` otherwise), only a
fresh register moves the address, and every downstream copy carries its own listener's MAC.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

from bridge.endpoint.udp_binding import KEEPALIVE, SECOND_TRY, UdpBinding
from bridge.relay.core import RelayCore
from bridge.relay.memory_store import MemoryStore
from bridge.relay.udp import UdpPort
from bridge.wire import control as p
from bridge.wire import media as wm
from crypto.counters import MemoryCounterStore
from crypto.group import ChannelMember
from tests.bridge.relay.helpers import NullAudit, commit_msg, login, run
from tests.world import NOW, make_world

VICTIM_ADDR = ("127.0.0.1", 6001)
ATTACKER_ADDR = ("127.0.0.1", 6666)
TALKER_ADDR = ("127.0.0.1", 5000)


class Net:
    """A relay core with a channel of a talker (holding the floor), a victim listener and a
    third member; the victim's UDP side is a real :class:`UdpBinding` on a fake clock."""

    def __init__(self) -> None:
        w = make_world()
        disp = w.device("us-cbp", "disp", ("dispatcher", "member"))
        talker = w.device("ca-rcmp", "vessel", ("member",))
        victim = w.device("ca-rcmp", "boat", ("member",))
        self.core = core = RelayCore(w.trust, MemoryStore(), NullAudit())
        self.sid = {d.id: login(core, d)[0] for d in (disp, talker, victim)}
        self.talker_id, self.victim_id = talker.id, victim.id
        roster = [(disp, "dispatcher"), (talker, "member"), (victim, "member")]
        first = w.commit(disp, roster, None)
        run(core, core.handle(self.sid[disp.id], commit_msg(first), NOW))
        self.chan = core.channels["inc-1"]
        self.member = ChannelMember(talker.id, talker.keys, w.trust, MemoryCounterStore())
        self.member.process_commit(first, NOW)
        floor = {"t": "floor-request", "v": 1, "ch": "inc-1", "priority": "normal"}
        run(core, core.handle(self.sid[talker.id], floor, NOW))
        self.now = 0.0
        self.stats: dict[str, int] = {}
        self.binding = UdpBinding(self.stats)
        v = self.session(victim.id)
        self.binding.start(v.token, v.udp_key, self.now)

    def session(self, device: str) -> Any:
        return self.core.sessions[self.sid[device]]

    def victim_sends(self, addr: tuple[str, int]) -> list[bytes]:
        """Whatever the victim's binding has due now, delivered from ``addr``."""
        out = self.binding.datagrams_to_send(self.now)
        for data in out:
            assert self.core.udp_datagram(data, addr, self.now) is None
        return out

    def voice(self) -> tuple[list[Any], list[int]]:
        """One frame from the talker: (UDP targets, WebSocket ids) the relay sends it to."""
        s = self.session(self.talker_id)
        up = p.udp_media_up(s.token, s.udp_key, self.chan.no, self.member.protect(b"voice"))
        routed = self.core.udp_datagram(up, TALKER_ADDR, self.now)
        assert routed is not None
        return routed[1], routed[2]

    def victim_hears(self, frames: int) -> int:
        """How many of ``frames`` frames the relay sends to the victim's UDP address."""
        heard = 0
        for _ in range(frames):
            udp, _ = self.voice()
            heard += sum(1 for addr, _mac in udp if addr == VICTIM_ADDR)
            assert ATTACKER_ADDR not in [addr for addr, _mac in udp]
        return heard


def test_a_replayed_register_from_another_address_moves_nothing() -> None:
    net = Net()
    captured = net.victim_sends(VICTIM_ADDR)  # the victim registers; the attacker records it
    assert len(captured) == 1 and net.victim_hears(1) == 1
    dropped = net.core.metrics.dropped.get("register-replay", 0)
    for data in captured * 3:  # ... and re-sends it from its own address
        assert net.core.udp_datagram(data, ATTACKER_ADDR, net.now) is None
    assert net.core.metrics.dropped["register-replay"] == dropped + 3
    assert net.session(net.victim_id).udp_addr == VICTIM_ADDR
    assert net.victim_hears(15) == 15  # the issue: 0 of 15


def test_a_replayed_media_datagram_from_another_address_moves_nothing() -> None:
    net = Net()
    net.victim_sends(VICTIM_ADDR)
    v = net.session(net.victim_id)
    # An authentic media datagram of the victim's (it holds no floor: dropped, but it was
    # authentic, and the old relay moved the address before routing).
    captured = p.udp_media_up(v.token, v.udp_key, net.chan.no, b"\x00" * 20)
    assert net.core.udp_datagram(captured, ATTACKER_ADDR, net.now) is None
    assert v.udp_addr == VICTIM_ADDR
    assert net.victim_hears(15) == 15


def test_a_later_register_overtaken_by_a_newer_one_is_refused() -> None:
    """Registers reordered on the way: the older one does not move the binding back."""
    net = Net()
    older = net.victim_sends(VICTIM_ADDR)
    net.now += SECOND_TRY
    newer = net.binding.datagrams_to_send(net.now)
    moved = ("127.0.0.1", 6002)
    assert net.core.udp_datagram(newer[0], moved, net.now) is None
    assert net.core.udp_datagram(older[0], VICTIM_ADDR, net.now) is None
    assert net.session(net.victim_id).udp_addr == moved


def test_upstream_datagrams_with_a_bad_mac_are_still_refused() -> None:
    net = Net()
    v, t = net.session(net.victim_id), net.session(net.talker_id)
    wrong = os.urandom(32)
    bad = net.core.metrics.dropped.get("bad-mac", 0)
    # A register under the wrong key binds nothing: the victim still gets its voice over the
    # WebSocket.
    assert net.core.udp_datagram(wm.udp_register(v.token, wrong, 1), ATTACKER_ADDR, 0) is None
    assert v.udp_addr is None
    udp, ws = net.voice()
    assert udp == [] and v.id in ws
    # A media frame under the wrong key is not forwarded.
    frame = net.member.protect(b"voice")
    assert (
        net.core.udp_datagram(p.udp_media_up(t.token, wrong, net.chan.no, frame), ATTACKER_ADDR, 0)
        is None
    )
    # A register with a good MAC but a flipped seq byte fails its MAC.
    good = wm.udp_register(v.token, v.udp_key, 7)
    flipped = good[:12] + bytes([good[12] ^ 1]) + good[13:]
    assert net.core.udp_datagram(flipped, ATTACKER_ADDR, 0) is None
    assert v.udp_addr is None
    assert net.core.metrics.dropped["bad-mac"] == bad + 3


def test_the_listener_re_registers_after_a_nat_rebinding_within_one_keepalive() -> None:
    """Fake clock: the victim's NAT gives it a new source port; within KEEPALIVE (plus one
    timer tick) its next fresh register moves the relay's downstream to the new port."""
    net = Net()
    net.victim_sends(VICTIM_ADDR)
    net.now += SECOND_TRY
    net.victim_sends(VICTIM_ADDR)
    assert net.session(net.victim_id).udp_addr == VICTIM_ADDR
    net.now += 1.7  # some time into the keepalive period, the NAT rebinds
    rebound_at, rebound = net.now, ("127.0.0.1", 7001)
    while net.session(net.victim_id).udp_addr != rebound:
        timer = net.binding.get_timer()
        assert timer is not None and timer <= rebound_at + KEEPALIVE
        net.now = timer
        net.victim_sends(rebound)
    assert net.now - rebound_at <= KEEPALIVE
    udp, _ = net.voice()
    assert [addr for addr, _mac in udp] == [rebound]


def test_every_keepalive_is_fresh_and_accepted() -> None:
    net = Net()
    for _ in range(5):
        assert len(net.victim_sends(VICTIM_ADDR)) == 1
        timer = net.binding.get_timer()
        assert timer is not None and timer - net.now <= KEEPALIVE
        net.now = timer
    assert net.core.metrics.dropped.get("register-replay", 0) == 0
    assert net.stats["udp_registers"] == 5


async def test_each_downstream_copy_carries_its_own_listeners_mac() -> None:
    """The relay's UDP port MACs every copy for its listener: each listener's datagram passes
    its own check and fails the other's; a copy never carries the placeholder."""
    loop = asyncio.get_running_loop()
    keys = [os.urandom(32), os.urandom(32)]
    socks = []
    for _ in keys:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(5)
        socks.append(s)
    port = UdpPort.open("127.0.0.1", 0, loop, lambda d, a: None, lambda: None)
    try:
        frame = os.urandom(100)
        targets = [(s.getsockname(), wm.udp_down_mac(k)) for s, k in zip(socks, keys)]
        port.send(wm.udp_media_down(9, frame), targets)
        got = [s.recv(2048) for s in socks]
        for i, data in enumerate(got):
            assert wm.parse_udp_down(data) == (9, frame)
            assert wm.udp_down_ok(wm.udp_down_mac(keys[i]), data)
            assert not wm.udp_down_ok(wm.udp_down_mac(keys[1 - i]), data)
            assert data == wm.udp_seal_down(wm.udp_down_mac(keys[i]), wm.udp_media_down(9, frame))
        assert got[0] != got[1]
    finally:
        port.close()
        for s in socks:
            s.close()
