"""The relay's own UDP socket: read in batches of at most 64 datagrams per wake-up on both
event loops, and a copy the kernel refuses is dropped and counted, never queued."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import pytest
import uvloop

from bridge.relay.core import RelayCore
from bridge.relay.memory_store import MemoryStore
from bridge.relay.server import RelayServer
from bridge.relay.udp import BATCH, UdpPort
from bridge.wire.media import udp_down_mac
from tests.bridge.relay.helpers import NullAudit
from tests.world import make_world

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


class RefusingSocket:
    """Stands in for the UDP socket: every copy hits a full send buffer or an error."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real
        self.sent = 0

    def sendto(self, data: bytes, addr: Any) -> int:
        self.sent += 1
        if self.sent % 2:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        raise OSError(101, "Network is unreachable")

    def close(self) -> None:
        self.real.close()


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_datagrams_are_read_in_bounded_batches(loop_name: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        got: list[bytes] = []
        port = UdpPort.open("127.0.0.1", 0, loop, lambda d, a: got.append(d), lambda: None)
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sent = [i.to_bytes(2, "big") for i in range(100)]
            for data in sent:  # all queued before the loop gets to look at the socket
                client.sendto(data, ("127.0.0.1", port.port))
            port._readable()  # one wake-up reads one batch, not the whole queue
            assert len(got) == BATCH == 64
            async with asyncio.timeout(5):  # the loop's reader drains the rest
                while len(got) < len(sent):
                    await asyncio.sleep(0)
            assert got == sent
        finally:
            client.close()
            port.close()

    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        runner.run(main())


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_refused_copies_are_dropped_and_counted(loop_name: str) -> None:
    async def main() -> None:
        core = RelayCore(make_world().trust, MemoryStore(), NullAudit())
        server = RelayServer(core, host="127.0.0.1", port=0, udp_port=0)
        await server.start()
        try:
            assert server._udp is not None
            real = server._udp.sock
            fake = RefusingSocket(real)
            server._udp.sock = fake  # type: ignore[assignment]
            mac = udp_down_mac(b"k" * 32)
            listeners = [(("127.0.0.1", port), mac) for port in (9, 10, 11)]
            server._fan_out(7, b"\x00" * 40, listeners, [])  # must not raise
            assert fake.sent == 3
            dropped = server.registry.get_sample_value("crossband_udp_send_dropped_total")
            assert dropped == 3
            assert core.metrics.dropped["udp-send"] == 3
        finally:
            await server.stop()

    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        runner.run(main())
