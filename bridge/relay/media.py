"""Media routing, the relay's hot path: voice frames over UDP or WebSocket to a channel.

The relay knows from the verified commits which sender index belongs to which device, so a
voice frame is forwarded only if its KID names the sending session's own index, the session's
device holds the floor, and the channel exists; then it goes to every other online member of
the channel, nobody else. Observers have no index and never get the floor. Kept lean: no
allocation per datagram: the target lists of each (channel, sender) are cached, and the cache
is emptied whenever they could change (a session authenticates or leaves, a channel's roster
is installed or torn down, a session's UDP address changes). The driver must not mutate them.

UDP both ways is bound to the session (:mod:`bridge.wire.media`). Only a *fresh* register
datagram (its ``seq`` above the last one accepted) sets a session's UDP address: a replayed
register, or any media datagram from elsewhere, moves nothing. Each UDP target carries the
listener's keyed downstream MAC state, so the driver MACs every copy for its own listener
(:meth:`bridge.relay.udp.UdpPort.send`). A member with no UDP address gets its voice over the
WebSocket.
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass
from typing import Any

from bridge.relay.base import CoreBase
from bridge.relay.state import Channel, Session
from bridge.wire import control as p
from bridge.wire import media as wm
from crypto.group import CONTEXT_DATA, CONTEXT_VOICE

_CH = struct.Struct(">I")
_UDP_HEAD = 2 + p.TOKEN_LEN
_UDP_MIN = _UDP_HEAD + p.MAC_LEN
_UDP_MEDIA_MIN = _UDP_HEAD + 4 + p.MAC_LEN + 2

UdpTarget = tuple[tuple[str, int], wm.DownMac]  # a listener's address and downstream MAC state
Targets = tuple[list[UdpTarget], list[int]]


@dataclass(slots=True, eq=False)
class UdpBinding:
    """A session's UDP side, made by its first fresh register."""

    seq: int  # the last register accepted
    mac: wm.DownMac  # the keyed state of its downstream MAC


class MediaMixin(CoreBase):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (channel number, sender) -> (channel, its members set, udp targets, ws targets)
        self._fanout: dict[tuple[int, str], tuple[Channel, frozenset[str], Targets]] = {}
        self.udp_bindings: dict[bytes, UdpBinding] = {}  # by session token

    def invalidate_targets(self) -> None:
        """Who is online, a roster or an address changed: rebuild the target lists lazily."""
        self._fanout.clear()

    def forget_udp(self, s: Session) -> None:
        """The session is gone: its UDP binding with it."""
        self.udp_bindings.pop(s.token, None)

    def route(self, s: Session, channel_no: int, frame: bytes, now: float) -> Targets | None:
        """Check one voice frame and return (udp addresses, websocket session ids) to send to."""
        self.metrics.c["frames_in"] += 1
        chan = self.by_no.get(channel_no)
        device = s.device
        if chan is None or device is None:
            self.metrics.drop("unknown-channel")
            return None
        if not chan.floor.may_send(device):
            self.metrics.drop("no-floor")
            return None
        if len(frame) > p.MAX_SFRAME or not (
            self._sender_index_ok(chan, device, frame, CONTEXT_VOICE)
            # in band with the voice: the talker's signed checkpoints (crypto.checkpoint)
            or self._sender_index_ok(chan, device, frame, CONTEXT_DATA)
        ):
            self.metrics.drop("bad-kid")
            return None
        if not s.media_rate.allow(now):
            self.metrics.drop("rate")
            return None
        self.remote.publish(chan.id, device, frame)
        return self._local_targets(chan, device)

    def _local_targets(self, chan: Channel, sender: str) -> Targets:
        """The members of ``chan`` connected to this node, but the sender: (UDP, WebSocket)."""
        hit = self._fanout.get((chan.no, sender))
        if hit is not None and hit[0] is chan and hit[1] is chan.members:
            udp, ws = hit[2]
        else:
            udp, ws = self._build_targets(chan, sender)
            self._fanout[(chan.no, sender)] = (chan, chan.members, (udp, ws))
        self.metrics.c["frames_out"] += len(udp) + len(ws)
        return udp, ws

    def _build_targets(self, chan: Channel, sender: str) -> Targets:
        udp: list[UdpTarget] = []
        ws: list[int] = []
        by_device, bindings = self.by_device, self.udp_bindings
        for member in chan.members:
            if member == sender:
                continue
            other = by_device.get(member)
            if other is None:
                continue
            binding = bindings.get(other.token)
            if other.udp_addr is not None and binding is not None:
                udp.append((other.udp_addr, binding.mac))
            else:
                ws.append(other.id)
        return udp, ws

    def from_remote(
        self, channel: str, sender: str, frame: bytes
    ) -> tuple[int, list[UdpTarget], list[int]] | None:
        """A frame another node checked (floor, KID) and published: deliver it to our own
        members of the channel. Returns (channel number, UDP addresses, WebSocket ids)."""
        chan = self.channels.get(channel)
        if chan is None or sender not in chan.members or len(frame) > p.MAX_SFRAME:
            self.metrics.drop("remote-unknown")
            return None
        udp, ws = self._local_targets(chan, sender)
        return chan.no, udp, ws

    def udp_datagram(
        self, data: bytes, addr: tuple[str, int], now: float
    ) -> tuple[bytes, list[UdpTarget], list[int]] | None:
        """Authenticate one UDP datagram; returns (payload to send, udp targets, ws ids)."""
        if len(data) < _UDP_MIN or data[0] != p.UDP_MAGIC:
            self.metrics.drop("malformed")
            return None
        s = self.by_token.get(data[2:_UDP_HEAD])
        if s is None or not hmac.compare_digest(
            p.udp_mac(s.udp_key, data[: -p.MAC_LEN]), data[-p.MAC_LEN :]
        ):
            self.metrics.drop("bad-mac")
            return None
        kind = data[1]
        if kind == p.UDP_MEDIA and len(data) >= _UDP_MEDIA_MIN:
            channel_no = _CH.unpack_from(data, _UDP_HEAD)[0]
            frame = data[_UDP_HEAD + 4 : -p.MAC_LEN]
            targets = self.route(s, channel_no, frame, now)
            if targets is None:
                return None
            return frame, targets[0], targets[1]
        if kind == p.UDP_REGISTER and len(data) == wm.UDP_REGISTER_LEN:
            self._register(s, int.from_bytes(data[_UDP_HEAD : _UDP_HEAD + wm.SEQ_LEN], "big"), addr)
            return None
        self.metrics.drop("malformed")
        return None

    def _register(self, s: Session, seq: int, addr: tuple[str, int]) -> None:
        """An authentic register: bind ``addr`` if it is fresh, refuse a replay."""
        binding = self.udp_bindings.get(s.token)
        if binding is None:
            binding = self.udp_bindings[s.token] = UdpBinding(0, wm.udp_down_mac(s.udp_key))
        if seq <= binding.seq:  # replayed, or overtaken by a later one
            self.metrics.drop("register-replay")
            return
        binding.seq = seq
        if s.udp_addr != addr:  # registered or moved: the target lists name the old one
            s.udp_addr = addr
            self.invalidate_targets()
