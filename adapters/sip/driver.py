"""Thin asyncio UDP driver for the sans-IO :class:`~adapters.sip.ua.UserAgent`.

It only moves datagrams and arms the one timer the core asks for (``get_timer``); every
decision is in the core. Calls made on the core through the driver (:meth:`answer`,
:meth:`hangup`, :meth:`invite`) are flushed at once. Events go to ``on_event`` in order; a
failing handler is logged by type and counted, never lets the socket die. Datagrams and
errors are never logged with their content.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from adapters.errors import AdapterError
from adapters.sip.events import UaEvent
from adapters.sip.ua import UserAgent

__all__ = ["SipDriver"]

log = logging.getLogger(__name__)
Addr = tuple[str, int]


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, driver: SipDriver) -> None:
        self.driver = driver

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self.driver._datagram(data, addr)  # noqa: SLF001

    def error_received(self, exc: Exception) -> None:
        log.warning("sip: socket error %s", type(exc).__name__)
        self.driver.errors += 1


class SipDriver:
    """One UDP socket for one :class:`UserAgent` (module docstring)."""

    def __init__(self, ua: UserAgent, on_event: Callable[[UaEvent], None]) -> None:
        self.ua = ua
        self.errors = 0
        self._on_event = on_event
        self._transport: asyncio.DatagramTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        cfg = self.ua.config
        try:
            self._transport, _ = await self._loop.create_datagram_endpoint(
                lambda: _Protocol(self), local_addr=(cfg.host, cfg.port)
            )
        except OSError as exc:
            raise AdapterError(f"cannot listen for SIP on {cfg.host}:{cfg.port}: {exc.strerror}")
        self.ua.port = int(self._transport.get_extra_info("sockname")[1])

    @property
    def local_address(self) -> Addr:
        return self.ua.local

    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _datagram(self, data: bytes, addr: Addr) -> None:
        self.ua.receive_datagram(data, (str(addr[0]), int(addr[1])), self.now())
        self.flush()

    def _on_timer(self) -> None:
        self._timer = None
        self.ua.handle_timer(self.now())
        self.flush()

    def flush(self) -> None:
        """Send what the core queued, hand on its events, re-arm its timer."""
        for data, addr in self.ua.datagrams_to_send():
            if self._transport is None:
                break
            try:
                self._transport.sendto(data, addr)
            except OSError as exc:
                log.warning("sip: send failed: %s", type(exc).__name__)
                self.errors += 1
        for event in self.ua.events_received():
            try:
                self._on_event(event)
            except Exception as exc:  # a consumer bug must not kill the socket
                log.error("sip: event handler failed: %s", type(exc).__name__)
                self.errors += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        when = self.ua.get_timer()
        if when is not None and self._loop is not None and self._transport is not None:
            self._timer = self._loop.call_at(when, self._on_timer)

    def answer(self, call_id: str, rtp: Addr) -> None:
        self.ua.answer(call_id, rtp, self.now())
        self.flush()

    def ring(self, call_id: str) -> None:
        self.ua.ring(call_id, self.now())
        self.flush()

    def reject(self, call_id: str, status: int) -> None:
        self.ua.reject(call_id, status, self.now())
        self.flush()

    def hangup(self, call_id: str) -> None:
        self.ua.hangup(call_id, self.now())
        self.flush()

    def invite(self, target: str, dest: Addr, rtp: Addr) -> str:
        call_id = self.ua.invite(target, dest, rtp, self.now())
        self.flush()
        return call_id

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
