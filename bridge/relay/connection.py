"""One WebSocket connection's bounded send queue, written by a task of its own.

The core's answers are queued here without waiting: nobody's handling ever awaits another
member's socket. A writer task per connection sends the queue in order. When what is queued
for a connection (in this queue and in its transport's buffer) would pass ``limit`` bytes,
the member is not reading: it is dropped (closed with ``slow-reader``) instead of holding
memory and everybody else's answers. Voice to it is skipped well before that (see
:meth:`bridge.relay.server.RelayServer._fan_out`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from aiohttp import web

from bridge.wire import control as p

log = logging.getLogger("crossband.relay")

CLOSE_TIMEOUT = 1.0  # seconds a closing handshake may take before the socket is aborted
CLOSE_DEADLINE = 5.0  # seconds from a close decision to an abort, whatever is still queued


class Connection:
    def __init__(
        self,
        sid: int,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
        limit: int,
        on_slow: Callable[[int], None],
    ) -> None:
        self.sid = sid
        self.ws = ws
        self.transport = transport
        self.limit = limit
        self._on_slow = on_slow
        self._queue: deque[str] = deque()
        self._queued = 0
        self._wake = asyncio.Event()
        self._close_code: str | None = None
        self.closing = False
        self._hangup: asyncio.Task[None] | None = None
        self._task = asyncio.get_running_loop().create_task(self._writer())

    def backlog(self) -> int:
        """Bytes waiting for this peer: in our queue and in the transport's buffer."""
        buffered = 0
        if self.transport is not None and not self.transport.is_closing():
            buffered = self.transport.get_write_buffer_size()
        return self._queued + buffered

    def send(self, message: str) -> None:
        if self.closing:
            return
        if self.backlog() + len(message) > self.limit:
            self.closing = True
            self._queue.clear()
            self._queued = 0
            self._on_slow(self.sid)
            self._hangup = asyncio.get_running_loop().create_task(
                self._hang_up(p.Codes.SLOW_READER)
            )
            return
        self._queue.append(message)
        self._queued += len(message)
        self._wake.set()

    def close(self, code: str, *, notify: bool = True) -> None:
        """Send the coded error (unless already sent), then close once everything before it
        is written."""
        if self.closing:
            return
        if notify:
            self.send(p.error(code))
        self._close_code = code
        self.closing = True
        self._wake.set()
        # A peer too slow to take even that is cut off rather than kept.
        asyncio.get_running_loop().call_later(CLOSE_DEADLINE, self._abort)

    def _abort(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    async def _writer(self) -> None:
        ws = self.ws
        try:
            while True:
                while self._queue:
                    message = self._queue.popleft()
                    self._queued -= len(message)
                    await ws.send_str(message)
                if self._close_code is not None:
                    await self._hang_up(self._close_code)
                    return
                if self.closing:
                    return
                self._wake.clear()
                await self._wake.wait()
        except (ConnectionError, RuntimeError):
            return  # the peer went away; the reader ends the session

    async def shutdown(self) -> None:
        """The relay is stopping: close with 1001, abort if the peer does not answer."""
        self.stop()
        await self._hang_up("relay shutting down", 1001)

    async def _hang_up(self, reason: str, ws_code: int = 4000) -> None:
        await hang_up(self.ws, self.transport, reason, ws_code)

    def stop(self) -> None:
        self._task.cancel()


async def hang_up(
    ws: web.WebSocketResponse, transport: asyncio.Transport | None, reason: str, code: int = 4000
) -> None:
    """Close ``ws`` with ``code``; if the peer does not answer in time, abort the socket."""
    try:
        await asyncio.wait_for(ws.close(code=code, message=reason.encode()), CLOSE_TIMEOUT)
    except (TimeoutError, ConnectionError, RuntimeError):
        pass
    if transport is not None and not transport.is_closing():
        transport.abort()
