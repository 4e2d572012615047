"""Two relay nodes over a 3-node NATS cluster, on loopback, started and stopped by the test.

``cluster`` (the :class:`~tests.rigs.nats.NatsCluster`), ``nodes`` (two real relay processes,
``crossband relay`` with ``cluster:`` in relay.yaml, one logical relay ``test-relay``) and
``world`` (devices of three agencies) are fixtures; :func:`node_endpoint` connects a device
to one node.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.demo.relay_process import RelayProcess
from bridge.endpoint.endpoint import Endpoint
from tests.rigs.nats import NatsCluster
from tests.rigs.tools import skip_unavailable
from tests.world import Device, World, make_world

CH = "shiprider-9"
RELAY_ID = "test-relay"


@pytest.fixture
def world() -> World:
    w = make_world(now=int(time.time()))
    w.device("us-cbp", "dispatch-1", ("dispatcher", "member"), kind="console")
    w.device("us-cbp", "gw-blaine", ("member",), kind="radio-gateway")
    w.device("ca-rcmp", "vessel-1", ("member",), kind="vessel")
    return w


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    with skip_unavailable():
        c = NatsCluster(tmp_path / "nats")
    c.start()
    yield c
    c.stop()


def relay_node(tmp: Path, world: World, cluster: NatsCluster, name: str) -> RelayProcess:
    return RelayProcess(
        tmp / f"relay-{name}",
        world.trust,
        RELAY_ID,
        revocation_lists=[],
        max_talk_time=5.0,
        cluster={"nats": cluster.urls, "node": name},
    )


@pytest.fixture
def nodes(tmp_path: Path, world: World, cluster: NatsCluster) -> Iterator[list[RelayProcess]]:
    started: list[RelayProcess] = []
    try:
        for name in ("a", "b"):
            node = relay_node(tmp_path, world, cluster, name)
            node.start()
            started.append(node)
        yield started
    finally:
        for node in started:
            node.stop()


async def node_endpoint(
    node: RelayProcess, world: World, device: Device, tmp: Path, transport: str = "udp"
) -> Endpoint:
    ep = Endpoint(
        device.cred,
        device.keys,
        world.trust,
        node.url,
        str(tmp / f"{device.id.replace('/', '_')}.db"),
        transport=transport,
    )
    await ep.start()
    await ep.wait_connected(15)
    return ep


def roster(world: World, *names: str) -> list:  # type: ignore[type-arg]
    return [
        (world.devices[n].cred, "dispatcher" if n.endswith("dispatch-1") else "member")
        for n in names
    ]
