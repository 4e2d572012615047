"""Added latency of a voice frame relayed across two relay nodes over NATS vs the single relay.

One run, side by side, on loopback: a single relay process (SQLite) and two relay nodes over
a 3-node NATS cluster (JetStream R3). A talker sends FRAMES voice frames 20 ms apart; the
listener is on the same relay (single) or on the other node (cluster). Mouth-to-ear here is
wall clock from ``send_voice`` to decryption at the listener (both in this process), so the
difference of the two is what the hop through NATS adds (p50/p99).

    .venv/bin/python bench/nats_fanout.py [--frames 500]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge.demo.relay_process import RelayProcess  # noqa: E402
from bridge.endpoint import events as ev  # noqa: E402
from tests.nats.rig import CH, RELAY_ID, node_endpoint, roster  # noqa: E402
from tests.rigs.nats import NatsCluster  # noqa: E402
from tests.world import World, make_world  # noqa: E402

TALKER, LISTENER = "us-cbp/dispatch-1", "ca-rcmp/vessel-1"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def measure(a: RelayProcess, b: RelayProcess, world: World, tmp: Path, n: int) -> list[float]:
    talker = await node_endpoint(a, world, world.devices[TALKER], tmp)
    listener = await node_endpoint(b, world, world.devices[LISTENER], tmp)
    sent: dict[int, float] = {}
    talker.voice_sent_hook = lambda ch, ctr, t: sent.__setitem__(ctr, time.time())
    out: list[float] = []
    try:
        await talker.commit(CH, roster(world, TALKER, LISTENER), agreement=world.agreement)
        deadline = time.monotonic() + 10
        while CH not in listener.channels and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await talker.start_burst(CH)
        for i in range(n):
            talker.send_voice(CH, b"frame-%04d" % i)
            await asyncio.sleep(0.02)
            while not listener.events.empty():
                e = listener.events.get_nowait()
                if isinstance(e, ev.Voice) and e.ctr in sent:
                    out.append((e.received_at - sent[e.ctr]) * 1000)
        await talker.end_burst(CH)
    finally:
        await talker.stop()
        await listener.stop()
    return out


async def main(frames: int) -> None:
    w = make_world(now=int(time.time()))
    w.device("us-cbp", "dispatch-1", ("dispatcher", "member"), kind="console")
    w.device("ca-rcmp", "vessel-1", ("member",), kind="vessel")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        single = RelayProcess(tmp / "single", w.trust, RELAY_ID, revocation_lists=[])
        cluster = NatsCluster(tmp / "nats")
        cluster.start()
        nodes = [
            RelayProcess(
                tmp / f"node-{x}",
                w.trust,
                RELAY_ID,
                revocation_lists=[],
                cluster={"nats": cluster.urls, "node": x},
            )
            for x in ("a", "b")
        ]
        try:
            single.start()
            for node in nodes:
                node.start()
            (tmp / "s").mkdir()
            (tmp / "c").mkdir()
            one = await measure(single, single, w, tmp / "s", frames)
            two = await measure(nodes[0], nodes[1], w, tmp / "c", frames)
        finally:
            single.stop()
            for node in nodes:
                node.stop()
            cluster.stop()
    for name, xs in (("single relay", one), ("two nodes/NATS", two)):
        print(
            f"{name:16} n={len(xs):4} p50={statistics.median(xs):.2f} ms p99={pct(xs, 0.99):.2f} ms"
        )
    print(
        f"added by NATS     p50={statistics.median(two) - statistics.median(one):+.2f} ms"
        f" p99={pct(two, 0.99) - pct(one, 0.99):+.2f} ms"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=500)
    asyncio.run(main(ap.parse_args().frames))
