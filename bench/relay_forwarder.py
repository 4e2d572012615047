"""The bare UDP forwarder process, the reference every relay figure is compared with: receive
a datagram, ``sendto`` each sink (``bench/relay_bench.py --forwarder PORTS`` runs it)."""

from __future__ import annotations

import asyncio
import os
import sys

# -- the bare forwarder ------------------------------------------------------------------------


class _Forwarder(asyncio.DatagramProtocol):
    """Receive a datagram, send it to each sink. ``STATS<tag>`` returns the input count."""

    def __init__(self, sinks: list[tuple[str, int]]) -> None:
        self.sinks = sinks
        self.n = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        if data.startswith(b"STATS"):  # b"STATS<tag>" -> b"<tag> <count>"
            self.transport.sendto(data[5:] + b" " + str(self.n).encode(), addr)
            return
        self.n += 1
        sendto = self.transport.sendto
        for sink in self.sinks:
            sendto(data, sink)


async def _forward(sinks: list[tuple[str, int]]) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Forwarder(sinks), local_addr=("127.0.0.1", 0)
    )
    print(transport.get_extra_info("sockname")[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    transport.close()


def forwarder_main(ports: str) -> None:
    """The forwarder process; ``CROSSBAND_BENCH_LOOP=uvloop`` runs it on uvloop's loop."""
    if os.environ.get("CROSSBAND_BENCH_LOOP") == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(_forward([("127.0.0.1", int(x)) for x in ports.split(",")]))
