"""Two RTP gateways through the real relay process, the vessel's behind a bad link.

Dispatch (``us-cbp/gw-blaine``) reaches the relay directly on 127.0.0.1. The vessel
(``ca-rcmp/gw-sarnia``) reaches it through an :class:`~tests.rigs.link.ImpairedLink` (UDP and
WebSocket proxies, one outage switch) listening on ``link_host``: 127.0.0.2 for proxy
impairments, or the host end of a test namespace's veth pair when the vessel runs inside the
namespace (``inside``: a :class:`~tests.rigs.netns_loop.NamespaceLoop`; its endpoint's and
gateway's sockets then live there, so the namespace's nftables rules act on its traffic).

Each gateway has one channel with an RTP input (a radio sends L16 16 kHz into it) and an RTP
output recorded by an :class:`RtpCollector` on its own side. :func:`speak` sends a WAV with
ffmpeg (20 ms packets, sent when due) into one gateway and returns what the other played.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from adapters.rtp.adapter import RtpAdapter
from adapters.rtp.packet import RtpPacket
from bridge.audio.receiver import MixerStats
from bridge.endpoint import events as ev
from bridge.endpoint.endpoint import Endpoint
from bridge.gateway import Gateway
from tests.adapters.gateway_rig import RtpCollector, input_address, open_collector, rtp_gateway
from tests.bridge.harness import RelayProcess, drain, endpoint, next_event, until
from tests.rigs.ffmpeg_peer import CODECS, FfmpegSender, PeerResult
from tests.rigs.impair import Impairment
from tests.rigs.link import ImpairedLink
from tests.world import World, make_world

CH = "border-ops-1"
RATE = 16000
L16 = {"name": "l16", "pt": 97, "clock_rate": RATE}
T = TypeVar("T")


class Side(Protocol):
    """Where the vessel's objects live: this event loop, or a namespace's."""

    async def run(self, coro: Coroutine[Any, Any, T]) -> T: ...

    async def call(self, fn: Callable[[], T]) -> T: ...


class HereLoop:
    """The vessel on the test's own event loop."""

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return await coro

    async def call(self, fn: Callable[[], T]) -> T:
        return fn()


@dataclass
class Bridge:
    world: World
    relay: RelayProcess
    link: ImpairedLink
    inside: Side
    dispatch: Endpoint
    vessel: Endpoint
    gw_a: Gateway | None = None  # dispatch's gateway
    gw_b: Gateway | None = None  # the vessel's gateway (on ``inside``)
    out_a: RtpCollector | None = None
    out_b: RtpCollector | None = None


def gateway_config(out_port: int) -> dict[str, Any]:
    channel = {
        "channel": CH,
        "codec": "opus",
        "input": {"port": 0, "payload": L16, "hang_time": 0.3},
        "output": {"port": out_port, "payload": L16, "rtcp_interval": None},
    }
    return {"rate": RATE, "channels": [channel]}


async def open_bridge(
    tmp: Path,
    *,
    inside: Side | None = None,
    link_host: str = "127.0.0.2",
    up: Impairment | None = None,
    down: Impairment | None = None,
    on_outage: Literal["hold", "reset"] = "hold",
    gateways: bool = True,
    relay: RelayProcess | None = None,
    world: World | None = None,
) -> Bridge:
    """Relay, link, both endpoints, the channel committed; gateways started if asked.

    ``relay`` (not started, with ``world``) lets the caller learn its ports first."""
    inside = inside or HereLoop()
    if relay is None:
        world = make_world(now=int(time.time()))
        relay = RelayProcess(tmp, world)
    assert world is not None
    if "us-cbp/gw-blaine" not in world.devices:
        world.device("us-cbp", "gw-blaine", ("dispatcher", "member"), kind="radio-gateway")
        world.device("ca-rcmp", "gw-sarnia", ("member",), kind="radio-gateway")
    a, b = world.devices["us-cbp/gw-blaine"], world.devices["ca-rcmp/gw-sarnia"]
    relay.start()
    link = ImpairedLink(
        ("127.0.0.1", relay.port),
        ("127.0.0.1", relay.udp_port),
        up=up,
        down=down,
        host=link_host,
        on_outage=on_outage,
    )
    opened: list[Any] = []
    try:
        await link.start()
        opened.append(link)
        dispatch = await endpoint(relay, world, a, tmp)
        opened.append(dispatch)
        vessel = await inside.run(_vessel(link.url(relay.url), world, b, tmp))
        bridge = Bridge(world, relay, link, inside, dispatch, vessel)
        opened.append(bridge)
        members = [(a.cred, "dispatcher"), (b.cred, "member")]
        await dispatch.commit(CH, members, agreement=world.agreement, name="Border ops 1")
        await next_event(dispatch, ev.ChannelUpdated, channel=CH, epoch=1, timeout=10)
        await inside.run(next_event(vessel, ev.ChannelUpdated, channel=CH, epoch=1, timeout=10))
        drain(dispatch)
        await inside.call(lambda: drain(vessel))
        await until(lambda: CH in dispatch.channel_no and CH in vessel.channel_no, 5.0, "ch no")
        if gateways:
            await _start_gateways(bridge)
        return bridge
    except BaseException:
        await _close(opened, inside)
        relay.stop()
        raise


async def _vessel(url: str, world: World, device: Any, tmp: Path) -> Endpoint:
    ep = Endpoint(device.cred, device.keys, world.trust, url, str(tmp / "vessel.db"))
    await ep.start()
    try:
        await ep.wait_connected(15)
    except BaseException:
        await ep.stop()
        raise
    return ep


async def _start_gateways(b: Bridge) -> None:
    b.out_a = await open_collector()
    b.gw_a = rtp_gateway(b.dispatch, gateway_config(b.out_a.port))
    await b.gw_a.start()

    async def vessel_side() -> tuple[RtpCollector, Gateway]:
        out = await open_collector()
        gw = rtp_gateway(b.vessel, gateway_config(out.port))
        await gw.start()
        return out, gw

    b.out_b, b.gw_b = await b.inside.run(vessel_side())


async def _close(opened: list[Any], inside: Side) -> None:
    for item in reversed(opened):
        if isinstance(item, Bridge):
            await close_parts(item)
        elif isinstance(item, ImpairedLink):
            await item.close()
        else:
            await item.stop()


async def close_parts(b: Bridge) -> None:
    """Gateways, collectors and the vessel's endpoint (the dispatch endpoint and link are
    closed by :func:`close_bridge`)."""

    async def vessel_side() -> None:
        if b.gw_b is not None:
            await b.gw_b.stop()
        if b.out_b is not None:
            b.out_b.close()
        await b.vessel.stop()

    if b.gw_a is not None:
        await b.gw_a.stop()
    if b.out_a is not None:
        b.out_a.close()
    await b.inside.run(vessel_side())


async def close_bridge(b: Bridge) -> None:
    try:
        await close_parts(b)
        await b.dispatch.stop()
        await b.link.close()
    finally:
        b.relay.stop()


@dataclass
class Heard:
    packets: list[tuple[float, RtpPacket]]  # what the far gateway sent its radio
    mixer: MixerStats  # the far gateway's playout counters for the whole run
    sender: PeerResult  # ffmpeg's result
    retimer: Any  # the near gateway's input re-timer counters (adapters.rtp.retimer)


async def speak(
    b: Bridge, wav: Path, seconds: float, *, to_vessel: bool, wrap: Any = None
) -> Heard:
    """ffmpeg sends ``wav`` (``seconds`` long) into one gateway; what the other one played.

    ``wrap`` runs ffmpeg elsewhere (the namespace, when the vessel gateway is in it)."""
    assert b.gw_a and b.gw_b and b.out_a and b.out_b
    near, far, side = (b.gw_a, b.gw_b, b.inside) if to_vessel else (b.gw_b, b.gw_a, HereLoop())
    out = b.out_b if to_vessel else b.out_a
    here: Side = HereLoop() if to_vessel else b.inside
    port = (await here.call(lambda: input_address(near, CH)))[1]
    await side.call(out.packets.clear)
    tx = FfmpegSender(wav, port, CODECS["l16"], ptime_ms=20, rtcp=False, wrap=wrap)
    far_out = far.adapter(CH)
    assert isinstance(far_out, RtpAdapter)
    try:
        await tx.start()
        sent = await tx.wait(timeout=seconds + 20)
    finally:
        await tx.close()
    async with asyncio.timeout(15):  # the far side keys down once the burst ended and sealed
        while await side.call(lambda: far_out.keyed or not out.packets):
            await asyncio.sleep(0.05)
    packets = await side.call(lambda: list(out.packets))
    mixer = far.channels[CH].mixer
    assert mixer is not None
    near_in = near.adapter(CH)
    assert isinstance(near_in, RtpAdapter) and near_in.rx is not None
    retimer = near_in.rx.receiver.retimer  # type: ignore[attr-defined]
    return Heard(
        packets,
        await side.call(lambda: replace(mixer.stats)),
        sent,
        await here.call(lambda: replace(retimer.stats)),
    )
