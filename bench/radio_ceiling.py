"""The ffmpeg → ffmpeg ceiling: speech quality with no bridge in the path.

Run: .venv/bin/python bench/radio_ceiling.py [--codecs pcmu,pcma] [--ptimes 20,40,60,80,100,120]
     [--loss 0.05] [--loss-seeds 3] [--loss-ptimes 20,60,120] [--jobs 3] [--json out.json]

A sentence spoken by espeak-ng and resampled by sox to 8 kHz is sent by ffmpeg as G.711 RTP
(PCMU/PCMA, one packet per ptime, sent when due) to an ffmpeg receiver (SDP input, its own
jitter buffer, gaps filled with silence by timestamp) on 127.0.0.1; the received WAV is
aligned on the sent one and scored. The issue-8 targets put the bridge beside these figures:
through the bridge >= 0.95 (G.711 channel codec) / 0.90 (Opus) of the ceiling at each ptime,
and with 5 % loss at the radio input >= the ffmpeg → ffmpeg figure under the same loss.

- Clean rows: each codec at each ptime, plus ffmpeg's default packetization ("default": 4096-
  byte blocks split at 1472 bytes and sent back to back).
- Loss rows: the same path through :class:`tests.rigs.udp_proxy.UdpProxy` dropping
  ``--loss`` of the packets, seeded (``--loss-seeds`` seeds per ptime): reproducible.
  ffmpeg conceals nothing for G.711: a lost packet becomes silence.

Scores: PESQ (ITU-T P.862, narrowband MOS-LQO, ``pesq`` package, a bench extra that needs
a C compiler) when importable, else only the correlation of the aligned signals, and the
script says PESQ was unavailable. Each row also counts ffmpeg's receiver warnings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.rigs.ffmpeg_peer import CODECS, FfmpegReceiver, FfmpegSender  # noqa: E402
from tests.rigs.impair import Impairment  # noqa: E402
from tests.rigs.signals import Samples, align, overlap, speech, write_wav  # noqa: E402
from tests.rigs.udp_proxy import UdpProxy  # noqa: E402

RATE = 8000

try:
    from pesq import pesq as _pesq

    HAVE_PESQ = True
except ImportError:  # the bench extra is not installed
    HAVE_PESQ = False


@dataclass
class Row:
    codec: str
    ptime: str
    loss: float
    seed: int | None
    pesq: float | None
    corr: float
    received_s: float
    warnings: int
    missed: int
    dropped: int


def score(ref: Samples, out: Samples) -> tuple[float | None, float]:
    lag, corr = align(ref, out, max_lag=RATE)  # within 1 s
    a, b = overlap(ref, out, lag)
    mos = float(_pesq(RATE, a, b, "nb")) if HAVE_PESQ and a.size > RATE else None
    return mos, corr


async def one_run(
    tmp: Path, wav: Path, ref: Samples, codec: str, ptime: int | None, loss: float, seed: int
) -> Row:
    c = CODECS[codec]
    run_dir = Path(tempfile.mkdtemp(prefix=f"{codec}-{ptime}-{seed}-", dir=tmp))
    rx = await FfmpegReceiver(c, run_dir / "out.wav").start()
    proxy: UdpProxy | None = None
    port = rx.port
    if loss > 0:
        proxy = await UdpProxy(("127.0.0.1", rx.port), Impairment(loss=loss, seed=seed)).start()
        port = proxy.address[1]
    tx = FfmpegSender(wav, port, c, ptime_ms=ptime, rtcp=proxy is None)
    seconds = ref.size / RATE
    try:
        await tx.start()
        await tx.wait(timeout=seconds + 30)
        if proxy is None:
            await rx.wait_for_audio(seconds - (ptime or 260) / 1000, timeout=10)
        else:  # the last packets may be lost, and ffmpeg holds packets after a gap a while
            await rx.wait_for_audio(seconds - 0.7, timeout=10)
        result, out = await rx.stop()
    finally:
        await tx.close()
        await rx.close()
        if proxy is not None:
            await proxy.close()
    mos, corr = score(ref, out)
    return Row(
        codec,
        "default" if ptime is None else str(ptime),
        loss,
        seed if loss > 0 else None,
        mos,
        corr,
        out.size / RATE,
        len(result.disorder),
        result.missed,
        proxy.forward.dropped if proxy is not None else 0,
    )


async def run(args: argparse.Namespace) -> list[Row]:
    codecs = args.codecs.split(",")
    ptimes = [int(p) for p in args.ptimes.split(",")]
    plan: list[tuple[str, int | None, float, int]] = []
    for codec in codecs:
        plan += [(codec, p, 0.0, 0) for p in [*ptimes, None]]
    if args.loss > 0:
        for p in (int(x) for x in args.loss_ptimes.split(",")):
            plan += [(codecs[0], p, args.loss, s) for s in range(1, args.loss_seeds + 1)]
    gate = asyncio.Semaphore(args.jobs)  # each run is paced in real time: a few at once
    with tempfile.TemporaryDirectory(prefix="radio-ceiling-") as tmp_name:
        tmp = Path(tmp_name)
        ref = speech(RATE)
        wav = write_wav(tmp / "speech.wav", ref, RATE)

        async def gated(item: tuple[str, int | None, float, int]) -> Row:
            async with gate:
                return await one_run(tmp, wav, ref, *item)

        done = await asyncio.gather(*(gated(item) for item in plan), return_exceptions=True)
    rows: list[Row] = []
    for item, result in zip(plan, done, strict=True):
        if isinstance(result, BaseException):  # one failed run does not stop the others
            print(f"run {item[:2]} loss {item[2]} seed {item[3]} failed: {result!r}")
        else:
            rows.append(result)
    return rows


def report(rows: list[Row], seconds: float) -> list[str]:
    what = "PESQ NB (P.862)" if HAVE_PESQ else "correlation only: PESQ unavailable (pip pesq)"
    lines = [f"ffmpeg -> ffmpeg ceiling, espeak-ng speech {seconds:.1f} s at 8 kHz, {what}"]
    lines.append("codec  ptime    loss  seed   PESQ   corr  recv_s  warn  missed  dropped")
    for r in rows:
        mos = f"{r.pesq:5.2f}" if r.pesq is not None else "  n/a"
        seed = "-" if r.seed is None else str(r.seed)
        lines.append(
            f"{r.codec:5}  {r.ptime:>7}  {r.loss:4.0%}  {seed:>4}  {mos}  {r.corr:5.3f}"
            f"  {r.received_s:6.2f}  {r.warnings:4}  {r.missed:6}  {r.dropped:7}"
        )
    lossy: dict[str, list[Row]] = {}
    for r in rows:
        if r.loss > 0:
            lossy.setdefault(r.ptime, []).append(r)
    for ptime, group in lossy.items():
        vals = [r.pesq if r.pesq is not None else r.corr for r in group]
        lines.append(
            f"loss {group[0].loss:.0%} ptime {ptime}: {'PESQ' if HAVE_PESQ else 'corr'} "
            f"min {min(vals):.2f} median {statistics.median(vals):.2f} over {len(vals)} seeds"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--codecs", default="pcmu,pcma")
    ap.add_argument("--ptimes", default="20,40,60,80,100,120")
    ap.add_argument("--loss", type=float, default=0.05)
    ap.add_argument("--loss-seeds", type=int, default=3)
    ap.add_argument("--loss-ptimes", default="20,60,120")
    ap.add_argument("--jobs", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args()
    started = time.monotonic()
    rows = asyncio.run(run(args))
    seconds = max((r.received_s for r in rows), default=0.0)
    print("\n".join(report(rows, seconds)))
    print(f"({time.monotonic() - started:.0f} s)")
    if args.json is not None:
        data: list[dict[str, Any]] = [asdict(r) for r in rows]
        args.json.write_text(json.dumps({"pesq": HAVE_PESQ, "rows": data}, indent=1))


if __name__ == "__main__":
    main()
