"""Issue 8, the bridge side: ffmpeg's radio audio through the bridge beside the ffmpeg → ffmpeg
ceiling, measured in the same run.

Run: .venv/bin/python bench/radio_bridge.py [--quick] [--json rows.json] [--jobs 3]
     [--loss-seeds 3] [--opus-rate 16000] [--only TEXT] [--verbose] [--explain]

(~13 minutes; ``--quick`` ~4. PESQ needs the bench extra: ``pip install -e '.[bench]'``.)

For every case the ceiling (:mod:`bench.radio_ceiling`: ffmpeg RTP sender straight into an
ffmpeg RTP receiver) and the bridge (:mod:`bench.radio_bridge_run`: ffmpeg → gateway A →
the real relay → gateway B → ffmpeg) send the same espeak-ng speech with the same
packetization, and both received WAVs are scored the same way (PESQ P.862 narrowband for
G.711 at 8 kHz, P.862.2 wideband for L16 at 16 kHz). Cases and the issue-8 targets:

- PCMU in/out at ptimes 20, 40, 60, 80, 100, 120 ms and ffmpeg's default packetization
  (128 ms blocks sent back to back), with the ``pcmu`` channel codec (bridge ≥ 0.95 × ceiling)
  and with Opus (≥ 0.90 × ceiling; endpoints at ``--opus-rate``);
- PCMA in/out at 20 ms and the default, with ``pcma`` (≥ 0.95) and Opus (≥ 0.90);
- L16/16 kHz in/out with the ``l16`` channel codec at every ptime: passthrough must be exact
  (every aligned sample equal to what was sent, and PESQ equal to the ceiling's);
- 5 % loss at the radio input (:class:`tests.rigs.udp_proxy.UdpProxy` in front of A, seeds
  1..``--loss-seeds``, the same seeds and so the same dropped packets as the ceiling's loss
  rows) at 20, 60, 120 ms and the default, PCMU with ``pcmu`` and with Opus: bridge ≥ ceiling
  (the bridge conceals G.711 input gaps; ffmpeg's receiver leaves silence).

The ceilings run first, ``--jobs`` at a time (ffmpeg only); the bridge runs then go one at a
time over one relay and one pair of endpoints, so that no two paced streams share the event
loop. ``--quick``: ptimes 20 and 120 and the default, PCMA and L16 at 20 ms, one loss seed
at 20 and 120 ms. ``--verbose`` adds the counters behind each bridge figure (what A's input
concealed, re-timed and dropped; what B's jitter buffer played, concealed, and its highest
target).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.radio_bridge_explain import opus_budget  # noqa: E402
from bench.radio_bridge_run import BridgeRow, bridge_run  # noqa: E402
from bench.radio_ceiling import HAVE_PESQ, Item, Row, Sources, ptime_name, run_plan  # noqa: E402
from tests.adapters.gateway_rig import close_rig, open_rig  # noqa: E402
from tests.rigs.ffmpeg_peer import CODECS  # noqa: E402

PTIMES: list[int | None] = [20, 40, 60, 80, 100, 120, None]
QUICK_PTIMES: list[int | None] = [20, 120, None]
LOSS_PTIMES: list[int | None] = [20, 60, 120, None]
TARGET = {"pcmu": 0.95, "pcma": 0.95, "opus": 0.90}  # of the ceiling, without loss


@dataclass(frozen=True)
class Case:
    codec: str  # radio-side payload
    channel: str  # channel codec
    ptime: int | None
    loss: float = 0.0
    seed: int = 0

    @property
    def ceiling(self) -> Item:
        return (self.codec, self.ptime, self.loss, self.seed)

    def rate(self, opus_rate: int) -> int:
        if self.channel == "opus":
            return opus_rate
        return CODECS[self.codec].rate if self.codec != "l16" else 16000


def plan(quick: bool, loss_seeds: int, loss: float = 0.05) -> list[Case]:
    ptimes = QUICK_PTIMES if quick else PTIMES
    few: list[int | None] = [20] if quick else [20, None]
    cases = [Case("pcmu", ch, p) for p in ptimes for ch in ("pcmu", "opus")]
    cases += [Case("pcma", ch, p) for p in few for ch in ("pcma", "opus")]
    cases += [Case("l16", "l16", p) for p in ([20] if quick else ptimes)]
    seeds = range(1, 2 if quick else loss_seeds + 1)
    for p in [20, 120] if quick else LOSS_PTIMES:
        cases += [Case("pcmu", ch, p, loss, s) for s in seeds for ch in ("pcmu", "opus")]
    return cases


@dataclass
class Verdict:
    case: Case
    ceiling: Row | None
    bridge: BridgeRow | None

    def value(self, row: Row | BridgeRow | None) -> float | None:
        if row is None:
            return None
        return row.pesq if row.pesq is not None else row.corr

    @property
    def ratio(self) -> float | None:
        c, b = self.value(self.ceiling), self.value(self.bridge)
        return None if c is None or b is None or c == 0 else b / c

    @property
    def target(self) -> str:
        if self.case.channel == "l16":
            return "exact"
        if self.case.loss > 0:
            return ">= ceil"
        return f">= {TARGET[self.case.channel]:.2f}"

    @property
    def passed(self) -> bool | None:
        ratio, b = self.ratio, self.bridge
        if ratio is None or b is None:
            return None
        if self.case.channel == "l16":
            c = self.value(self.ceiling)
            return b.exact == 1.0 and c is not None and abs((self.value(b) or 0) - c) < 0.005
        if self.case.loss > 0:
            return ratio >= 1.0
        return ratio >= TARGET[self.case.channel]


def path_name(case: Case) -> str:
    loss = f" {case.loss:.0%} loss s{case.seed}" if case.loss > 0 else ""
    return f"{case.codec.upper()} via {case.channel}{loss}"


def _f(x: float | None, spec: str = "5.2f") -> str:
    return "  n/a" if x is None else format(x, spec)


def table(verdicts: list[Verdict]) -> list[str]:
    lines = [f"{'path':28} {'ptime':>7}  ceiling  bridge  ratio  {'target':>7}  result  exact"]
    for v in verdicts:
        result = {True: "PASS", False: "MISS", None: "FAIL"}[v.passed]
        exact = _f(v.bridge.exact if v.bridge else None, "5.3f")
        lines.append(
            f"{path_name(v.case):28} {ptime_name(v.case.ptime):>7}  "
            f"{_f(v.value(v.ceiling)):>7}  {_f(v.value(v.bridge)):>6}  {_f(v.ratio, '5.3f')}"
            f"  {v.target:>7}  {result:6}  {exact}"
        )
    done = [v for v in verdicts if v.passed is not None]
    missed = sum(not v.passed for v in done)
    lines.append(
        f"{len(done) - missed} of {len(verdicts)} PASS, {missed} MISS, "
        f"{len(verdicts) - len(done)} without a figure (a run failed)"
    )
    return lines


def counters(verdicts: list[Verdict]) -> list[str]:
    lines = [
        "bridge counters: A lost/filled ms/jumps/tails | retimer concealed/stretched/"
        "dropped-owed/restarts | B played/fec/concealed/late/target-max ms/bursts | A bursts, "
        "time warp ms | ffmpeg warn/missed"
    ]
    for v in verdicts:
        b = v.bridge
        if b is None:
            continue
        lines.append(
            f"{path_name(v.case):28} {b.ptime:>7} @{b.rate // 1000}k | "
            f"{b.a_lost:3} {b.a_filled_ms:6.0f} {b.a_jumps:2} {b.a_tails_dropped} | "
            f"{b.rt_concealed:3} {b.rt_stretched:2} {b.rt_dropped_owed:3} {b.rt_restarts:2} | "
            f"{b.b_played:4} {b.b_fec:3} {b.b_concealed:3} {b.b_late:3} "
            f"{b.b_target_max_ms:5.0f} {b.b_bursts} | {b.a_bursts} {b.warp_ms:4.0f} "
            f"({_f(v.ceiling.warp_ms if v.ceiling else None, '.0f')}) | "
            f"{b.warnings}/{b.missed}"
        )
    return lines


async def run(args: argparse.Namespace) -> tuple[list[Verdict], list[str]]:
    """The verdicts of every case, and the ``--explain`` lines (if asked)."""
    cases = plan(args.quick, args.loss_seeds)
    if args.only:  # e.g. --only "PCMU via opus 5% loss s1 120"
        cases = [c for c in cases if args.only in f"{path_name(c)} {ptime_name(c.ptime)}"]
    items = list(dict.fromkeys(c.ceiling for c in cases))
    explained: list[str] = []
    with tempfile.TemporaryDirectory(prefix="radio-bridge-") as tmp_name:
        tmp = Path(tmp_name)
        sources = Sources(tmp)
        ceilings = await run_plan(sources, items, args.jobs)
        print(f"ceilings: {len(ceilings)} of {len(items)} runs done", flush=True)
        bridged = await run_bridge(tmp, sources, cases, args.opus_rate) if cases else {}
        if args.explain:
            wav, ref = sources.at(8000)
            explained.append("the Opus channel's cost for PCMU radios, offline (PESQ NB):")
            explained += [f"  {n:50} {_f(v)}" for n, v in opus_budget("pcmu", wav, ref)]
    return [Verdict(c, ceilings.get(c.ceiling), bridged.get(c)) for c in cases], explained


async def run_bridge(
    tmp: Path, sources: Sources, cases: list[Case], opus_rate: int
) -> dict[Case, BridgeRow]:
    """Every case through the bridge, one at a time over one relay and pair of endpoints."""
    bridged: dict[Case, BridgeRow] = {}
    rig = await open_rig(tmp)
    try:
        for i, case in enumerate(cases, 1):
            wav, ref = sources.at(CODECS[case.codec].rate)
            try:
                bridged[case] = b = await bridge_run(
                    rig, wav, ref, case.codec, case.channel, case.rate(opus_rate),
                    case.ptime, case.loss, case.seed,
                )  # fmt: skip
            except Exception as exc:  # one failed run does not stop the others
                print(f"bridge run {case} failed: {exc!r}", flush=True)
                continue
            print(f"[{i}/{len(cases)}] {path_name(case)} {b.ptime}: {_f(b.pesq)}", flush=True)
    finally:
        await close_rig(rig)
    return bridged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer ptimes and one loss seed")
    ap.add_argument("--loss-seeds", type=int, default=3)
    ap.add_argument("--opus-rate", type=int, choices=(8000, 16000), default=16000)
    ap.add_argument("--jobs", type=int, default=3, help="ceiling runs at once")
    ap.add_argument("--only", default="", help="just the cases whose 'path ptime' has this")
    ap.add_argument("--verbose", action="store_true", help="the counters behind each figure")
    ap.add_argument("--explain", action="store_true", help="the Opus path's cost, stage by stage")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args()
    started = time.monotonic()
    verdicts, explained = asyncio.run(run(args))
    what = "PESQ (P.862 NB; L16: P.862.2 WB)" if HAVE_PESQ else "correlation (no pesq)"
    print(f"\nffmpeg -> bridge -> ffmpeg vs ffmpeg -> ffmpeg, espeak-ng speech, {what}")
    print("\n".join(table(verdicts)))
    if args.verbose:
        print("\n".join(counters(verdicts)))
    if explained:
        print("\n".join(explained))
    print(f"({time.monotonic() - started:.0f} s)")
    if args.json is not None:
        data: list[dict[str, Any]] = [
            {
                "case": asdict(v.case),
                "ceiling": None if v.ceiling is None else asdict(v.ceiling),
                "bridge": None if v.bridge is None else asdict(v.bridge),
                "ratio": v.ratio,
                "target": v.target,
                "passed": v.passed,
            }
            for v in verdicts
        ]
        args.json.write_text(json.dumps({"pesq": HAVE_PESQ, "rows": data}, indent=1))


if __name__ == "__main__":
    main()
