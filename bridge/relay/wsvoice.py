"""WebSocket voice out of the relay: one ``write`` per listener per loop pass.

The relay builds each downstream frame once (an unmasked binary WebSocket frame: compression
is off on these connections, so the same bytes are valid for every listener) and
:meth:`WsVoice.queue` gathers, during one loop pass, every frame for each listener;
:meth:`WsVoice.flush` (armed with ``call_soon``) writes each listener's frames with one
``write`` — one ``send`` system call instead of one per frame (measured: ~4x the WebSocket
frames per core, docs/benchmarks.md). aiohttp writes its own frames synchronously too, so
frames never interleave. A listener whose buffered plus gathered voice passes
:data:`WS_BACKLOG` loses the frame (counted ``ws-backlog``): a stalled listener loses voice,
and its control queue drops it if it stays so (:mod:`bridge.relay.connection`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bridge.relay.metrics import Metrics

WS_BACKLOG = 256 * 1024  # bytes queued to a WebSocket listener before its voice is skipped


@dataclass(slots=True)
class _Pending:
    """One listener's frames gathered during this loop pass."""

    transport: asyncio.Transport
    room: int  # bytes it may still take before WS_BACKLOG; negative: later frames skipped
    frames: list[bytes]


class WsVoice:
    def __init__(self, loop: asyncio.AbstractEventLoop, metrics: Metrics) -> None:
        self._loop = loop
        self._metrics = metrics
        self._transports: dict[int, asyncio.Transport] = {}
        self._pending: dict[int, _Pending] = {}
        self._flush: asyncio.Handle | None = None

    def transport(self, sid: int, transport: asyncio.Transport | None) -> None:
        """The session's socket (None: it is gone)."""
        if transport is None:
            self._transports.pop(sid, None)
        else:
            self._transports[sid] = transport

    def queue(self, data: bytes, listeners: list[int]) -> None:
        pending = self._pending
        if not pending:
            self._flush = self._loop.call_soon(self.flush)
        size = len(data)
        for sid in listeners:
            entry = pending.get(sid)
            if entry is None:
                transport = self._transports.get(sid)
                if transport is None or transport.is_closing():
                    continue
                room = WS_BACKLOG - transport.get_write_buffer_size()
                if room < 0:
                    self._metrics.drop("ws-backlog")
                    continue
                pending[sid] = _Pending(transport, room - size, [data])
            elif entry.room < 0:
                self._metrics.drop("ws-backlog")
            else:
                entry.room -= size
                entry.frames.append(data)

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        self._flush = None
        for entry in pending.values():
            if entry.transport.is_closing():
                continue
            frames = entry.frames
            entry.transport.write(frames[0] if len(frames) == 1 else b"".join(frames))

    def stop(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush, self._pending = None, {}
