"""Two dispatch consoles on a real relay process on loopback, for the browser tests.

``us-cbp/dispatch-1`` (console A, user ``ana``) and ``ca-rcmp/dispatch-2`` (console B, user
``ben``) are real endpoints in one incident channel that A opened under the world's agreement;
each serves its console on 127.0.0.1 (an ephemeral port). ``ca-rcmp/gw-sarnia`` is an RTP
gateway in the same channel (L16 in from a radio process, L16 out to :class:`RtpCollector`).
Chromium is Debian's, driven by Playwright; a machine without it skips, and fails in CI
(tests/rigs/tools.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.console.auth import Sessions, hash_password
from bridge.console.incident import IncidentDesk
from bridge.console.service import ConsoleService
from bridge.console.state import ConsoleState
from bridge.console.web import ConsoleWeb
from bridge.endpoint import events as ev
from bridge.endpoint.endpoint import Endpoint
from bridge.gateway import Gateway
from tests.adapters.gateway_rig import RtpCollector, input_address, open_collector, rtp_gateway
from tests.bridge.harness import RelayProcess, endpoint, next_event
from tests.rigs.tools import require_tool
from tests.world import make_world

CH = "incident-4471"
NAME = "Shiprider incident 4471"
RADIO = "Sarnia marine radio"
PASSWORDS = {"ana": "ana's long passphrase", "ben": "ben's long passphrase"}
CHROMIUM = "/usr/bin/chromium"


@dataclass
class Console:
    user: str
    endpoint: Endpoint
    service: ConsoleService
    web: ConsoleWeb
    url: str = ""


@dataclass
class ConsoleRig:
    relay: RelayProcess
    consoles: list[Console] = field(default_factory=list)
    radio: Endpoint | None = None  # ca-rcmp/gw-sarnia, an RTP gateway in the channel
    gateway: Gateway | None = None
    collector: RtpCollector | None = None  # the radio behind it: what the gateway sends out

    async def close(self) -> None:
        try:
            for c in self.consoles:
                await c.web.stop()
                await c.service.stop()
                await c.endpoint.stop()
            if self.gateway is not None:
                await self.gateway.stop()
            if self.radio is not None:
                await self.radio.stop()
            if self.collector is not None:
                self.collector.close()
        finally:
            self.relay.stop()

    @property
    def radio_input(self) -> int:
        """The UDP port the RTP gateway takes its radio's RTP on."""
        assert self.gateway is not None
        return input_address(self.gateway, CH)[1]


L16 = {"name": "l16", "pt": 97, "clock_rate": 16000}


def rtp_section(out_port: int) -> dict[str, Any]:
    """The RTP gateway's mapping: L16 in and out at 16 kHz, Opus between endpoints."""
    return {
        "rate": 16000,
        "channels": [
            {
                "channel": CH,
                "codec": "opus",
                "input": {"port": 0, "payload": L16, "hang_time": 0.25},
                "output": {"port": out_port, "payload": L16, "rtcp_interval": None},
            }
        ],
    }


def chromium() -> str:
    require_tool("chromium")
    return CHROMIUM


async def open_consoles(tmp: Path) -> ConsoleRig:
    world = make_world(now=int(time.time()))
    a = world.device("us-cbp", "dispatch-1", ("dispatcher", "member"), alias="Blaine dispatch")
    b = world.device("ca-rcmp", "dispatch-2", ("dispatcher", "member"), alias="Surrey dispatch")
    gw = world.device("ca-rcmp", "gw-sarnia", ("member",), kind="radio-gateway", alias=RADIO)
    relay = RelayProcess(tmp, world)
    relay.start()
    rig = ConsoleRig(relay)
    try:
        eps = [await endpoint(relay, world, d, tmp) for d in (a, b)]
        rig.radio = await endpoint(relay, world, gw, tmp)
        rig.collector = await open_collector()
        rig.gateway = rtp_gateway(rig.radio, rtp_section(rig.collector.port))
        for user, ep in zip(PASSWORDS, eps, strict=True):
            desk = IncidentDesk(ep, [world.agreement], [a.cred, b.cred, gw.cred])
            service = ConsoleService(ep, desk=desk)
            await service.start()
            users = {user: hash_password(PASSWORDS[user], log_n=12)}
            web = ConsoleWeb(service, users, Sessions())
            rig.consoles.append(Console(user, ep, service, web))
            host, port = await web.start("127.0.0.1", 0)
            rig.consoles[-1].url = f"http://{host}:{port}"
        waits = [c.service.watch() for c in rig.consoles]
        await eps[0].commit(
            CH,
            [(a.cred, "dispatcher"), (b.cred, "dispatcher"), (gw.cred, "member")],
            agreement=world.agreement,
            name=NAME,
            expires=int(time.time()) + 3600,
        )
        for c, w in zip(rig.consoles, waits, strict=True):
            await wait_state(c, w, lambda s: CH in s.channels and s.channels[CH].epoch == 1)
        await next_event(rig.radio, ev.ChannelUpdated, channel=CH, epoch=1, timeout=10)
        await rig.gateway.start()
        return rig
    except BaseException:
        await rig.close()
        raise


async def wait_state(
    c: Console,
    changed: asyncio.Event,
    cond: Callable[[ConsoleState], bool],
    timeout: float = 15.0,
) -> None:
    """Until ``cond(state)`` holds on console ``c`` (``changed``: from ``service.watch()``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond(c.service.state):
        left = deadline - loop.time()
        if left <= 0:
            raise TimeoutError(f"console {c.user}: state not reached within {timeout} s")
        changed.clear()
        try:
            await asyncio.wait_for(changed.wait(), left)
        except TimeoutError:
            pass
    c.service.unwatch(changed)
