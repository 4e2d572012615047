"""Revocation to cut-off (issue 10): from a ``crossband keys revoke`` list being published
through the relay to the revoked device being unable to open the frames a talker sends.

    .venv/bin/python bench/revocation_cutoff.py [--runs 10]

Each run starts the real relay (signing key, on loopback) behind the hostile-relay harness
(passing everything), a US dispatcher, a Canadian vessel that talks a 20 ms frame at a time
and a US officer, then revokes the officer (runs alternate: published by the dispatcher, by the
vessel). The cut-off is the send time of the first frame the officer's old epoch key cannot
open (and no later one opens) less the time of publishing (:mod:`tests.security.revocation_rig`).
Prints each run, then p50 / p95 / max. Target: p95 <= 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.rigs.hostile_relay import HostileRelay  # noqa: E402
from tests.security.pinned import pinned_relay  # noqa: E402
from tests.security.revocation_rig import DISPATCH, VESSEL, revoke_world, run_cutoff  # noqa: E402


async def one(tmp: Path, publisher: str) -> float:
    world = revoke_world()
    relay, key = pinned_relay(tmp, world)
    relay.start()
    try:
        async with HostileRelay.around(relay) as hr:
            result = await run_cutoff(hr.url, world, tmp / "run", key, publisher)
    finally:
        relay.stop()
    return result.seconds


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


async def main(runs: int) -> None:
    cuts: list[float] = []
    for i in range(runs):
        publisher = DISPATCH if i % 2 == 0 else VESSEL
        with tempfile.TemporaryDirectory(prefix="cutoff-") as tmp:
            cut = await one(Path(tmp), publisher)
        cuts.append(cut)
        print(f"run {i + 1:2d}: cut-off {cut * 1000:7.1f} ms (published by {publisher})")
    p50, p95 = statistics.median(cuts), percentile(cuts, 95)
    print(
        f"revocation to cut-off over {runs} runs: p50 {p50 * 1000:.1f} ms, "
        f"p95 {p95 * 1000:.1f} ms, max {max(cuts) * 1000:.1f} ms (target p95 <= 5000 ms)"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    asyncio.run(main(ap.parse_args().runs))
