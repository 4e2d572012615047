"""The audio path end to end: bridge delay, speech quality (PESQ), CPU per stream.

Run: .venv/bin/python bench/audio_path_bench.py [--bursts 20] [--loss-runs 3] [--verbose]
[--parts abc] [--bitrate 48000] (shortest: ``--bursts 1 --loss-runs 1``)

Everything runs on loopback with the real relay process (``bridge.cli.relay``), two
endpoints, each with a :class:`~bridge.gateway.Gateway` binding an
:class:`~adapters.rtp.adapter.RtpAdapter` to the channel (US gateway A, Canadian gateway B;
built by ``rtp_gateway`` in ``tests/adapters/gateway_rig.py`` as ``crossband endpoint``
builds them), and a radio simulated by ``tests/adapters/rtp_sender_proc.py`` in its own
process.

(a) **Delay**, with the channel codec Opus and then L16 passthrough: each burst is 1 s of
    silence with a 1 kHz tone starting at 300 ms, sent as L16/16 kHz RTP into A; B sends L16
    RTP out. *Bridge delay* (the issue-8 target, p95 ≤ 45 ms): from the packet holding the
    tone's onset reaching A to the packet holding it leaving B, plus the onset's offset in
    each packet. *B's share*: from the voice frame holding the onset reaching B's gateway to
    the same output instant (jitter buffer, playout clock, decoding, the RTP output).
    *Key-up → first packet out* (target ≤ 40 ms): first packet into A to first packet out of
    B. *Mouth-to-ear* (issue 4, p95 ≤ 80 ms) adds the 20 ms packetisation at the radio (the
    tone is "spoken" 20 ms before the packet holding it leaves). The far radio's own buffer
    is not included. Twenty bursts per codec: a talker's first burst starts B's jitter
    buffer at the codec's start delay, later ones at what the path taught it.
(b) **PESQ** (ITU-T P.862.2 wideband, ``pesq`` package) of espeak-ng speech through A →
    relay → B, L16 in/out over Opus: without loss, and with 5 % of the voice frames dropped
    (seeded) on their way from B's endpoint to its gateway
    (:meth:`~bridge.gateway.Gateway.handle_event`), so before the jitter buffer of its
    :class:`~bridge.audio.mixer.ListenMixer`; plus G.711 μ-law in and out (P.862
    narrowband at 8 kHz).
(c) **CPU per talk stream**, µs per 20 ms frame at 16 kHz: Opus encode + SFrame protect on
    the talker's endpoint, and SFrame unprotect + jitter buffer + Opus decode on a listener.

``--verbose`` also prints B's listen-mixer counters (:class:`~bridge.audio.receiver.MixerStats`)
of each run through the bridge: frames received, played, rebuilt by FEC, concealed, late.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.codecs.opus import OpusEncoder  # noqa: E402
from bridge.audio.formats import DEFAULT_BITRATE  # noqa: E402
from bridge.audio.mixer import ListenMixer  # noqa: E402
from bridge.endpoint import events as ev  # noqa: E402
from crypto.group import CONTEXT_VOICE  # noqa: E402
from tests.adapters.gateway_rig import (  # noqa: E402
    CH,
    Rig,
    align,
    bursts_of,
    close_rig,
    decode_packets,
    input_address,
    open_collector,
    open_rig,
    pcm_array,
    rtp_gateway,
    run_sender,
    speech_like,
    wait_process,
)
from tests.world import make_world  # noqa: E402

L16 = {"name": "l16", "pt": 97, "clock_rate": 16000}
PCMU = {"name": "pcmu"}
STATS: list[tuple[str, Any]] = []  # B's listen-mixer counters of each run, for --verbose
SENTENCES = (
    "Sarnia, this is Blaine. The vessel is holding position two miles north of the line. "
    "Request you keep channel seven clear until the boarding team reports back."
)


BITRATE = [DEFAULT_BITRATE]  # the channel's Opus bit rate (--bitrate)


def mapping(
    payload: dict[str, Any], *, out_port: int | None, codec: str = "opus"
) -> dict[str, Any]:
    """The ``rtp`` section of a gateway: the channel's RTP input (A) or output (B)."""
    ch: dict[str, Any] = {"channel": CH, "codec": codec, "bitrate": BITRATE[0]}
    if out_port is None:
        ch["input"] = {"port": 0, "payload": payload, "hang_time": 0.2}
    else:
        ch["output"] = {"port": out_port, "payload": payload, "rtcp_interval": None}
    return {"channels": [ch]}


async def through_bridge(
    rig: Rig,
    pcm: bytes,
    rate: int,
    payload: dict[str, Any],
    *,
    bursts: int = 1,
    loss: float = 0.0,
    seed: int = 0,
    codec: str = "opus",
    arrivals: list[float] | None = None,
) -> tuple[list[list[tuple[float, bytes]]], list[list[float]]]:
    """Send ``pcm`` ``bursts`` times; per burst, (arrival time, PCM) of every output packet,
    and the send times of the input packets. ``arrivals`` collects when each voice frame
    reached B's gateway (``time.monotonic``), in order."""
    collector = await open_collector()
    gw_a = rtp_gateway(rig.a, mapping(payload, out_port=None, codec=codec))
    gw_b = rtp_gateway(rig.b, mapping(payload, out_port=collector.port, codec=codec))
    rng = random.Random(seed)
    pump: asyncio.Task[None] | None = None

    async def lossy_pump() -> None:  # B's event pump, dropping voice frames before playout
        while True:
            e = await rig.b.events.get()
            if isinstance(e, ev.Voice):
                if rng.random() < loss:
                    continue
                if arrivals is not None:
                    arrivals.append(time.monotonic())
            gw_b.handle_event(e)

    try:
        await gw_a.start()
        await gw_b.start(pump_events=False)
        pump = asyncio.get_running_loop().create_task(lossy_pump())
        src = rig.tmp / "in.s16"
        log = rig.tmp / "sent.json"
        src.write_bytes(pcm)
        proc = run_sender(
            input_address(gw_a, CH)[1],
            payload["name"],
            src,
            rate=rate,
            pt=payload.get("pt"),
            bursts=bursts,
            gap=0.5,
            log=log,
        )
        await wait_process(proc, 30 + bursts * (len(pcm) / 2 / rate + 1))
        await collector.wait_quiet(0.6, timeout=30)
        mixer = gw_b.channels[CH].mixer
        if mixer is not None:
            label = f"{payload['name']} via {codec}, loss {loss:.0%} seed {seed}"
            STATS.append((label, mixer.stats))
        out = []
        for burst in bursts_of(collector.packets):
            pcms = decode_packets([p for _t, p in burst], payload["name"])
            out.append([(t, x) for (t, _p), x in zip(burst, pcms)])
        return out, json.loads(log.read_text())
    finally:
        if pump is not None:
            pump.cancel()
        await gw_a.stop()
        await gw_b.stop()
        collector.close()


def tone_bursts(rate: int = 16000, onset: float = 0.3) -> tuple[bytes, int]:
    t = np.arange(rate) / rate
    x = np.where((t >= onset) & (t < onset + 0.04), 10000 * np.sin(2 * np.pi * 1000 * t), 0)
    return x.astype("<i2").tobytes(), int(onset * rate)


@dataclass
class Delays:
    """Per burst, in ms: mouth to ear; bridge (far gateway out − near gateway in); B's share
    of it (voice frame at B's gateway → out); key-up (first packet in) → first packet out."""

    mouth_to_ear: list[float] = field(default_factory=list)
    bridge: list[float] = field(default_factory=list)
    b_share: list[float] = field(default_factory=list)
    key_up: list[float] = field(default_factory=list)


def split_bursts(times: list[float], gap: float = 0.25) -> list[list[float]]:
    out: list[list[float]] = []
    for t in times:
        if not out or t - out[-1][-1] > gap:
            out.append([])
        out[-1].append(t)
    return out


async def delays(rig: Rig, bursts: int, codec: str) -> Delays:
    pcm, onset = tone_bursts()
    arrivals: list[float] = []
    out, sent = await through_bridge(
        rig, pcm, 16000, L16, bursts=bursts, codec=codec, arrivals=arrivals
    )
    at_b = split_bursts(arrivals)
    spp = 320  # samples per 20 ms packet (and per voice frame) at 16 kHz
    k, offset = divmod(onset, spp)
    d = Delays()
    for i, (packets, send_times) in enumerate(zip(out, sent)):
        gw_in = send_times[k] + offset / 16000  # the onset reaches A in packet k
        x = pcm_array(b"".join(p for _t, p in packets))
        hits = np.flatnonzero(np.abs(x) > 3000)
        if not len(hits):
            continue
        j = int(hits[0])
        ear = packets[j // spp][0] + (j % spp) / 16000
        d.bridge.append((ear - gw_in) * 1000)
        d.mouth_to_ear.append((ear - gw_in + 0.020) * 1000)  # spoken 20 ms before it left
        d.key_up.append((packets[0][0] - send_times[0]) * 1000)
        if i < len(at_b) and len(at_b[i]) > k:  # voice frame k of the burst holds the onset
            d.b_share.append((ear - at_b[i][k] - offset / 16000) * 1000)
    return d


def espeak(rate: int, tmp: Path) -> bytes | None:
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        return None
    wav = tmp / "speech.wav"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(wav), SENTENCES], check=True)
    out = tmp / f"speech{rate}.wav"
    subprocess.run(["sox", str(wav), "-r", str(rate), "-b", "16", "-c", "1", str(out)], check=True)
    with wave.open(str(out), "rb") as w:
        pcm = w.readframes(w.getnframes())
    frame = 2 * rate // 50
    return pcm[: len(pcm) - len(pcm) % frame]


def mos(ref: bytes, out: list[tuple[float, bytes]], rate: int) -> float:
    from pesq import pesq

    r = pcm_array(ref)
    d = pcm_array(b"".join(p for _t, p in out))
    lag, _ = align(r, d, rate // 5)
    d = d[max(lag, 0) :][: len(r)]
    d = np.pad(d, (0, len(r) - len(d)))
    return float(pesq(rate, r, d, "wb" if rate == 16000 else "nb"))


def cpu_per_stream(frames: int = 500) -> dict[str, float]:
    world = make_world(now=int(time.time()))
    talker = world.device("us-cbp", "gw-a", ("dispatcher", "member"))
    listener = world.device("ca-rcmp", "gw-b", ("member",))
    bundle = world.commit(talker, [(talker, "dispatcher"), (listener, "member")], None)
    tx, rx = world.member(talker), world.member(listener)
    for m in (tx, rx):
        m.process_commit(bundle, world.now)
    pcm = speech_like(16000, frames / 50, seed=2)
    chunks = [pcm[i : i + 640] for i in range(0, len(pcm), 640)]
    enc = OpusEncoder(16000, BITRATE[0], True, 5, 10)  # as TalkSender does
    t0 = time.perf_counter()
    packets = [enc.encode(c) for c in chunks]
    t1 = time.perf_counter()
    sframes = [tx.protect(p, CONTEXT_VOICE) for p in packets]
    t2 = time.perf_counter()
    received = [rx.unprotect(f, world.now) for f in sframes]
    t3 = time.perf_counter()
    mixer = ListenMixer(CH)
    for i, r in enumerate(received):
        mixer.voice(r.sender, r.ctr, r.payload, i * 0.02)
        mixer.tick(i * 0.02)
    t4 = time.perf_counter()
    n = len(chunks)
    return {
        "opus encode": (t1 - t0) / n * 1e6,
        "sframe protect": (t2 - t1) / n * 1e6,
        "sframe unprotect": (t3 - t2) / n * 1e6,
        "jitter + opus decode": (t4 - t3) / n * 1e6,
    }


def delay_lines(d: Delays, codec: str) -> list[str]:
    if not d.bridge:
        return [f"(a) {codec}: no tone came out"]

    def p(v: list[float]) -> str:
        return f"p50 {pct(v, 0.5):.1f} / p95 {pct(v, 0.95):.1f} ms" if v else "n/a"

    bridge95, key95 = pct(d.bridge, 0.95), pct(d.key_up, 0.95)
    return [
        f"(a) L16/16k RTP in → channel {codec} → relay → L16 RTP out, {len(d.bridge)} bursts: "
        f"bridge delay (far gateway out − near gateway in) {p(d.bridge)}, max "
        f"{max(d.bridge):.1f} (target p95 ≤ 45: {'PASS' if bridge95 <= 45 else 'MISS'}); "
        f"of it B's jitter buffer + playout + output {p(d.b_share)}; key-up → first packet "
        f"out {p(d.key_up)} (target ≤ 40: {'PASS' if key95 <= 40 else 'MISS'}); "
        f"mouth-to-ear {p(d.mouth_to_ear)} (target p95 ≤ 80)"
    ]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


async def run(args: argparse.Namespace) -> list[str]:
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rig = await open_rig(tmp)
        try:
            for codec in ("opus", "l16") if "a" in args.parts else ():
                measured = await delays(rig, args.bursts, codec)
                lines += delay_lines(measured, codec)
            wb = espeak(16000, tmp)
            nb = espeak(8000, tmp)
            if "b" not in args.parts:
                pass
            elif wb is None or nb is None:
                lines.append("(b) PESQ: skipped (espeak-ng or sox missing)")
            else:
                out, _ = await through_bridge(rig, wb, 16000, L16)
                clean = mos(wb, out[0], 16000)
                lossy = []
                for seed in range(args.loss_runs):
                    out, _ = await through_bridge(rig, wb, 16000, L16, loss=0.05, seed=seed)
                    lossy.append(mos(wb, out[0], 16000))
                out, _ = await through_bridge(rig, nb, 8000, PCMU)
                g711 = mos(nb, out[0], 8000)
                lines.append(
                    f"(b) PESQ MOS-LQO, espeak-ng speech {len(wb) / 32000:.1f} s, Opus "
                    f"{BITRATE[0] // 1000} kbit/s wideband: no loss {clean:.2f} "
                    "(target ≥ 4.0); "
                    f"5 % voice frames dropped before the jitter buffer: mean "
                    f"{statistics.mean(lossy):.2f}, worst {min(lossy):.2f} over {len(lossy)} seeds "
                    f"(target ≥ 3.5 on every seed: {'PASS' if min(lossy) >= 3.5 else 'MISS'}); "
                    f"per seed {' '.join(f'{x:.2f}' for x in lossy)}; "
                    f"G.711 μ-law in/out, P.862 narrowband: {g711:.2f}"
                )
        finally:
            await close_rig(rig)
    if "c" not in args.parts:
        return lines
    cpu = cpu_per_stream()
    send = cpu["opus encode"] + cpu["sframe protect"]
    recv = cpu["sframe unprotect"] + cpu["jitter + opus decode"]
    lines.append(
        f"(c) CPU per talk stream, 16 kHz, µs per 20 ms frame: send {send:.0f} "
        f"(Opus encode {cpu['opus encode']:.0f} + SFrame protect {cpu['sframe protect']:.0f}); "
        f"receive {recv:.0f} (SFrame unprotect {cpu['sframe unprotect']:.0f} + jitter buffer "
        f"and Opus decode {cpu['jitter + opus decode']:.0f}) — "
        f"{(send + recv) / 20000 * 100:.1f} % of one core per full-duplex stream"
    )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bursts", type=int, default=20)
    ap.add_argument("--loss-runs", type=int, default=3)
    ap.add_argument(
        "--bitrate", type=int, default=DEFAULT_BITRATE, help="the channel's Opus bit rate"
    )
    ap.add_argument("--parts", default="abc", help="which of (a), (b), (c) to run: e.g. ab")
    ap.add_argument("--verbose", action="store_true", help="B's listen-mixer counters per run")
    args = ap.parse_args()
    BITRATE[0] = args.bitrate
    if args.bursts < 1 or args.loss_runs < 1:
        ap.error("--bursts and --loss-runs must be at least 1")
    for line in asyncio.run(run(args)):
        print(line)
    if args.verbose:
        for label, stats in STATS:
            print(f"    mixer at B, {label}: {stats}")


if __name__ == "__main__":
    main()
