"""Two RTP gateways bridged through the real relay process, for tests and benchmarks.

US gateway A (``us-cbp/gw-blaine``) and Canadian gateway B (``ca-rcmp/gw-sarnia``) are
endpoints in one channel of a relay started as a separate process. A radio is simulated by
``rtp_sender_proc.py`` (another process) sending RTP into A; :class:`RtpCollector` is the
radio behind B, recording the RTP that B sends out and when each packet arrived.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adapters.codecs.opus import OpusDecoder
from adapters.codecs.pcm import l16_to_pcm
from adapters.rtp.adapter import RtpAdapter
from adapters.rtp.codec import alaw_decode, ulaw_decode
from adapters.rtp.mapping import load_gateway_config
from adapters.rtp.packet import RtpPacket, parse_rtp
from bridge.endpoint import events as ev
from bridge.endpoint.endpoint import Endpoint
from bridge.gateway import Binding, ChannelAudio, Gateway
from tests.bridge.harness import RelayProcess, drain, endpoint, next_event, until
from tests.world import World, make_world

ROOT = Path(__file__).resolve().parents[2]
SENDER = Path(__file__).with_name("rtp_sender_proc.py")
CH = "border-ops-1"


@dataclass
class Rig:
    tmp: Path
    world: World
    relay: RelayProcess
    a: Endpoint
    b: Endpoint


async def open_rig(tmp: Path, **relay_options: Any) -> Rig:
    world = make_world(now=int(time.time()))
    gw_a = world.device("us-cbp", "gw-blaine", ("dispatcher", "member"), kind="radio-gateway")
    gw_b = world.device("ca-rcmp", "gw-sarnia", ("member",), kind="radio-gateway")
    relay = RelayProcess(tmp, world, **relay_options)
    relay.start()
    eps: list[Endpoint] = []
    try:
        for d in (gw_a, gw_b):
            eps.append(await endpoint(relay, world, d, tmp))
        a, b = eps
        await a.commit(
            CH,
            [(gw_a.cred, "dispatcher"), (gw_b.cred, "member")],
            agreement=world.agreement,
            name="Border ops 1",
        )
        for ep in eps:
            await next_event(ep, ev.ChannelUpdated, channel=CH, epoch=1, timeout=10)
            drain(ep)
        # the channel number reaches both endpoints with the commit; fail if it does not
        await until(lambda: CH in a.channel_no and CH in b.channel_no, 2.0, "channel numbers")
        return Rig(tmp, world, relay, a, b)
    except BaseException:
        for ep in eps:
            await ep.stop()
        relay.stop()
        raise


def rtp_gateway(endpoint: Endpoint, rtp: dict[str, Any]) -> Gateway:
    """A gateway with an :class:`RtpAdapter` per channel of an ``rtp`` config section, built
    the way ``crossband endpoint`` builds it."""
    return Gateway(
        endpoint,
        [
            Binding(
                m.channel,
                RtpAdapter(m),
                ChannelAudio(m.codec, m.bitrate, m.jitter_min_ms, m.jitter_max_ms),
            )
            for m in load_gateway_config(rtp)
        ],
    )


def input_address(gateway: Gateway, channel: str) -> tuple[str, int]:
    adapter = gateway.adapter(channel)
    assert isinstance(adapter, RtpAdapter)
    return adapter.input_address


async def close_rig(rig: Rig) -> None:
    try:
        for ep in (rig.a, rig.b):
            await ep.stop()
    finally:
        rig.relay.stop()


@dataclass
class RtpCollector(asyncio.DatagramProtocol):
    """Records every RTP packet that arrives, with its arrival time (``time.monotonic``)."""

    packets: list[tuple[float, RtpPacket]] = field(default_factory=list)
    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets.append((time.monotonic(), parse_rtp(data)))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    async def wait_quiet(self, quiet: float = 0.6, timeout: float = 30.0) -> None:
        """Until at least one packet came and then none for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            last = self.packets[-1][0] if self.packets else None
            if last is not None and time.monotonic() - last > quiet:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"RTP output not done after {timeout} s ({len(self.packets)} packets)")

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_collector() -> RtpCollector:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_datagram_endpoint(RtpCollector, local_addr=("127.0.0.1", 0))
    return proto


def bursts_of(packets: list[tuple[float, RtpPacket]]) -> list[list[tuple[float, RtpPacket]]]:
    """Split by SSRC change or marker bit (the first packet of each burst carries it)."""
    out: list[list[tuple[float, RtpPacket]]] = []
    for t, p in packets:
        if not out or p.marker or p.ssrc != out[-1][-1][1].ssrc:
            out.append([])
        out[-1].append((t, p))
    return out


def decode_packets(packets: list[RtpPacket], payload: str, rate: int = 16000) -> list[bytes]:
    """Payload of each packet as 16-bit PCM (Opus decoded at ``rate``)."""
    dec = OpusDecoder(rate) if payload == "opus" else None
    fn = {"pcmu": ulaw_decode, "pcma": alaw_decode, "l16": l16_to_pcm}
    return [dec.decode(p.payload) if dec else fn[payload](p.payload) for p in packets]


def pcm_array(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def align(ref: np.ndarray, out: np.ndarray, max_lag: int) -> tuple[int, float]:
    """Lag ``d`` with out[n] ≈ ref[n - d], |d| ≤ max_lag, and the normalised correlation
    of the overlapping parts at that lag (found by FFT cross-correlation)."""
    size = 1 << int(np.ceil(np.log2(len(ref) + len(out))))
    xc = np.fft.irfft(np.fft.rfft(out, size) * np.conj(np.fft.rfft(ref, size)), size)
    lags = np.r_[0 : max_lag + 1, -max_lag:0]
    best = (0, -1.0)
    for lag in lags[np.argsort(xc[lags])[-8:]]:  # the highest raw peaks, normalised
        a = ref[max(0, -lag) :]
        b = out[max(0, lag) :]
        n = min(len(a), len(b))
        a, b = a[:n], b[:n]
        denom = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
        c = float(np.dot(a, b)) / denom if denom else 0.0
        if c > best[1]:
            best = (int(lag), c)
    return best


def speech_like(rate: int, seconds: float, seed: int = 0) -> bytes:
    """A voiced, syllabic test signal: a gliding 130 Hz pitch whose harmonics (from the 2nd)
    are shaped by two formants (600 and 1500 Hz, as in a vowel), with syllable pauses."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    f0 = 130 + 25 * np.sin(2 * np.pi * 1.3 * t) + 10 * np.sin(2 * np.pi * 3.1 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = np.zeros(len(t))
    for k in range(2, 25):
        f = 130 * k
        voiced += np.sin(k * phase) * (
            np.exp(-((f - 600) ** 2) / 2e5) + 0.5 * np.exp(-((f - 1500) ** 2) / 4e5)
        )
    syllables = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None) ** 0.6
    x = voiced * syllables + 0.01 * rng.standard_normal(len(t))
    return (x / np.abs(x).max() * 12000).astype("<i2").tobytes()


def run_sender(
    port: int,
    payload: str,
    input_path: Path,
    *,
    rate: int,
    pt: int | None = None,
    clock_rate: int = 16000,
    bursts: int = 1,
    gap: float = 0.6,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        str(SENDER),
        "--port",
        str(port),
        "--payload",
        payload,
        "--input",
        str(input_path),
        "--rate",
        str(rate),
        "--clock-rate",
        str(clock_rate),
        "--bursts",
        str(bursts),
        "--gap",
        str(gap),
    ]
    if pt is not None:
        cmd += ["--pt", str(pt)]
    if log is not None:
        cmd += ["--log", str(log)]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


async def wait_process(proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait(5)
            raise TimeoutError("RTP sender process did not finish")
        await asyncio.sleep(0.05)
    if proc.returncode != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise RuntimeError(f"RTP sender process failed: {err[-2000:]}")
