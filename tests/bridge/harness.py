"""Integration-test helpers: the real relay process on loopback (started and stopped by the
test), endpoints connected to it, and waiting for events with deadlines that fail."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.demo import relay_process
from bridge.demo.relay_process import free_port
from bridge.endpoint import events as ev
from bridge.endpoint.endpoint import Endpoint
from tests.world import Device, World

ROOT = Path(__file__).resolve().parents[2]

__all__ = [
    "ROOT",
    "RelayProcess",
    "drain",
    "endpoint",
    "free_port",
    "next_event",
    "quiet",
    "until",
]


class RelayProcess(relay_process.RelayProcess):
    """``python -m bridge.cli.relay`` in ``tmp/relay`` with the world's trust bundle (see
    :class:`bridge.demo.relay_process.RelayProcess`: ``start``, ``stop``, ``kill9``, ``url``,
    ``port``, ``udp_port``, ``dir``, ``config``, ``log``, ``proc``, ``metrics``)."""

    def __init__(self, tmp: Path, world: World, **options: Any) -> None:
        options.setdefault("revocation_lists", [])
        super().__init__(tmp / "relay", world.trust, "test-relay", **options)


async def endpoint(
    relay: RelayProcess, world: World, device: Device, tmp: Path, transport: str = "udp"
) -> Endpoint:
    ep = Endpoint(
        device.cred,
        device.keys,
        world.trust,
        relay.url,
        str(tmp / f"{device.id.replace('/', '_')}.db"),
        transport=transport,
    )
    await ep.start()
    await ep.wait_connected(15)
    return ep


async def next_event(ep: Endpoint, kind: type, timeout: float = 5.0, **match: Any) -> Any:
    """Wait for the next event of ``kind`` whose fields equal ``match``; skip others."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise TimeoutError(f"no {kind.__name__} {match} on {ep.device}")
        e = await asyncio.wait_for(ep.events.get(), left)
        if isinstance(e, kind) and all(getattr(e, k) == v for k, v in match.items()):
            return e


def drain(ep: Endpoint) -> list[ev.Event]:
    out = []
    while not ep.events.empty():
        out.append(ep.events.get_nowait())
    return out


async def until(condition: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Wait until ``condition()`` holds; raise TimeoutError if it does not within ``timeout``.

    For state that no event announces (a relay counter, a socket); the caller asserts on the
    exact value afterwards."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError(f"{what or 'the condition'} did not hold within {timeout} s")
        await asyncio.sleep(0.02)


async def quiet(ep: Endpoint, seconds: float) -> list[ev.Event]:
    """Every event ``ep`` has queued or receives within ``seconds``: for checking that
    something does *not* arrive, where no later event can serve as a barrier."""
    out = drain(ep)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            out.append(await asyncio.wait_for(ep.events.get(), left))
        except TimeoutError:
            break
    return out
