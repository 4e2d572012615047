"""TAK positions through the bridge, against a bare TAK server, in one run.

Run: .venv/bin/python bench/cot_positions.py [--count 2000] [--paced 200] [--rate 20]

Two measurements, each on both paths:

* **bridge**: a ``pytak`` user on ``taky`` A → :class:`CotAdapter` → US gateway → signed
  ``data`` message → the real relay process → Canadian gateway → :class:`CotAdapter` → ``taky``
  B → a ``pytak`` user there (:mod:`tests.adapters.gateway_rig`, 127.0.0.1 only);
* **reference**: a ``pytak`` user on ``taky`` R → another ``pytak`` user on R (what a TAK
  network does without Crossband).

``throughput``: ``--count`` position reports of distinct uids written as fast as the socket
takes them; positions/s from the first write to the last arrival. The bridge runs with its
gateway pacing lifted (no per-uid interval, no rate limit) twice: under the relay's default
per-connection control rate (50 messages/s, burst 200: the relay refuses the rest, which the
gateway counts), and with that limit lifted too (what the path itself can carry).
``paced``: ``--paced`` reports at ``--rate`` per second with the gateway's default pacing
(1 per uid per second, 20 per second in all); end-to-end latency p50/p95/max per report. A
report that does not arrive within 10 s of the last write counts as lost.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))

from adapters.cot.adapter import CotAdapter, CotConfig  # noqa: E402
from bridge.gateway import Binding, Gateway, PositionPacing  # noqa: E402
from tests.adapters.cot.taky_rig import pli, tak_client, taky_server  # noqa: E402
from tests.adapters.gateway_rig import CH, close_rig, open_rig  # noqa: E402

UID = re.compile(rb'uid="bench-(\d+)"')
LIFTED = PositionPacing(
    interval=0.0, rate=100_000, burst=100_000, max_pending=100_000, max_in_flight=64
)
SETTLE = 10.0  # seconds after the last write for the last report to arrive


@dataclass
class Run:
    sent: int
    got: int
    seconds: float
    latencies_ms: list[float]
    note: str = ""

    def line(self, name: str) -> str:
        lat = sorted(self.latencies_ms) or [0.0]

        def p(q: float) -> float:
            return lat[min(len(lat) - 1, int(q * len(lat)))]

        rate = self.got / self.seconds if self.seconds else 0.0
        return (
            f"  {name:<10} {self.got:>5}/{self.sent:<5} {rate:>8.0f} positions/s   latency ms "
            f"p50 {p(0.5):6.1f}  p95 {p(0.95):6.1f}  max {lat[-1]:6.1f}"
        )


async def collect(reader: asyncio.StreamReader, arrived: dict[int, float]) -> None:
    while True:
        data = await reader.readuntil(b"</event>")
        m = UID.search(data)
        if m is not None:
            arrived.setdefault(int(m.group(1)), time.monotonic())


async def run(
    writer: asyncio.StreamWriter, reader: asyncio.StreamReader, count: int, rate: float | None
) -> Run:
    arrived: dict[int, float] = {}
    sent_at: dict[int, float] = {}
    task = asyncio.create_task(collect(reader, arrived))
    reports = [pli(f"bench-{i}", f"Bench {i}", 48 + i / 1e5, -123 - i / 1e5) for i in range(count)]
    start = time.monotonic()
    try:
        for i, report in enumerate(reports):
            if rate is not None:
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            sent_at[i] = time.monotonic()
            writer.write(report)
            await writer.drain()
        deadline = time.monotonic() + SETTLE
        while len(arrived) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    last = max(arrived.values(), default=start)
    lat = [(arrived[i] - sent_at[i]) * 1000 for i in arrived]
    return Run(count, len(arrived), last - start, lat)


async def reference(tmp: Path, count: int, paced: int, rate: float) -> tuple[Run, Run]:
    with taky_server(tmp / "taky-ref") as port:
        r_in, w_in = await tak_client(port)
        r_out, w_out = await tak_client(port)
        w_out.write(pli("bench-listener", "Listener", 49.0, -123.0))  # announce, as ATAK does
        await w_out.drain()
        await asyncio.sleep(0.3)
        try:
            burst = await run(w_in, r_out, count, None)
            await asyncio.sleep(1.0)
            slow = await run(w_in, r_out, paced, rate)
        finally:
            w_in.close()
            w_out.close()
        del r_in
        return burst, slow


RELAY_LIFTED = {"limits": {"control_rate": 10_000.0, "control_burst": 20_000.0}}


async def bridge(
    tmp: Path, name: str, pacing: PositionPacing, relay: dict[str, Any], n: int, rate: float | None
) -> Run:
    sub = tmp / name
    with taky_server(sub / "taky-us") as us_port, taky_server(sub / "taky-ca") as ca_port:
        rig = await open_rig(sub, **relay)
        us = CotAdapter(CotConfig(transport="tcp", host="127.0.0.1", port=us_port))
        ca = CotAdapter(CotConfig(transport="tcp", host="127.0.0.1", port=ca_port))
        gws = [
            Gateway(rig.a, [Binding(CH, us, positions=pacing)]),
            Gateway(rig.b, [Binding(CH, ca)]),
        ]
        try:
            for gw in gws:
                await gw.start()
            _, w_in = await tak_client(us_port)
            r_out, w_out = await tak_client(ca_port)
            await asyncio.wait_for(us.connected.wait(), 10)
            await asyncio.wait_for(ca.connected.wait(), 10)
            result = await run(w_in, r_out, n, rate)
            w_in.close()
            w_out.close()
            sender = gws[0].channels[CH].positions
            assert sender is not None
            far = gws[1].channels[CH].stats
            o = sender.outbox.stats
            result.note = (
                f"US gateway: {sender.sent} sent, {sender.errors} refused by the relay, "
                f"{o.coalesced} coalesced, {o.dropped} dropped; CA gateway: "
                f"{far.positions_shown} shown; CoT writes dropped: {us.dropped + ca.dropped}"
            )
            return result
        finally:
            for gw in gws:
                await gw.stop()
            await close_rig(rig)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--paced", type=int, default=200)
    ap.add_argument("--rate", type=float, default=20.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ref_burst, ref_paced = await reference(tmp, args.count, args.paced, args.rate)
        capped = await bridge(tmp, "capped", LIFTED, {}, args.count, None)
        lifted = await bridge(tmp, "lifted", LIFTED, RELAY_LIFTED, args.count, None)
        paced = await bridge(tmp, "paced", PositionPacing(), {}, args.paced, args.rate)
    print(f"throughput: {args.count} reports, distinct uids, written as fast as TCP takes them")
    print(ref_burst.line("reference"))
    print(capped.line("bridge") + "  (gateway pacing lifted, relay's default limits)")
    print(f"             {capped.note}")
    print(lifted.line("bridge") + "  (gateway pacing and relay control rate lifted)")
    print(f"             {lifted.note}")
    print(f"paced: {args.paced} reports at {args.rate:g}/s, default gateway pacing")
    print(ref_paced.line("reference"))
    print(paced.line("bridge"))
    print(f"             {paced.note}")


if __name__ == "__main__":
    asyncio.run(main())
