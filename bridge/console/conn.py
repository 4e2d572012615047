"""One browser's WebSocket to the console: what it holds and hears.

A :class:`Connection` keeps the channel its push-to-talk holds (one at a time), the channels it
muted, and a bounded queue of playout frames (:func:`~bridge.console.audio.listen_frame`) for
its socket: a browser that cannot keep up loses the oldest frames (counted), it never makes the
console's playout wait.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from bridge.console.audio import listen_frame

__all__ = ["MAX_QUEUED", "Connection"]

MAX_QUEUED = 25  # frames (0.5 s of one channel) waiting for a slow socket


@dataclass
class Connection:
    held: str | None = None  # the channel push-to-talk is held on
    muted: set[str] = field(default_factory=set)
    dropped: int = 0  # playout frames lost to a slow socket
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(MAX_QUEUED))

    def listener(self, channel: str, pcm: bytes) -> None:
        """A listener for :attr:`ConsoleAudio.listeners`: the frame, unless muted."""
        if channel in self.muted:
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(listen_frame(channel, pcm))

    async def send_audio(self, ws: web.WebSocketResponse) -> None:
        """Until the socket closes: the queued playout frames, as binary messages."""
        try:
            while not ws.closed:
                await ws.send_bytes(await self.queue.get())
        except ConnectionError:
            return
