"""The real relay with a signing key, and endpoints that pin it, connected through a
:class:`~tests.rigs.hostile_relay.HostileRelay` (or straight to the relay)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from bridge.endpoint.endpoint import Endpoint
from crypto.keyfile import save_relay_key
from crypto.keys import SigningKey, VerifyKey
from tests.bridge.harness import RelayProcess
from tests.world import Device, World

__all__ = ["endpoint_via", "pinned_relay"]


def pinned_relay(tmp: Path, world: World, **options: Any) -> tuple[RelayProcess, VerifyKey]:
    """A relay process (not started) that signs with a fresh key, and that key's public half."""
    key = SigningKey.generate()
    (tmp / "relay").mkdir(parents=True, exist_ok=True)
    save_relay_key(tmp / "relay" / "relay.key", "test-relay", key, None)
    relay = RelayProcess(tmp, world, relay_key=str(tmp / "relay" / "relay.key"), **options)
    return relay, key.public


async def endpoint_via(
    url: str,
    world: World,
    device: Device,
    tmp: Path,
    relay_key: VerifyKey | None,
    transport: Literal["udp", "ws"] = "udp",
) -> Endpoint:
    """An endpoint connected to ``url`` (a hostile relay's), with ``relay_key`` pinned."""
    ep = Endpoint(
        device.cred,
        device.keys,
        world.trust,
        url,
        str(tmp / f"{device.id.replace('/', '_')}.db"),
        transport=transport,
        relay_key=relay_key,
    )
    await ep.start()
    try:
        await ep.wait_connected(15)
    except BaseException:
        await ep.stop()
        raise
    return ep
