"""Issue 9, fault 5, against the real relay process and real endpoints on loopback: an
attacker who captured a member's UDP register re-sends it from its own address, then the
channel's talker speaks 15 frames.

Before: the relay moved the member's downstream to the attacker (the member heard 0 of 15
frames, the attacker got them all). Now the copy is refused (``register-replay``) and the
member hears all 15; the attacker gets nothing.
"""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bridge.endpoint import events as ev
from bridge.endpoint.endpoint import Endpoint
from bridge.wire import media as wm
from tests.bridge.harness import RelayProcess, next_event, until
from tests.world import World, make_world

CH = "inc-replay"
FRAMES = 15


@pytest.fixture
def world() -> World:
    w = make_world(now=int(time.time()))
    w.device("us-cbp", "dispatch-1", ("dispatcher", "member"), kind="console")
    w.device("ca-rcmp", "vessel-1", ("member",), kind="vessel")
    w.device("us-cbp", "gw-blaine", ("member",), kind="radio-gateway")
    return w


@pytest.fixture
def relay(tmp_path: Path, world: World):  # type: ignore[no-untyped-def]
    r = RelayProcess(tmp_path, world)
    r.start()
    yield r
    r.stop()


def dropped(relay: RelayProcess, reason: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{relay.port}/metrics", timeout=5).read()
    name = f'crossband_frames_dropped_by_reason_total{{reason="{reason}"}}'
    for line in text.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def start(relay: RelayProcess, world: World, name: str, tmp: Path) -> Endpoint:
    d = world.devices[name]
    ep = Endpoint(d.cred, d.keys, world.trust, relay.url, str(tmp / f"{name.replace('/', '_')}.db"))
    ep.link.udp_binding.keepalive = 0.3  # so a register is on the wire soon after the tap
    await ep.start()
    await ep.wait_connected(15)
    return ep


def tap(ep: Endpoint) -> list[bytes]:
    """What the endpoint's UDP socket sends from now on (the attacker's capture)."""
    udp = ep.link.udp
    assert udp is not None and udp.transport is not None
    transport: Any = udp.transport
    sent: list[bytes] = []
    send = transport.sendto

    def sendto(data: bytes, *addr: Any) -> None:
        sent.append(bytes(data))
        send(data, *addr)

    transport.sendto = sendto
    return sent


async def test_a_replayed_register_does_not_take_a_members_voice(
    relay: RelayProcess, world: World, tmp_path: Path
) -> None:
    names = ("us-cbp/dispatch-1", "ca-rcmp/vessel-1", "us-cbp/gw-blaine")
    eps = {n: await start(relay, world, n, tmp_path) for n in names}
    disp, talker, victim = (eps[n] for n in names)
    attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    attacker.bind(("127.0.0.1", 0))
    attacker.setblocking(False)
    try:
        roster = [
            (world.devices[n].cred, "dispatcher" if n == names[0] else "member") for n in names
        ]
        await disp.commit(CH, roster, agreement=world.agreement, name="replay")
        for ep in eps.values():
            await next_event(ep, ev.ChannelUpdated, channel=CH, epoch=1)
        captured = tap(victim)
        await until(
            lambda: any(d[1] == wm.UDP_REGISTER for d in captured), 5, "a register to capture"
        )
        register = next(d for d in captured if d[1] == wm.UDP_REGISTER)
        before = dropped(relay, "register-replay")
        for _ in range(3):
            attacker.sendto(register, ("127.0.0.1", relay.udp_port))
        await until(lambda: dropped(relay, "register-replay") >= before + 3, 5, "refused")

        assert await talker.start_burst(CH)
        for i in range(FRAMES):
            talker.send_voice(CH, b"voice-%d" % i)
            await asyncio.sleep(0.005)
        await talker.end_burst(CH)
        heard = [
            (await next_event(victim, ev.Voice, timeout=5, sender=talker.device)).payload
            for _ in range(FRAMES)
        ]
        assert heard == [b"voice-%d" % i for i in range(FRAMES)]  # before: 0 of 15
        stolen = 0
        while True:
            try:
                attacker.recv(2048)
            except BlockingIOError:
                break
            stolen += 1
        assert stolen == 0
        assert victim.stats["udp_bad_mac"] == 0
    finally:
        attacker.close()
        for ep in eps.values():
            await ep.stop()
