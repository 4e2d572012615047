"""An event loop inside a test's namespace: sockets that code running on it creates live in
the namespace (they can bind its address, which the host does not have, and the namespace's
drop rules apply to them), results and exceptions come back to the caller's loop, and
cancelling the caller cancels the coroutine there."""

from __future__ import annotations

import asyncio
import socket

import pytest

from tests.rigs import netns
from tests.rigs.netns import lossy_namespace
from tests.rigs.netns_loop import NamespaceLoop
from tests.rigs.tools import skip_unavailable

PORT = 40000


@pytest.fixture(autouse=True)
def available() -> None:
    with skip_unavailable():
        netns.check_available()


class Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.got.put_nowait(data)


async def test_sockets_made_on_the_loop_live_in_the_namespace() -> None:
    with (
        lossy_namespace(loss_in=100, match=f"udp dport {PORT + 1}") as ns,
        NamespaceLoop(ns) as inside,
    ):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as host:
            with pytest.raises(OSError):  # the host has no such address
                host.bind((ns.ns_addr, PORT))

            async def listen(port: int) -> tuple[asyncio.DatagramTransport, Inbox]:
                loop = asyncio.get_running_loop()
                t, proto = await loop.create_datagram_endpoint(Inbox, local_addr=(ns.ns_addr, port))
                return t, proto

            (t1, kept), (t2, _dropped) = [await inside.run(listen(p)) for p in (PORT, PORT + 1)]
            try:
                host.sendto(b"one", (ns.ns_addr, PORT))
                host.sendto(b"two", (ns.ns_addr, PORT + 1))  # the rule drops every one
                assert await inside.run(asyncio.wait_for(kept.got.get(), 5.0)) == b"one"
                await inside.call(lambda: None)
                assert ns.dropped() == {"in": 1, "out": 0}
            finally:
                await inside.call(t1.close)
                await inside.call(t2.close)


async def test_results_exceptions_and_cancellation_cross_the_threads() -> None:
    with lossy_namespace() as ns, NamespaceLoop(ns) as inside:
        assert await inside.call(lambda: 6 * 7) == 42

        async def fail() -> None:
            raise ValueError("inside")

        with pytest.raises(ValueError, match="inside"):
            await inside.run(fail())

        cancelled: list[bool] = []

        async def forever() -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        task = asyncio.ensure_future(inside.run(forever()))
        await inside.call(lambda: None)  # forever() has started over there
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with asyncio.timeout(5.0):  # the cancellation reaches it there
            while not await inside.call(lambda: bool(cancelled)):
                await asyncio.sleep(0.01)
        assert cancelled == [True]
