"""Kernel-level loss in a namespace the test creates: the input-hook rule drops about the
configured fraction (binomial bounds) and exactly what its counter says, the egress rule
drops silently, the namespace and veth pair are gone afterwards, and a broken rule is a
failure, not a skip. Skips only where ``ip``/``nft`` or root is missing."""

from __future__ import annotations

import asyncio
import math
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from tests.rigs import netns
from tests.rigs.netns import NetnsError, lossy_namespace
from tests.rigs.tools import skip_unavailable

DATA, MARK = 40000, 40001  # ports inside the fresh namespace (nothing else is there)


@pytest.fixture(autouse=True)
def available() -> None:
    with skip_unavailable():
        netns.check_available()


def binomial_ok(dropped: int, n: int, pct: int, sigmas: float = 4.5) -> bool:
    p = pct / 100
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    return mean - sigmas * sd <= dropped <= mean + sigmas * sd


def count_through(
    sender: socket.socket, data: socket.socket, mark: socket.socket, to: str, n: int
) -> set[int]:
    """Send ``n`` numbered datagrams to port DATA at ``to`` in batches of 50; after each batch
    a marker to port MARK (not matched by the rule) says the batch has passed (a deadline:
    socket.timeout fails the test). Returns the numbers that arrived on ``data``."""
    got: set[int] = set()
    data.settimeout(0)
    mark.settimeout(5.0)
    for start in range(0, n, 50):
        for i in range(start, min(n, start + 50)):
            sender.sendto(i.to_bytes(4, "big"), (to, DATA))
        sender.sendto(b"mark", (to, MARK))
        assert mark.recv(16) == b"mark"
        while True:
            try:
                got.add(int.from_bytes(data.recv(16), "big"))
            except BlockingIOError:
                break
    return got


@contextmanager
def receivers(
    make: Callable[[], socket.socket], addr: str
) -> Iterator[tuple[socket.socket, socket.socket]]:
    """A data socket on DATA and a marker socket on MARK at ``addr``, closed afterwards."""
    with make() as data, make() as mark:
        data.bind((addr, DATA))
        mark.bind((addr, MARK))
        yield data, mark


def udp() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def test_input_hook_drops_the_configured_fraction() -> None:
    n = 2000
    with lossy_namespace(loss_in=5, match=f"udp dport {DATA}") as ns:
        with receivers(ns.socket, ns.ns_addr) as (data, mark), udp() as host:
            got = count_through(host, data, mark, ns.ns_addr, n)
        counted = ns.dropped()
    lost = n - len(got)
    assert counted == {"in": lost, "out": 0}  # the kernel's own count agrees exactly
    assert binomial_ok(lost, n, 5), lost


def test_egress_drops_leaving_the_namespace_silently() -> None:
    n = 2000
    with lossy_namespace(loss_out=10, match=f"udp dport {DATA}") as ns:
        with receivers(udp, ns.host_addr) as (data, mark), ns.socket() as inside:
            got = count_through(inside, data, mark, ns.host_addr, n)  # sendto() never fails
        counted = ns.dropped()
    lost = n - len(got)
    assert counted == {"in": 0, "out": lost}
    assert binomial_ok(lost, n, 10), lost


def test_no_rule_no_loss_and_set_loss_changes_it() -> None:
    with lossy_namespace(match=f"udp dport {DATA}") as ns:
        with receivers(ns.socket, ns.ns_addr) as (data, mark), udp() as host:
            assert len(count_through(host, data, mark, ns.ns_addr, 500)) == 500
            ns.set_loss(loss_in=100)
            assert count_through(host, data, mark, ns.ns_addr, 100) == set()


def test_namespace_and_veth_are_removed() -> None:
    with lossy_namespace(loss_in=1) as ns:
        assert ns.name in run(["ip", "netns", "list"])
        assert ns.host_if in run(["ip", "-o", "link", "show"])
    assert ns.name not in run(["ip", "netns", "list"])
    assert ns.host_if not in run(["ip", "-o", "link", "show"])
    assert ns.host_addr not in run(["ip", "-o", "-4", "addr", "show"])


def test_a_broken_rule_fails_and_still_cleans_up() -> None:
    names_before = run(["ip", "netns", "list"])
    with pytest.raises(NetnsError, match="nft"):
        with lossy_namespace(loss_in=5, match="no such expression"):
            pass
    assert run(["ip", "netns", "list"]) == names_before


def test_loss_outside_percent_is_refused() -> None:
    with lossy_namespace() as ns, pytest.raises(ValueError):
        ns.set_loss(loss_in=101)


def run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


async def test_asyncio_adopts_a_namespace_socket_and_argv_runs_inside() -> None:
    with lossy_namespace() as ns:
        out = run(ns.argv(["ip", "-o", "-4", "addr", "show"]))
        assert f"{ns.ns_addr}/30" in out and ns.host_addr not in out  # we are inside

        got: asyncio.Queue[bytes] = asyncio.Queue()

        class Inbox(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                got.put_nowait(data)

        sock = ns.socket()
        sock.bind((ns.ns_addr, 0))
        port = sock.getsockname()[1]
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(Inbox, sock=sock)
        try:
            with udp() as host:
                host.sendto(b"hello", (ns.ns_addr, port))
            assert await asyncio.wait_for(got.get(), 2.0) == b"hello"
        finally:
            transport.close()
