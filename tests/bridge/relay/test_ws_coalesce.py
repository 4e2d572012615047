"""WebSocket voice is written once per listener per loop pass: the frames fanned out during a
pass are gathered and written together, and a listener whose buffered plus gathered voice
passes the backlog bound loses the frames beyond it (counted), as one written at once would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bridge.relay import wsvoice as rs
from bridge.relay.core import RelayCore
from bridge.relay.memory_store import MemoryStore
from bridge.relay.server import RelayServer
from bridge.wire import control as p
from tests.bridge.relay.helpers import NullAudit
from tests.world import make_world


class FakeTransport:
    def __init__(self, buffered: int = 0) -> None:
        self.buffered = buffered
        self.writes: list[bytes] = []

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def write(self, data: bytes) -> None:
        self.writes.append(data)


def frames(data: bytes) -> list[tuple[int, bytes]]:
    """Split written bytes into (channel number, SFrame frame) of unmasked binary frames."""
    out = []
    while data:
        assert data[0] == 0x82 and data[1] < 126
        payload, data = data[2 : 2 + data[1]], data[2 + data[1] :]
        kind, channel_no, frame = p.parse_ws_media(payload)
        assert kind == p.WS_MEDIA_DOWN
        out.append((channel_no, frame))
    return out


@pytest.fixture
async def server() -> AsyncIterator[RelayServer]:
    core = RelayCore(make_world().trust, MemoryStore(), NullAudit())
    srv = RelayServer(core, host="127.0.0.1", port=0, udp_port=None)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def attach(srv: RelayServer, transports: dict[int, FakeTransport]) -> None:
    for sid, t in transports.items():
        srv._ws_transport(sid, t)  # type: ignore[arg-type]


async def flushed(srv: RelayServer) -> None:
    async with asyncio.timeout(5):
        while srv._ws_out is not None and srv._ws_out._pending:
            await asyncio.sleep(0)


async def test_one_write_per_listener_per_pass(server: RelayServer) -> None:
    a, b = FakeTransport(), FakeTransport()
    attach(server, {1: a, 2: b})
    sent = [(7, bytes([i]) * 40) for i in range(5)] + [(8, b"\xff" * 40)]
    for channel_no, frame in sent:
        server._fan_out(channel_no, frame, [], [1, 2])
    assert a.writes == [] and b.writes == []  # gathered, not yet written
    await flushed(server)
    for t in (a, b):
        assert len(t.writes) == 1 and frames(t.writes[0]) == sent
    server._fan_out(9, b"\x01" * 40, [], [2])  # the next pass: its own write
    await flushed(server)
    assert len(a.writes) == 1 and len(b.writes) == 2 and frames(b.writes[1]) == [(9, b"\x01" * 40)]


async def test_the_backlog_bound_covers_gathered_frames(server: RelayServer) -> None:
    size = len(p.ws_media(p.WS_MEDIA_DOWN, 7, b"\x00" * 40)) + 2
    stalled = FakeTransport(rs.WS_BACKLOG + 1)
    # As when each frame was written at once: a frame is skipped once what is buffered is
    # over the bound, so this one takes three more (the third passes the bound).
    nearly = FakeTransport(rs.WS_BACKLOG - 2 * size)
    attach(server, {1: stalled, 2: nearly})
    for i in range(5):
        server._fan_out(7, bytes([i]) * 40, [], [1, 2])
    await flushed(server)
    assert stalled.writes == []
    assert [len(frames(w)) for w in nearly.writes] == [3]
    assert server.core.metrics.dropped["ws-backlog"] == 5 + 2
