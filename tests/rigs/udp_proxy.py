"""An asyncio UDP proxy on loopback that delays, jitters, drops and blacks out datagrams.

It listens on ``listen`` and forwards every client's datagrams to ``target`` from a socket of
its own per client (so the target's replies come back through it and are impaired in the other
direction), like a NAT. Decisions come from :class:`tests.rigs.impair.Direction` on
``clock`` (the event loop's by default; a test may pass a fake clock to place scheduled
outages without waiting for them); a datagram is sent ``at - now`` seconds after it arrived.

While the link is down every datagram is dropped, both ways. Counters: ``forward`` and
``back`` (:class:`Direction`: ``sent``, ``dropped``, ``dropped_down``) and ``delivered``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from tests.rigs.impair import Direction, Impairment, LinkState

Addr = tuple[str, int]


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, proxy: UdpProxy) -> None:
        self.proxy = proxy

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self.proxy._from_client(data, addr)


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, proxy: UdpProxy, client: Addr) -> None:
        self.proxy, self.client = proxy, client
        self.transport: asyncio.DatagramTransport | None = None
        self.queued: list[bytes] = []  # due before the socket was open

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        for data in self.queued:
            self.transport.sendto(data)
        self.queued.clear()

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self.proxy._from_target(data, self.client)


class UdpProxy:
    def __init__(
        self,
        target: Addr,
        forward: Impairment | None = None,
        back: Impairment | None = None,
        *,
        link: LinkState | None = None,
        listen: Addr = ("127.0.0.1", 0),
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.target, self.listen = target, listen
        self.link = link if link is not None else LinkState()
        self.forward = Direction(forward or Impairment(), self.link)
        self.back = Direction(back or Impairment(seed=1), self.link)
        self.clock = clock
        self.delivered = {"forward": 0, "back": 0}
        self._listener: asyncio.DatagramTransport | None = None
        self._upstreams: dict[Addr, _Upstream] = {}
        self._pending: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

    @property
    def address(self) -> Addr:
        assert self._listener is not None, "start() first"
        host, port = self._listener.get_extra_info("sockname")[:2]
        return host, port

    async def start(self) -> UdpProxy:
        loop = asyncio.get_running_loop()
        self.clock = self.clock or loop.time
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Listener(self), local_addr=self.listen
        )
        self._listener = transport
        return self

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        for up in self._upstreams.values():
            if up.transport is not None:
                up.transport.close()
        self._upstreams.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    async def __aenter__(self) -> UdpProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait until ``predicate()`` holds after some delivery or drop; TimeoutError if not
        within ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    # -- driver ------------------------------------------------------------------------

    def _from_client(self, data: bytes, client: Addr) -> None:
        up = self._upstreams.get(client)
        if up is None:
            up = _Upstream(self, client)
            self._upstreams[client] = up
            task = asyncio.get_running_loop().create_task(self._open_upstream(up))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._schedule(self.forward, "forward", data, lambda d: self._to_target(up, d))

    def _from_target(self, data: bytes, client: Addr) -> None:
        self._schedule(self.back, "back", data, lambda d: self._to_client(d, client))

    def _schedule(
        self, direction: Direction, name: str, data: bytes, send: Callable[[bytes], Any]
    ) -> None:
        assert self.clock is not None
        now = self.clock()
        at = direction.datagram(now)
        if at is None:
            self._changed.set()
            return
        handles: list[asyncio.TimerHandle] = []

        def deliver() -> None:
            self._pending.discard(handles[0])
            send(data)
            self.delivered[name] += 1
            self._changed.set()

        handles.append(asyncio.get_running_loop().call_later(max(0.0, at - now), deliver))
        self._pending.add(handles[0])

    async def _open_upstream(self, up: _Upstream) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: up, remote_addr=self.target)

    def _to_target(self, up: _Upstream, data: bytes) -> None:
        if up.transport is not None:
            up.transport.sendto(data)
        else:  # the upstream socket is still opening
            up.queued.append(data)

    def _to_client(self, data: bytes, client: Addr) -> None:
        if self._listener is not None:
            self._listener.sendto(data, client)
