"""One impaired link in front of a relay: its WebSocket and its UDP media, one outage switch.

An endpoint reaches the relay's UDP port on the host of its relay URL (the port comes in the
relay's welcome), so the proxies listen on another loopback address, ``127.0.0.2`` by
default, with the UDP proxy on the relay's own UDP port number; the endpoint is given
:meth:`ImpairedLink.url` instead of the relay's URL. Everything stays on 127.0.0.0/8.

``up`` impairs endpoint → relay, ``down`` relay → endpoint; both apply to UDP datagrams (delay,
jitter, loss) and to the WebSocket stream (delay and jitter only: TCP does not lose bytes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from tests.rigs.impair import Impairment, LinkState
from tests.rigs.tcp_proxy import TcpProxy
from tests.rigs.udp_proxy import UdpProxy

Addr = tuple[str, int]


class ImpairedLink:
    def __init__(
        self,
        relay_ws: Addr,
        relay_udp: Addr | None,
        *,
        up: Impairment | None = None,
        down: Impairment | None = None,
        host: str = "127.0.0.2",
        on_outage: Literal["hold", "reset"] = "hold",
        clock: Callable[[], float] | None = None,
    ) -> None:
        up = up or Impairment()
        down = down or Impairment(seed=1)
        self.link = LinkState()
        self.ws = TcpProxy(
            relay_ws,
            replace(up, loss=0.0, reorder=False, seed=up.seed + 100),
            replace(down, loss=0.0, reorder=False, seed=down.seed + 100),
            link=self.link,
            listen=(host, 0),
            clock=clock,
            on_outage=on_outage,
        )
        self.udp: UdpProxy | None = None
        if relay_udp is not None:
            self.udp = UdpProxy(
                relay_udp, up, down, link=self.link, listen=(host, relay_udp[1]), clock=clock
            )

    async def start(self) -> ImpairedLink:
        await self.ws.start()
        if self.udp is not None:
            try:
                await self.udp.start()
            except BaseException:
                await self.ws.close()
                raise
        return self

    async def close(self) -> None:
        if self.udp is not None:
            await self.udp.close()
        await self.ws.close()

    async def __aenter__(self) -> ImpairedLink:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def url(self, relay_url: str) -> str:
        """``relay_url`` with its host and port replaced by the WebSocket proxy's."""
        parts = urlsplit(relay_url)
        host, port = self.ws.address
        return urlunsplit(parts._replace(netloc=f"{host}:{port}"))

    def set_down(self) -> None:
        self.link.set_down()

    def set_up(self) -> None:
        self.link.set_up()

    def schedule_outage(self, start: float, duration: float) -> None:
        """Down from ``start`` for ``duration`` seconds, on the proxies' clock."""
        self.link.schedule(start, duration)

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """The link is down inside the block (manual switch), up again after it."""
        self.set_down()
        try:
            yield
        finally:
            self.set_up()
