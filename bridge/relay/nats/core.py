"""The relay core of one node among several: what changes when members sit on other nodes.

:class:`NatsRelayCore` is :class:`~bridge.relay.core.RelayCore` (still sans-IO: no socket, no
clock, no NATS call) with these differences, each an override:

* **Delivery**: an accepted item is not pushed to online members by the accepting node (they
  may be on another); it is on the member's JetStream subject, and the node the member is
  connected to feeds it from the member's durable consumer (:meth:`from_queue`), in stream
  order. The driver starts that consumer once the member's (empty) backlog is read, and stops
  it when the member leaves this node (:class:`ClusterBus`).
* **Commits**: after a node installs a new head it tells the others (``commit_installed``);
  they read the head from the shared state and install it (:meth:`remote_commit`). The nodes
  of one country trust each other (one operator, an authenticated NATS cluster).
* **Floor**: a request first wins the channel's KV lease (:mod:`bridge.relay.nats.floor`, a
  store job), then goes to the local floor object as before. Floor events are published with
  the lease revision; a vacated lease is released by compare-and-set on that revision, and
  other nodes apply events no older than the newest revision they saw (:meth:`remote_floor`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Protocol

from bridge.errors import RemoteProtocolError
from bridge.floor.events import Event, FloorReleased, FloorRevoked
from bridge.relay.base import deliver_msg
from bridge.relay.core import Handler, RelayCore
from bridge.relay.jobs import GetStates, Job
from bridge.relay.messages import _PRIORITIES
from bridge.relay.nats.floor import Acquire, Lease, Release
from bridge.relay.state import Channel, Outcome, Session
from bridge.relay.store import StoredItem
from bridge.wire import control as p
from bridge.wire.floor import floor_event_fields
from crypto.channel import CommitBundle

__all__ = ["ClusterBus", "NatsRelayCore"]


class ClusterBus(Protocol):
    """What the core tells the other nodes (the driver publishes; never blocks)."""

    def member_online(self, device: str) -> None: ...

    def member_offline(self, device: str) -> None: ...

    def commit_installed(self, channel: str, epoch: int) -> None: ...

    def floor_event(self, channel: str, revision: int, fields: dict[str, Any]) -> None: ...


class NatsRelayCore(RelayCore):
    HANDLERS: ClassVar[dict[str, Handler]] = dict(RelayCore.HANDLERS)  # + floor-request below

    def __init__(self, *args: Any, node: str, bus: ClusterBus, **kwargs: Any) -> None:
        self.node, self.bus = node, bus
        self.leases: dict[str, tuple[str, int]] = {}  # channel -> (our holder, lease revision)
        self.floor_seen: dict[str, int] = {}  # channel -> newest lease revision seen
        super().__init__(*args, **kwargs)

    # -- delivery ------------------------------------------------------------------------------

    def _deliver(self, out: Outcome, recipients: Iterable[str], seq: int, message: str) -> None:
        """Nothing at once: each member's consumer delivers, on whichever node it is."""

    def _flush_backlog(self, s: Session, items: list[StoredItem], wall: float) -> Outcome:
        out = super()._flush_backlog(s, items, wall)
        if s.synced and s.device is not None and self.by_device.get(s.device) is s:
            self.bus.member_online(s.device)
        return out

    def disconnect(self, sid: int, now: float, wall: float | None = None) -> Outcome:
        s = self.sessions.get(sid)
        out = super().disconnect(sid, now, wall)
        if s is not None and s.device is not None and s.device not in self.by_device:
            self.bus.member_offline(s.device)
        return out

    def from_queue(self, device: str, item: StoredItem, wall: float) -> Outcome:
        """One item from ``device``'s consumer: deliver it unless already delivered or expired
        (a redelivery after the ack wait, the same session: the seq says so)."""
        s = self.by_device.get(device)
        if s is None or not s.synced or item.seq <= s.delivered or item.expires_at <= wall:
            return Outcome()
        s.delivered = item.seq
        message = deliver_msg(item.seq, item.kind, item.channel, item.msg_id, item.body)
        return Outcome([(s.id, message)])

    # -- commits -------------------------------------------------------------------------------

    def _accept_commit(
        self,
        s: Session,
        bundle: CommitBundle,
        old_members: frozenset[str],
        now: float,
        wall: float,
    ) -> Outcome:
        out = super()._accept_commit(s, bundle, old_members, now, wall)
        self.bus.commit_installed(bundle.commit.channel, bundle.commit.epoch)
        return out

    def remote_commit(self, channel: str, epoch: int) -> Outcome:
        """Another node installed ``epoch`` of ``channel``: read the head and install it."""
        chan = self.channels.get(channel)
        if chan is not None and chan.head.epoch >= epoch:
            return Outcome()
        key = f"channel:{channel}"

        def got(found: dict[str, bytes], now: float) -> Outcome:
            blob = found.get(key)
            if not blob:
                return Outcome()
            return self._install_remote(CommitBundle.decode(blob), now, now + self.wall_offset)

        return Outcome(jobs=[Job(GetStates((key,)), got)])

    def _install_remote(self, bundle: CommitBundle, now: float, wall: float) -> Outcome:
        c = bundle.commit
        chan = self.channels.get(c.channel)
        if chan is not None and chan.head.epoch >= c.epoch:
            return Outcome()
        old_members = chan.members if chan is not None else frozenset()
        chan = self._install(c, bundle.agreement)
        self.listed.add(c.channel)
        self.invalidate_targets()
        out = Outcome()
        for gone in old_members - chan.members:
            out.extend(self._floor_events(chan, chan.floor.cancel(gone, now), wall))
        announce = p.control("channel", ch=chan.id, no=chan.no, epoch=c.epoch)
        for other in self._online(chan.members):
            out.sends.append((other.id, announce))
            if other.device not in old_members:
                out.sends.append((other.id, self._floor_state(chan)))
        return out

    # -- the floor -----------------------------------------------------------------------------

    def _on_floor_request(
        self, s: Session, msg: dict[str, Any], now: float, wall: float
    ) -> Outcome:
        chan = self._member(s, msg["ch"])
        assert s.device is not None
        device = s.device
        priority = _PRIORITIES.get(msg["priority"])
        if priority is None:
            raise RemoteProtocolError(p.Codes.MALFORMED, "priority")
        self._require_audit()
        if not chan.head.may_send(device):  # an observer: refused here, no lease asked
            events = chan.floor.request(device, priority, now, may_talk=False)
            return self._floor_events(chan, events, wall)
        limit = self.config.max_talk_time
        if priority == _PRIORITIES["emergency"] and self.config.emergency_max_talk_time:
            limit = self.config.emergency_max_talk_time
        op = Acquire(chan.id, device, int(priority), self.node, wall, limit + 1.0)

        def decided(lease: Lease, now: float) -> Outcome:
            if self.channels.get(chan.id) is not chan or self.by_device.get(device) is not s:
                if lease.granted:  # the asker or the channel went meanwhile
                    return Outcome(jobs=[Job(Release(chan.id, lease.revision))])
                return Outcome()
            if not lease.granted:
                fields = {"ch": chan.id, "event": "denied", "device": device, "reason": "busy"}
                return Outcome([(s.id, p.control("floor", **fields))])
            self.leases[chan.id] = (device, lease.revision)
            self._seen(chan.id, lease.revision)
            return self._floor_events(chan, chan.floor.request(device, priority, now), wall)

        def failed(_now: float) -> Outcome:
            return Outcome([(s.id, p.error(p.Codes.STORE_FAILED, "floor lease", ch=chan.id))])

        return Outcome(jobs=[Job(op, decided, failed)])

    def _seen(self, channel: str, revision: int) -> bool:
        if revision < self.floor_seen.get(channel, 0):
            return False
        self.floor_seen[channel] = revision
        return True

    def _floor_events(self, chan: Channel, events: list[Event], wall: float) -> Outcome:
        out = super()._floor_events(chan, events, wall)
        held = self.leases.get(chan.id)
        revision = held[1] if held is not None else self.floor_seen.get(chan.id, 0)
        for event in events:
            fields, private = floor_event_fields(chan.id, event)
            if not private:
                self.bus.floor_event(chan.id, revision, fields)
            vacated = isinstance(event, FloorReleased | FloorRevoked)
            if vacated and held is not None and held[0] == getattr(event, "device", None):
                del self.leases[chan.id]
                out.jobs.append(Job(Release(chan.id, held[1])))
        return out

    def remote_floor(
        self, channel: str, revision: int, fields: dict[str, Any], now: float, wall: float
    ) -> Outcome:
        """A floor event another node decided under lease ``revision``: tell our members,
        and cut off our own talker if the floor went to someone else (preempted there)."""
        chan = self.channels.get(channel)
        if chan is None or not self._seen(channel, revision):
            return Outcome()
        out = Outcome()
        holder = chan.floor.snapshot().holder
        if fields.get("event") == "granted" and holder not in (None, fields.get("device")):
            assert holder is not None
            out.extend(self._floor_events(chan, chan.floor.cancel(holder, now), wall))
        message = p.control("floor", **fields)
        out.sends += [(o.id, message) for o in self._online(chan.members)]
        return out


NatsRelayCore.HANDLERS["floor-request"] = NatsRelayCore._on_floor_request  # the table holds
# functions, not names: the override must be entered in it
