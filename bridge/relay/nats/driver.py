"""The NATS side of a relay node: core subjects between nodes, member consumers, the server.

:class:`NatsBus` is the node's second NATS connection (the store has its own, on its own
thread), on the relay's event loop, with ``no_echo`` so a node never hears itself:

* ``cb.v.<channel>``: every voice frame a node checked (floor, KV) and routed; the other nodes
  hand it to :meth:`~bridge.relay.media.MediaMixin.from_remote` and send it to their own members
  of the channel. Payload: one length byte, the sender's device name, the SFrame frame.
* ``cb.c.commit``: ``{ch, epoch}`` when a node installed a head; the others install it.
* ``cb.c.floor``: ``{ch, rev, fields}`` for each public floor event a node decided.

Core NATS is at most once, as UDP voice is: a frame lost between nodes is concealed like a
datagram lost on the air. Commits and stored items are durable in JetStream/KV whatever
happens to these notices; a node that missed one learns the head at the member's next login.
:class:`NatsRelayServer` is the :class:`~bridge.relay.server.RelayServer` that starts and
stops the bus with it and feeds the member consumers into the core.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import nats

from bridge.relay.nats import subjects as s
from bridge.relay.nats.core import NatsRelayCore
from bridge.relay.nats.jsstore import JetStreamStore
from bridge.relay.server import RelayServer
from bridge.relay.store import StoredItem

__all__ = ["NatsBus", "NatsRelayServer"]

log = logging.getLogger("crossband.relay.nats")


class NatsBus:
    """The core's :class:`~bridge.relay.state.RemoteFanout` and
    :class:`~bridge.relay.nats.core.ClusterBus` over NATS (see the module doc)."""

    def __init__(self, urls: list[str], node: str, store: JetStreamStore) -> None:
        self.urls, self.node, self.store = urls, node, store
        self.nc: Any = None
        self.server: NatsRelayServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = {"voice_out": 0, "voice_in": 0, "dropped": 0}

    async def start(self, server: NatsRelayServer) -> None:
        self.server = server
        self._loop = asyncio.get_running_loop()
        self.nc = await nats.connect(
            servers=self.urls,
            name=f"crossband-{self.node}",
            no_echo=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.2,
            connect_timeout=5,
        )
        await self.nc.subscribe(f"{s.VOICE}.*", cb=self._on_voice)
        await self.nc.subscribe(s.COMMITS, cb=self._on_commit)
        await self.nc.subscribe(s.FLOOR, cb=self._on_floor)
        await self.nc.flush()

    async def stop(self) -> None:
        if self.nc is not None:
            await self.nc.drain()
            self.nc = None

    def _send(self, subject: str, payload: bytes) -> None:
        nc = self.nc
        if nc is None or not nc.is_connected:
            self.stats["dropped"] += 1
            return
        task = self._loop.create_task(nc.publish(subject, payload))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.stats["dropped"] += 1

    # -- RemoteFanout and ClusterBus (called by the core, on the loop) ------------------------

    def publish(self, channel: str, sender: str, frame: bytes) -> None:
        name = sender.encode()
        self.stats["voice_out"] += 1
        self._send(s.voice_subject(channel), bytes((len(name),)) + name + frame)

    def commit_installed(self, channel: str, epoch: int) -> None:
        self._send(s.COMMITS, json.dumps({"ch": channel, "epoch": epoch}).encode())

    def floor_event(self, channel: str, revision: int, fields: dict[str, Any]) -> None:
        body = {"ch": channel, "rev": revision, "fields": fields, "node": self.node}
        self._send(s.FLOOR, json.dumps(body).encode())

    def member_online(self, device: str) -> None:
        loop = self._loop

        def deliver(item: StoredItem) -> None:  # on the store's thread
            loop.call_soon_threadsafe(self._on_item, device, item)

        self.store.start_pump(device, deliver)

    def member_offline(self, device: str) -> None:
        self.store.stop_pump(device)

    # -- inputs from NATS (on the loop) --------------------------------------------------------

    def _core(self) -> NatsRelayCore:
        assert self.server is not None
        core = self.server.core
        assert isinstance(core, NatsRelayCore)
        return core

    def _on_item(self, device: str, item: StoredItem) -> None:
        assert self.server is not None
        self.server.spawn(self._core().from_queue(device, item, time.time()))

    async def _on_voice(self, msg: Any) -> None:
        try:
            data: bytes = msg.data
            n = data[0]
            channel = s.untoken(msg.subject.rsplit(".", 1)[1])
            sender, frame = data[1 : 1 + n].decode(), data[1 + n :]
        except (IndexError, ValueError):
            self.stats["dropped"] += 1
            return
        self.stats["voice_in"] += 1
        routed = self._core().from_remote(channel, sender, frame)
        if routed is not None and self.server is not None:
            no, udp, ws = routed
            self.server.fan_out(no, frame, udp, ws)

    async def _on_commit(self, msg: Any) -> None:
        try:
            body = json.loads(msg.data)
            channel, epoch = str(body["ch"]), int(body["epoch"])
        except (ValueError, KeyError, TypeError):
            return
        if self.server is not None:
            self.server.spawn(self._core().remote_commit(channel, epoch))

    async def _on_floor(self, msg: Any) -> None:
        try:
            body = json.loads(msg.data)
            channel, rev, fields = str(body["ch"]), int(body["rev"]), dict(body["fields"])
        except (ValueError, KeyError, TypeError):
            return
        if self.server is not None:
            now = self._loop.time()
            self.server.spawn(self._core().remote_floor(channel, rev, fields, now, time.time()))


class NatsRelayServer(RelayServer):
    """The relay server of one node: the bus starts before serving and stops after."""

    def __init__(self, core: NatsRelayCore, bus: NatsBus, **kwargs: Any) -> None:
        super().__init__(core, **kwargs)
        self.bus = bus

    async def start(self) -> None:
        await self.bus.start(self)
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        await self.bus.stop()

    def spawn(self, outcome: Any) -> None:
        self._spawn(outcome)

    def fan_out(self, channel_no: int, frame: bytes, udp: Any, ws: list[int]) -> None:
        self._fan_out(channel_no, frame, udp, ws)
