"""The bridge of :mod:`tests.links.bridge` with the vessel inside a lossy network namespace.

:func:`lossy_bridge` makes the relay (to learn its UDP port), a namespace whose nftables rules
drop ``loss`` percent of the relay's UDP entering it (relay → vessel) and of the UDP to the
relay leaving it (vessel → relay), nothing else (the vessel's radio side is on the namespace's
own loopback and keeps all its packets), an event loop inside it for the vessel's endpoint and
gateway, and the bridge with its link forwarder on the veth pair's host end::

    async with lossy_bridge(tmp, 5) as (bridge, ns):
        heard = await speak(bridge, wav, seconds, to_vessel=True)
        ns.dropped()  # {"in": relay → vessel, "out": vessel → relay}
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.bridge.harness import RelayProcess
from tests.links.bridge import Bridge, close_bridge, open_bridge
from tests.rigs.netns import LossyNamespace, lossy_namespace
from tests.rigs.netns_loop import NamespaceLoop
from tests.world import make_world


@asynccontextmanager
async def lossy_bridge(
    tmp: Path, loss: int, *, gateways: bool = True
) -> AsyncIterator[tuple[Bridge, LossyNamespace]]:
    world = make_world(now=int(time.time()))
    relay = RelayProcess(tmp, world)
    port = relay.udp_port
    with (
        lossy_namespace(
            loss, loss, match_in=f"udp sport {port}", match_out=f"udp dport {port}"
        ) as ns,
        NamespaceLoop(ns) as inside,
    ):
        b = await open_bridge(
            tmp, inside=inside, link_host=ns.host_addr, relay=relay, world=world, gateways=gateways
        )
        try:
            yield b, ns
        finally:
            await close_bridge(b)
