"""Thin asyncio UDP drivers for :class:`RtpReceiver` and :class:`RtpSender`.

They only move datagrams and arm timers; every decision is in :mod:`adapters.rtp.stream`.
Unicast or IPv4 multicast (the receiver joins the group with ``IP_ADD_MEMBERSHIP`` on the
configured interface; the sender sets ``IP_MULTICAST_IF``/``TTL`` and keeps loopback on).
Socket errors are counted in ``errors`` and logged by type only — never with content.

A timer that fires late (this process was not scheduled: a busy host, a long garbage
collection) first reads what is waiting in the socket, up to ``DRAIN_MAX`` datagrams: asyncio
hands a datagram transport one datagram per loop turn, so without that the receiver would
conceal frames whose packets had already come and sit in the socket buffer, then play them
too (a stalled host adding frames to the transmission).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable

from adapters.errors import AdapterError
from adapters.rtp.stream import RtpEvent, RtpReceiver, RtpSender, RtpTransportConfig

__all__ = ["DRAIN_MAX", "RtpReceiverDriver", "RtpSenderDriver"]

log = logging.getLogger(__name__)

DRAIN_MAX = 64  # datagrams read at once when a timer fires late
LATE = 0.005  # seconds after its deadline that a timer counts as late


class _Protocol(asyncio.DatagramProtocol):
    def __init__(
        self, on_datagram: Callable[[bytes, tuple[str, int]], None], on_error: Callable[[], None]
    ) -> None:
        self._on_datagram = on_datagram
        self._on_error = on_error

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.warning("rtp: socket error %s", type(exc).__name__)
        self._on_error()


def _multicast_receive_socket(cfg: RtpTransportConfig) -> socket.socket:
    assert cfg.group is not None
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((cfg.group, cfg.port))  # Linux: only datagrams sent to the group
        membership = socket.inet_aton(cfg.group) + socket.inet_aton(cfg.interface)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _unicast_receive_socket(cfg: RtpTransportConfig) -> socket.socket:
    family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((cfg.host, cfg.port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class RtpReceiverDriver:
    """Feeds datagrams from a UDP socket into an :class:`RtpReceiver`; events go to a callback."""

    def __init__(
        self,
        receiver: RtpReceiver,
        transport: RtpTransportConfig,
        on_event: Callable[[RtpEvent], None],
    ) -> None:
        self.receiver = receiver
        self.transport_config = transport
        self.errors = 0
        self.drained = 0  # datagrams read by a late timer (module docstring)
        self._on_event = on_event
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        self._due: float | None = None  # when the armed timer was due

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        cfg = self.transport_config
        protocol = _Protocol(self._datagram, self._error)
        try:
            if cfg.group is not None:
                sock = _multicast_receive_socket(cfg)
            else:
                sock = _unicast_receive_socket(cfg)
            self._transport, _ = await self._loop.create_datagram_endpoint(
                lambda: protocol, sock=sock
            )
        except OSError as exc:
            raise AdapterError(f"cannot listen for RTP on port {cfg.port}: {exc.strerror}")
        self._sock = sock

    @property
    def local_address(self) -> tuple[str, int]:
        if self._transport is None:
            raise AdapterError("driver not started")
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def _error(self) -> None:
        self.errors += 1

    def _datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self._loop is not None
        now = self._loop.time()
        if self._late(now):
            self.receiver.receive_datagrams([(data, addr), *self._waiting()], now)
        else:
            self.receiver.receive_datagram(data, addr, now)
        self._dispatch()

    def _on_timer(self) -> None:
        assert self._loop is not None
        self._timer = None
        now = self._loop.time()
        if self._late(now) and (waiting := self._waiting()):
            self.receiver.receive_datagrams(waiting, now)
        self.receiver.handle_timer(now)
        self._dispatch()

    def _late(self, now: float) -> bool:
        return self._due is not None and now - self._due > LATE

    def _waiting(self) -> list[tuple[bytes, tuple[str, int]]]:
        """The datagrams that came while this process was not scheduled (module docstring)."""
        found: list[tuple[bytes, tuple[str, int]]] = []
        sock = self._sock
        while sock is not None and len(found) < DRAIN_MAX:
            try:
                data, addr = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._error()
                break
            found.append((data, addr))
        self.drained += len(found)
        return found

    def _dispatch(self) -> None:
        for event in self.receiver.events_received():
            try:
                self._on_event(event)
            except Exception as exc:  # a consumer bug must not kill the socket
                log.error("rtp: event handler failed: %s", type(exc).__name__)
                self.errors += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        when = self._due = self.receiver.get_timer()
        if when is not None and self._loop is not None and self._transport is not None:
            self._timer = self._loop.call_at(when, self._on_timer)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
            self._sock = None


class RtpSenderDriver:
    """Sends what an :class:`RtpSender` produces: RTP to ``port``, RTCP to ``port + 1``."""

    def __init__(
        self,
        sender: RtpSender,
        transport: RtpTransportConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sender = sender
        self.transport_config = transport
        self.errors = 0
        self._clock = clock
        self._transport: asyncio.DatagramTransport | None = None
        dest = transport.group or transport.host
        self._rtp_addr = (dest, transport.port)
        self._rtcp_addr = (dest, transport.port + 1)
        self._timer: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.transport_config
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if cfg.group is not None:
                iface = socket.inet_aton(cfg.interface)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, iface)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, cfg.ttl)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            sock.setblocking(False)
            protocol = _Protocol(lambda data, addr: None, self._error)
            self._transport, _ = await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
        except OSError as exc:
            sock.close()
            raise AdapterError(f"cannot open an RTP sending socket: {exc.strerror}")

    def _error(self) -> None:
        self.errors += 1

    def start_burst(self) -> None:
        self.sender.start_burst(self._clock())

    def send_audio(self, pcm: bytes, *, at: float | None = None) -> None:
        """One 20 ms frame; ``at``: its frame period's due time (adapters.base.Adapter.play)."""
        self.sender.send_audio(pcm, self._clock(), media=at)
        self._flush()
        self._arm()

    def end_burst(self) -> None:
        self.sender.end_burst(self._clock())
        self._flush()
        self._arm()

    def _arm(self) -> None:
        # The sender's timer is on the wall clock it is given; arm it as a delay.
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        when = self.sender.get_timer()
        if when is not None and self._transport is not None:
            delay = max(when - self._clock(), 0.0)
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.sender.handle_timer(self._clock())
        self._flush()
        self._arm()

    def _flush(self) -> None:
        for kind, data in self.sender.datagrams_to_send():
            if self._transport is None:
                continue
            try:
                self._transport.sendto(data, self._rtp_addr if kind == "rtp" else self._rtcp_addr)
            except OSError as exc:
                log.warning("rtp: send failed: %s", type(exc).__name__)
                self.errors += 1

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
