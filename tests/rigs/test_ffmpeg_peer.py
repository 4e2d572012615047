"""ffmpeg as the radio side: the sender packetizes as asked (payload size, timestamp step,
spacing), ffmpeg → ffmpeg carries a known signal intact at ptimes 20/60/120 ms, and the
receiver's warnings fire on a stream that breaks receivers (a new SSRC, sequence number and
timestamp per burst, as issue 8 describes)."""

from __future__ import annotations

import asyncio
import random
import statistics
import struct
import time
from pathlib import Path
from typing import cast

import pytest

from tests.rigs.ffmpeg_peer import CODECS, Codec, FfmpegReceiver, FfmpegSender
from tests.rigs.impair import Impairment
from tests.rigs.signals import align, noise, tone_sequence, write_wav
from tests.rigs.tools import require_tool, skip_unavailable
from tests.rigs.udp_proxy import UdpProxy

SECONDS = 1.5


@pytest.fixture(autouse=True)
def ffmpeg() -> None:
    with skip_unavailable():
        require_tool("ffmpeg")


class Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets: list[tuple[float, bytes]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets.append((time.monotonic(), data))


async def round_trip(tmp: Path, codec: Codec, ptime: int | None) -> tuple[float, int, int]:
    ref = tone_sequence(codec.rate, SECONDS)
    wav = write_wav(tmp / "in.wav", ref, codec.rate)
    rx = await FfmpegReceiver(codec, tmp / "out.wav").start()
    tx = FfmpegSender(wav, rx.port, codec, ptime_ms=ptime)
    try:
        await tx.start()
        sent = await tx.wait(timeout=SECONDS + 20)
        assert sent.returncode == 0, sent.stderr
        await rx.wait_for_audio(SECONDS - (ptime or 130) / 1000, timeout=10)
        got, out = await rx.stop()
    finally:
        await tx.close()
        await rx.close()
    lag, corr = align(ref, out)
    assert sent.warnings == [], sent.warnings
    assert got.disorder == [] and got.missed == 0 and got.waited == 0, got.warnings
    return corr, lag, int(out.size)


@pytest.mark.parametrize(
    ("codec", "ptime"),
    [("pcmu", 20), ("pcmu", 60), ("pcmu", 120), ("pcma", 20), ("l16", 20), ("l16", 120)],
)
async def test_round_trip_correlates(tmp_path: Path, codec: str, ptime: int) -> None:
    corr, lag, size = await round_trip(tmp_path, CODECS[codec], ptime)
    c = CODECS[codec]
    assert corr >= 0.9, corr
    assert abs(lag) <= c.rate * ptime // 1000, lag  # at most one packet off
    assert size >= int(c.rate * (SECONDS - ptime / 1000)), size


async def test_default_packetization_round_trip_correlates(tmp_path: Path) -> None:
    corr, _, _ = await round_trip(tmp_path, CODECS["pcmu"], None)
    assert corr >= 0.9, corr


async def test_lost_packets_keep_their_place_in_time(tmp_path: Path) -> None:
    # 5 % seeded loss between the two: the receiver fills each gap with silence by timestamp,
    # so the rest stays aligned: noise decorrelates at any shift, so only the lost 5 % and
    # their neighbours may differ (ffmpeg's default aresample=async=1 lets it drift).
    c, seconds = CODECS["pcmu"], 3.0
    ref = noise(c.rate, seconds)
    wav = write_wav(tmp_path / "in.wav", ref, c.rate)
    rx = await FfmpegReceiver(c, tmp_path / "out.wav").start()
    proxy = await UdpProxy(("127.0.0.1", rx.port), Impairment(loss=0.05, seed=4)).start()
    tx = FfmpegSender(wav, proxy.address[1], c, ptime_ms=20, rtcp=False)
    try:
        await tx.start()
        await tx.wait(timeout=seconds + 20)
        await rx.wait_for_audio(seconds - 0.7, timeout=10)
        got, out = await rx.stop()
    finally:
        await tx.close()
        await rx.close()
        await proxy.close()
    assert proxy.forward.dropped >= 3  # the seed drops some (a fixed set)
    assert 1 <= got.missed <= proxy.forward.dropped  # the receiver saw the gaps
    lag, corr = align(ref, out)
    assert abs(lag) <= 160 and corr >= 0.9, (lag, corr)
    assert got.disorder == [], got.disorder


async def collect(tmp: Path, codec: Codec, ptime: int | None) -> list[tuple[float, bytes]]:
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_datagram_endpoint(Collector, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    wav = write_wav(tmp / "in.wav", tone_sequence(codec.rate, 1.0), codec.rate)
    tx = FfmpegSender(wav, port, codec, ptime_ms=ptime, ssrc=0xDEADBEEF, seq=65530)
    try:
        await tx.start()
        result = await tx.wait(timeout=20)
    finally:
        await tx.close()
        transport.close()
    assert result.returncode == 0, result.stderr
    return sink.packets


@pytest.mark.parametrize(("codec", "ptime"), [("pcmu", 20), ("pcma", 60), ("l16", 120)])
async def test_sender_packetizes_as_asked(tmp_path: Path, codec: str, ptime: int) -> None:
    c = CODECS[codec]
    packets = await collect(tmp_path, c, ptime)
    samples = c.rate * ptime // 1000
    body = [p for _, p in packets[:-1]]  # the last packet holds the remainder
    assert {len(p) - 12 for p in body} == {samples * c.bytes_per_sample}
    headers = [struct.unpack("!BBHII", p[:12]) for _, p in packets]
    assert {h[1] & 0x7F for h in headers} == {c.payload_type}
    assert {h[4] for h in headers} == {0xDEADBEEF}
    seqs = [h[2] for h in headers]
    assert seqs[:7] == [65530, 65531, 65532, 65533, 65534, 65535, 0]  # wraps
    steps = {(b[3] - a[3]) % (1 << 32) for a, b in zip(headers, headers[1:])}
    assert steps == {samples}
    gaps = [b[0] - a[0] for a, b in zip(packets, packets[1:])]
    assert abs(statistics.median(gaps) - ptime / 1000) < 0.005, gaps  # sent when due


@pytest.mark.parametrize("codec", ["pcmu", "l16"])
async def test_default_packetization_sends_clumps(tmp_path: Path, codec: str) -> None:
    # ffmpeg's default: one block of the input (4096 bytes of WAV) at a time, split at the
    # packet size limit and sent back to back: the clumps issue 8 measured.
    packets = await collect(tmp_path, CODECS[codec], None)
    gaps = [b[0] - a[0] for a, b in zip(packets, packets[1:])]
    assert sum(g < 0.002 for g in gaps) >= len(gaps) // 2, gaps  # back to back ...
    assert max(gaps) >= 0.1, gaps  # ... then nothing for > 100 ms


async def test_receiver_warnings_flag_a_new_ssrc_per_burst(tmp_path: Path) -> None:
    c = CODECS["pcmu"]
    rx = await FfmpegReceiver(c, tmp_path / "out.wav").start()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=("127.0.0.1", rx.port)
    )
    rng = random.Random(1)
    try:
        for _burst in range(3):
            ssrc, seq, ts = rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(32)
            for i in range(25):
                header = struct.pack(
                    "!BBHII", 0x80, 0x80 if i == 0 else 0, (seq + i) & 0xFFFF,
                    (ts + 160 * i) & 0xFFFFFFFF, ssrc,
                )  # fmt: skip
                transport.sendto(header + b"\xff" * 160)
                await asyncio.sleep(0.02)  # a 20 ms packet clock
        await rx.wait_for_audio(0.4, timeout=10)
        result, _ = await rx.stop()
    finally:
        transport.close()
        await rx.close()
    assert any("bad cseq" in line for line in result.disorder), result.warnings
    assert result.missed > 0
