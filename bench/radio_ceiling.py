"""The ffmpeg → ffmpeg ceiling: speech quality with no bridge in the path.

Run: .venv/bin/python bench/radio_ceiling.py [--codecs pcmu,pcma] [--ptimes 20,40,60,80,100,120]
     [--loss 0.05] [--loss-seeds 3] [--loss-ptimes 20,60,120] [--jobs 3] [--json out.json]

(``bench/radio_bridge.py`` imports :class:`Sources`, :func:`run_plan`, :func:`score`,
:func:`coded` and :func:`exact_share` to measure the same ceiling beside the bridge in one run.)

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

Scores: PESQ (ITU-T P.862, narrowband MOS-LQO at 8 kHz; P.862.2 wideband for L16 at 16 kHz;
``pesq`` package, a bench extra that needs a C compiler) when importable, else only the
correlation of the aligned signals, and the script says PESQ was unavailable. The reference is
the WAV file as sent. ``exact`` is the share of aligned samples equal to what the sender's
codec alone makes of that file (ffmpeg's G.711 codes, decoded; L16 as it is), over its whole
20 ms frames: 1.0 is bit-exact. ``warp`` (ms) is the largest shift of a voiced half second
from the whole signal's alignment (:func:`time_warp`): 0 when the output keeps the input's
time. Each row also counts ffmpeg's receiver warnings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.codecs.g711 import alaw_decode, ulaw_decode  # noqa: E402
from tests.rigs.ffmpeg_peer import CODECS, FfmpegReceiver, FfmpegSender  # noqa: E402
from tests.rigs.impair import Impairment  # noqa: E402
from tests.rigs.signals import (  # noqa: E402
    Samples,
    align,
    correlation_at,
    from_pcm16,
    overlap,
    read_wav,
    speech,
    write_wav,
)
from tests.rigs.tools import require_tool  # noqa: E402
from tests.rigs.udp_proxy import UdpProxy  # noqa: E402

RATE = 8000
Item = tuple[str, int | None, float, int]  # codec, ptime (None: ffmpeg's default), loss, seed

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
    exact: float
    warp_ms: float  # time_warp: 0 when the output keeps the input's time
    received_s: float
    warnings: int
    missed: int
    dropped: int


def score(ref: Samples, out: Samples, rate: int = RATE) -> tuple[float | None, float, int]:
    """PESQ (narrowband at 8 kHz, wideband at 16 kHz), correlation and lag of ``out``."""
    lag, corr = align(ref, out, max_lag=rate)  # within 1 s
    a, b = overlap(ref, out, lag)
    mode = "wb" if rate == 16000 else "nb"
    mos = float(_pesq(rate, a, b, mode)) if HAVE_PESQ and a.size > rate else None
    return mos, corr, lag


def coded(codec: str, wav: Path) -> Samples:
    """What the ffmpeg sender's encoder alone makes of ``wav`` (G.711 codes decoded here;
    L16 as it is). ffmpeg's G.711 encoder puts a few decision levels one step away from the
    Recommendation's (512 of 65536 inputs for μ-law, 964 for A-law), so the reference for
    "bit-exact" is its coding, not :mod:`adapters.codecs.g711`'s."""
    if codec not in ("pcmu", "pcma"):
        return read_wav(wav)[0]
    name = {"pcmu": "mulaw", "pcma": "alaw"}[codec]
    argv = [require_tool("ffmpeg"), "-v", "error", "-i", str(wav), "-ac", "1"]
    argv += ["-c:a", f"pcm_{name}", "-f", name, "-"]
    codes = subprocess.run(argv, check=True, capture_output=True, timeout=60).stdout
    return from_pcm16(ulaw_decode(codes) if codec == "pcmu" else alaw_decode(codes))


def exact_share(expected: Samples, out: Samples, lag: int, rate: int) -> float:
    """The share of the aligned samples where ``out`` equals ``expected``, over the sent
    file's whole 20 ms frames: the part-frame at its very end (under 20 ms; 3 ms of this
    sample) is left out, since a gateway ending the burst by hang time drops it by design
    (``tails_dropped`` in :mod:`adapters.rtp.receiver`)."""
    whole = expected.size - expected.size % (rate // 50)
    a, b = overlap(expected[:whole], out, lag)
    return float(np.mean(np.round(a * 32768) == np.round(b * 32768))) if a.size else 0.0


def time_warp(ref: Samples, out: Samples, lag: int, rate: int) -> float:
    """The largest shift (ms, within ±100 ms) of a voiced half second of ``out`` from the
    global alignment ``lag`` (windows below a tenth of the mean energy are skipped)."""
    win, span, step = rate // 2, rate // 10, rate // 1000
    energy = [float(np.dot(ref[i : i + win], ref[i : i + win])) for i in range(0, ref.size, win)]
    mean = sum(energy) / max(len(energy), 1)
    worst = 0
    for k, start in enumerate(range(0, ref.size - win + 1, win)):
        if energy[k] < 0.1 * mean:
            continue
        seg = ref[start : start + win]
        # the smallest shift wins a tie; none reaches before the start of ``out``
        shifts = sorted(range(-span, span + 1, step), key=abs)
        fits = [(correlation_at(seg, out[start + lag + d :], 0), -abs(d), d) for d in shifts]
        worst = max(worst, abs(max(f for f in fits if start + lag + f[2] >= 0)[2]))
    return worst * 1000 / rate


async def one_run(
    tmp: Path, wav: Path, ref: Samples, codec: str, ptime: int | None, loss: float, seed: int
) -> Row:
    """ffmpeg → (seeded loss proxy) → ffmpeg; ``wav``/``ref`` at the codec's rate."""
    c = CODECS[codec]
    run_dir = Path(tempfile.mkdtemp(prefix=f"{codec}-{ptime}-{seed}-", dir=tmp))
    rx = await FfmpegReceiver(c, run_dir / "out.wav").start()
    proxy: UdpProxy | None = None
    port = rx.port
    if loss > 0:
        proxy = await UdpProxy(("127.0.0.1", rx.port), Impairment(loss=loss, seed=seed)).start()
        port = proxy.address[1]
    tx = FfmpegSender(wav, port, c, ptime_ms=ptime, rtcp=proxy is None)
    seconds = ref.size / c.rate
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
    mos, corr, lag = score(ref, out, c.rate)
    return Row(
        codec,
        ptime_name(ptime),
        loss,
        seed if loss > 0 else None,
        mos,
        corr,
        exact_share(coded(codec, wav), out, lag, c.rate),
        time_warp(ref, out, lag, c.rate),
        out.size / c.rate,
        len(result.disorder),
        result.missed,
        proxy.forward.dropped if proxy is not None else 0,
    )


def ptime_name(ptime: int | None) -> str:
    return "default" if ptime is None else str(ptime)


class Sources:
    """The speech sample and its WAV at each rate, made once per run."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self._made: dict[int, tuple[Path, Samples]] = {}

    def at(self, rate: int) -> tuple[Path, Samples]:
        if rate not in self._made:
            wav = write_wav(self.tmp / f"speech-{rate}.wav", speech(rate), rate)
            self._made[rate] = (wav, read_wav(wav)[0])  # the reference: what is sent
        return self._made[rate]


async def run_plan(sources: Sources, plan: list[Item], jobs: int) -> dict[Item, Row]:
    """The ceiling rows of ``plan``, ``jobs`` at a time; a run that fails is reported and left
    out (one failed run does not stop the others)."""
    gate = asyncio.Semaphore(jobs)  # each run is paced in real time: a few at once

    async def gated(item: Item) -> Row:
        async with gate:
            wav, ref = sources.at(CODECS[item[0]].rate)
            return await one_run(sources.tmp, wav, ref, *item)

    done = await asyncio.gather(*(gated(item) for item in plan), return_exceptions=True)
    rows: dict[Item, Row] = {}
    for item, result in zip(plan, done, strict=True):
        if isinstance(result, BaseException):
            print(f"ceiling run {item[:2]} loss {item[2]} seed {item[3]} failed: {result!r}")
        else:
            rows[item] = result
    return rows


async def run(args: argparse.Namespace) -> list[Row]:
    codecs = args.codecs.split(",")
    ptimes = [int(p) for p in args.ptimes.split(",")]
    plan: list[Item] = []
    for codec in codecs:
        plan += [(codec, p, 0.0, 0) for p in [*ptimes, None]]
    if args.loss > 0:
        for p in (int(x) for x in args.loss_ptimes.split(",")):
            plan += [(codecs[0], p, args.loss, s) for s in range(1, args.loss_seeds + 1)]
    with tempfile.TemporaryDirectory(prefix="radio-ceiling-") as tmp_name:
        rows = await run_plan(Sources(Path(tmp_name)), plan, args.jobs)
    return list(rows.values())


def report(rows: list[Row], seconds: float) -> list[str]:
    what = "PESQ (P.862 NB; L16/16k: P.862.2 WB)" if HAVE_PESQ else "PESQ unavailable (pip pesq)"
    lines = [f"ffmpeg -> ffmpeg ceiling, espeak-ng speech {seconds:.1f} s, {what}"]
    lines.append(
        "codec  ptime    loss  seed   PESQ   corr  exact  warp  recv_s  warn  missed  dropped"
    )
    for r in rows:
        mos = f"{r.pesq:5.2f}" if r.pesq is not None else "  n/a"
        seed = "-" if r.seed is None else str(r.seed)
        lines.append(
            f"{r.codec:5}  {r.ptime:>7}  {r.loss:4.0%}  {seed:>4}  {mos}  {r.corr:5.3f}"
            f"  {r.exact:5.3f}  {r.warp_ms:4.0f}  {r.received_s:6.2f}  {r.warnings:4}"
            f"  {r.missed:6}  {r.dropped:7}"
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
