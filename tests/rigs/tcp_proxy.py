"""An asyncio TCP proxy on loopback that delays the byte stream and blacks it out.

Meant for the relay's WebSocket (HTTP upgrade and frames pass through untouched). For each
accepted connection it connects to ``target`` and pumps bytes both ways. A reader task stamps
each chunk with its delivery time (:meth:`tests.rigs.impair.Direction.chunk`: delay + jitter,
always in order, never lost: TCP would retransmit) and a writer task delivers it then, so a
steady stream is delayed by the configured amount rather than by the sum of the delays.

Outages, ``on_outage``:

- ``"hold"`` (a link that went dark; TCP retransmits once it is back): bytes sent while the
  link is down are delivered when it comes back; a connection made while it is down is
  accepted but not connected upstream until then, as a SYN would be retried. The peers'
  own timeouts (WebSocket heartbeat) decide whether they give up first.
- ``"reset"`` (a NAT or modem that lost its state): every connection is aborted when the
  manual switch goes down, and a connection that sends or arrives while the link is down
  is aborted (scheduled windows act on the next traffic).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Literal

from tests.rigs.impair import Direction, Impairment, LinkState

Addr = tuple[str, int]
CHUNK = 65536


class TcpProxy:
    def __init__(
        self,
        target: Addr,
        forward: Impairment | None = None,
        back: Impairment | None = None,
        *,
        link: LinkState | None = None,
        listen: Addr = ("127.0.0.1", 0),
        clock: Callable[[], float] | None = None,
        on_outage: Literal["hold", "reset"] = "hold",
    ) -> None:
        self.target, self.listen, self.on_outage = target, listen, on_outage
        self.link = link if link is not None else LinkState()
        self.forward_imp = forward or Impairment(reorder=False)
        self.back_imp = back or Impairment(reorder=False, seed=1)
        self.clock = clock
        self.accepted = 0
        self.resets = 0
        self.read = {"forward": 0, "back": 0}  # bytes read from each side's sender
        self.bytes = {"forward": 0, "back": 0}  # bytes delivered to each side's receiver
        self._changed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._up = asyncio.Event()
        self._up.set()

    @property
    def address(self) -> Addr:
        assert self._server is not None, "start() first"
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def start(self) -> TcpProxy:
        self.clock = self.clock or asyncio.get_running_loop().time
        self.link.watchers.append(self._switched)
        self._server = await asyncio.start_server(self._accept, *self.listen)
        return self

    async def close(self) -> None:
        if self._switched in self.link.watchers:
            self.link.watchers.remove(self._switched)
        if self._server is not None:
            self._server.close()
        self._abort_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait until ``predicate()`` holds after some bytes were read or delivered;
        TimeoutError if not within ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    # -- driver ------------------------------------------------------------------------

    def _now(self) -> float:
        assert self.clock is not None
        return self.clock()

    def _switched(self, down: bool) -> None:
        if down:
            self._up.clear()
            if self.on_outage == "reset":
                self._abort_all()
        else:
            self._up.set()

    def _abort_all(self) -> None:
        for w in list(self._writers):
            w.transport.abort()
        self.resets += len(self._writers)
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.accepted += 1
        # Cancelled only by close(); ending quietly then, because asyncio's streams callback
        # calls exception() on this task and logs a cancelled one as an error.
        with contextlib.suppress(asyncio.CancelledError):
            await self._serve(reader, writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.on_outage == "reset" and self.link.is_down(self._now()):
            self.resets += 1
            writer.transport.abort()
            return
        await self._wait_up()
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        fwd = Direction(self.forward_imp, self.link)
        back = Direction(self.back_imp, self.link)
        try:
            await asyncio.gather(
                self._pump(reader, up_writer, fwd, "forward"),
                self._pump(up_reader, writer, back, "back"),
            )
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.close()

    async def _wait_up(self) -> None:
        while True:
            up = self.link.up_at(self._now())
            if up is None:
                await self._up.wait()
                continue
            if up <= self._now():
                return
            await asyncio.sleep(up - self._now())

    async def _pump(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        direction: Direction,
        name: str,
    ) -> None:
        queue: asyncio.Queue[tuple[float | None, bytes]] = asyncio.Queue()
        writer = asyncio.create_task(self._deliver(queue, dst, direction, name))
        try:
            while True:
                try:
                    data = await src.read(CHUNK)
                except (ConnectionError, OSError):
                    data = b""
                now = self._now()
                if data and self.on_outage == "reset" and self.link.is_down(now):
                    self.resets += 1
                    dst.transport.abort()
                    break
                queue.put_nowait((direction.chunk(now), data))
                self.read[name] += len(data)
                self._changed.set()
                if not data:
                    break
            await writer
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _deliver(
        self,
        queue: asyncio.Queue[tuple[float | None, bytes]],
        dst: asyncio.StreamWriter,
        direction: Direction,
        name: str,
    ) -> None:
        while True:
            at, data = await queue.get()
            while at is None:  # stamped while the manual switch was down
                await self._up.wait()
                at = direction.chunk(self._now())
            wait = at - self._now()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if dst.can_write_eof() and not dst.transport.is_closing():
                    with contextlib.suppress(OSError):  # the peer has gone already
                        dst.write_eof()
                return
            if dst.transport.is_closing():
                return
            dst.write(data)
            self.bytes[name] += len(data)
            self._changed.set()
            try:
                await dst.drain()
            except (ConnectionError, OSError):
                return
