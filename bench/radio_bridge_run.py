"""One run of ffmpeg's radio audio through the bridge (for ``bench/radio_bridge.py``).

ffmpeg RTP sender → (seeded loss proxy) → gateway A's RTP input → A's endpoint → the real
relay process → B's endpoint → gateway B's RTP output → ffmpeg RTP receiver, all on
127.0.0.1. The radio side speaks the same payload on both ends (PCMU in, PCMU out; L16/16k
in, L16/16k out); the channel codec between the endpoints is the run's choice. The received
WAV is scored exactly as :func:`bench.radio_ceiling.score` scores the ceiling, and the
counters that explain a low score are kept beside it:

- A's input (:class:`~adapters.rtp.receiver.ReceiverStats`): RTP packets lost, stream filled
  by concealment (ms), timestamp jumps left unfilled, tails dropped at hang time;
- A's re-timer (:class:`~adapters.rtp.retimer.RetimerStats`): frames concealed because they
  were not there when due, late frames kept by a stretch, frames dropped for a slot already
  concealed, clock restarts;
- B's listen mixer (:class:`~bridge.audio.receiver.MixerStats`): frames played, rebuilt by
  FEC, concealed, late; the highest jitter-buffer target seen (sampled every 10 ms), and how
  many bursts B keyed on its RTP output;
- the time warp: the largest shift, against the whole signal's alignment, of any voiced
  half-second of the output (:func:`bench.radio_ceiling.time_warp`). The ceiling keeps time
  (ffmpeg fills a lost packet's time with silence), so a warp of tens of ms means the
  bridge stretched or compressed its output somewhere (a burst split or a jitter-buffer
  restart), which PESQ scores as distortion.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.rtp.adapter import RtpAdapter
from adapters.rtp.retimer import RetimedReceiver
from bench.radio_ceiling import coded, exact_share, ptime_name, score, time_warp
from tests.adapters.gateway_rig import CH, Rig, input_address, rtp_gateway
from tests.rigs.ffmpeg_peer import CODECS, FfmpegReceiver, FfmpegSender
from tests.rigs.impair import Impairment
from tests.rigs.signals import Samples
from tests.rigs.udp_proxy import UdpProxy


@dataclass
class BridgeRow:
    codec: str  # the radio side's payload, in and out
    channel: str  # the channel codec between the endpoints
    rate: int  # the endpoints' audio rate
    ptime: str
    loss: float
    seed: int | None
    pesq: float | None
    corr: float
    exact: float
    received_s: float
    warnings: int  # ffmpeg receiver's disorder lines
    missed: int  # packets the ffmpeg receiver reported missing
    dropped: int  # packets the loss proxy dropped
    a_lost: int
    a_filled_ms: float
    a_jumps: int
    a_tails_dropped: int
    rt_concealed: int
    rt_stretched: int
    rt_dropped_owed: int
    rt_restarts: int
    b_played: int
    b_fec: int
    b_concealed: int
    b_late: int
    b_target_max_ms: float
    b_bursts: int
    a_bursts: int  # bursts A's input made of the one transmission (hang-time splits)
    warp_ms: float


def payload(codec: str) -> dict[str, Any] | str:
    if codec == "l16":  # the rig's ffmpeg sends L16 at 16 kHz on its payload type
        return {"name": "l16", "pt": CODECS["l16"].payload_type, "clock_rate": 16000}
    return codec


def gateway_config(codec: str, channel: str, rate: int, *, out_port: int | None) -> dict[str, Any]:
    """The ``rtp`` section: A's input (``out_port`` None) or B's output to ``out_port``."""
    ch: dict[str, Any] = {"channel": CH, "codec": channel}
    if out_port is None:
        ch["input"] = {"port": 0, "payload": payload(codec)}  # hang_time etc.: the defaults
    else:
        ch["output"] = {"port": out_port, "payload": payload(codec), "rtcp_interval": None}
    return {"rate": rate, "channels": [ch]}


class _Probe:
    """Samples B's jitter-buffer target and keying every 10 ms while the run goes."""

    def __init__(self, rig: Rig, gw_b: Any, out_b: RtpAdapter) -> None:
        self.rig, self.gw_b, self.out_b = rig, gw_b, out_b
        self.target_max = 0.0
        self.bursts = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        keyed = False
        mixer = self.gw_b.channels[CH].mixer
        while True:
            r = mixer.receiver(self.rig.a.device) if mixer is not None else None
            if r is not None and r.started:
                self.target_max = max(self.target_max, r.jitter.target_delay_ms)
            if self.out_b.keyed and not keyed:
                self.bursts += 1
            keyed = self.out_b.keyed
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def bridge_run(
    rig: Rig,
    wav: Path,
    ref: Samples,
    codec: str,
    channel: str,
    rate: int,
    ptime: int | None,
    loss: float,
    seed: int,
) -> BridgeRow:
    """One run (module docstring); ``wav``/``ref`` at the radio payload's rate."""
    c = CODECS[codec]
    name = f"bridge-{codec}-{channel}-{ptime_name(ptime)}-{seed}-"
    run_dir = Path(tempfile.mkdtemp(prefix=name, dir=rig.tmp))
    rx = await FfmpegReceiver(c, run_dir / "out.wav").start()
    gw_a = rtp_gateway(rig.a, gateway_config(codec, channel, rate, out_port=None))
    gw_b = rtp_gateway(rig.b, gateway_config(codec, channel, rate, out_port=rx.port))
    proxy: UdpProxy | None = None
    tx: FfmpegSender | None = None
    probe: _Probe | None = None
    seconds = ref.size / c.rate
    try:
        await gw_a.start()
        await gw_b.start()
        out_b = gw_b.adapter(CH)
        assert isinstance(out_b, RtpAdapter)
        probe = _Probe(rig, gw_b, out_b)
        probe.start()
        port = input_address(gw_a, CH)[1]
        if loss > 0:
            proxy = UdpProxy(("127.0.0.1", port), Impairment(loss=loss, seed=seed))
            port = (await proxy.start()).address[1]
        tx = FfmpegSender(wav, port, c, ptime_ms=ptime, rtcp=False)
        await tx.start()
        await tx.wait(timeout=seconds + 30)
        await rx.wait_for_audio(seconds - 0.7, timeout=20)
        async with asyncio.timeout(15):  # B keys down once A's burst has ended and sealed
            while out_b.keyed:
                await asyncio.sleep(0.02)
        result, out = await rx.stop()
        a = gw_a.adapter(CH)
        assert isinstance(a, RtpAdapter) and a.rx is not None
        receiver = a.rx.receiver
        assert isinstance(receiver, RetimedReceiver)
        ra, rt = receiver.stats, receiver.retimer.stats
        mixer = gw_b.channels[CH].mixer
        assert mixer is not None
        mb = mixer.stats
        await probe.stop()
    finally:
        if probe is not None:
            await probe.stop()
        if tx is not None:
            await tx.close()
        await rx.close()
        if proxy is not None:
            await proxy.close()
        await gw_a.stop()
        await gw_b.stop()
    mos, corr, lag = score(ref, out, c.rate)
    return BridgeRow(
        codec,
        channel,
        rate,
        ptime_name(ptime),
        loss,
        seed if loss > 0 else None,
        mos,
        corr,
        exact_share(coded(codec, wav), out, lag, c.rate),
        out.size / c.rate,
        len(result.disorder),
        result.missed,
        proxy.forward.dropped if proxy is not None else 0,
        ra.lost,
        ra.concealed * 1000 / c.rate,
        ra.jumps,
        ra.tails_dropped,
        rt.concealed,
        rt.stretched,
        rt.dropped_owed,
        rt.restarts,
        mb.played,
        mb.fec,
        mb.concealed,
        mb.late,
        probe.target_max,
        probe.bursts,
        ra.bursts,
        time_warp(ref, out, lag, c.rate),
    )
