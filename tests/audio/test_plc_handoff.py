"""Issue 8: G.711/L16 input loss concealed (not silence); talker hand-off in hang time."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from adapters.codecs.plc import Concealer
from adapters.rtp.codec import ulaw_decode, ulaw_encode
from adapters.rtp.packet import RtpPacket
from adapters.rtp.receiver import Audio, BurstEnd, BurstStart, RtpReceiver
from adapters.rtp.stream import PayloadFormat, RtpReceiverConfig

PCMU = PayloadFormat.of("pcmu")
ADDR = ("127.0.0.1", 5004)


def tone(seconds: float, hz: float = 200.0, rate: int = 8000) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def pcmu_packets(sig: np.ndarray, ssrc: int = 5, seq0: int = 0) -> Iterator[tuple[int, bytes]]:
    for i in range(len(sig) // 160):
        chunk = ulaw_encode(sig[i * 160 : (i + 1) * 160])
        yield i, RtpPacket(0, seq0 + i, i * 160, ssrc, chunk).serialize()


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def test_lost_g711_packets_are_concealed_with_the_voice_continuing_then_fading() -> None:
    rx = RtpReceiver(RtpReceiverConfig((PCMU,), rate=8000))
    sig = tone(0.6)
    lost = range(10, 14)  # 80 ms lost, at 200 ms
    now = 0.0
    for i, pkt in pcmu_packets(sig):
        if i not in lost:
            rx.receive_datagram(pkt, ADDR, now)
        now += 0.02
    out = np.frombuffer(
        b"".join(e.pcm for e in rx.events_received() if isinstance(e, Audio)), "<i2"
    )
    ref = np.frombuffer(ulaw_decode(ulaw_encode(sig)), "<i2")
    assert len(out) == len(ref)  # filled, in time
    gap = out[1600:2240]
    first10 = gap[:80]
    # energy continues: the first 10 ms at the level of the tone (the old code: silence)
    assert rms(first10) > 0.8 * rms(ref[1520:1600])
    # and so does the pitch: the concealment lines up with the tone that was lost
    corr = float(np.corrcoef(first10, ref[1600:1680])[0, 1])
    assert corr > 0.9, corr
    # then it fades: quieter by 40 ms in, silent from 60 ms
    assert rms(gap[320:400]) < 0.5 * rms(first10)
    assert not np.any(gap[480:640])
    assert rx.stats.concealed == 640
    # audio after the gap is the stream's own (past the cross-fade)
    assert np.array_equal(out[2260:], ref[2260:])


def test_concealer_without_history_is_silence_and_audio_passes() -> None:
    plc = Concealer(8000)
    assert plc.conceal(160) == bytes(320)
    x = tone(0.1).astype("<i2").tobytes()
    assert plc.audio(x) == x


def test_second_talker_in_hang_time_takes_over_without_losing_its_start() -> None:
    rx = RtpReceiver(RtpReceiverConfig((PCMU,), rate=8000, hang_time=0.5))
    a = list(pcmu_packets(tone(0.4), ssrc=1))
    b = list(pcmu_packets(tone(0.4, 300), ssrc=2, seq0=900))
    for i, pkt in a:
        rx.receive_datagram(pkt, ADDR, 1.0 + 0.02 * i)
    start_b = 1.0 + 0.4 + 0.3 - 0.02  # 0.3 s after A's last packet: A is in hang time
    for i, pkt in b:
        rx.receive_datagram(pkt, ADDR, start_b + 0.02 * i)
    ev = rx.events_received()
    starts = [e for e in ev if isinstance(e, BurstStart)]
    assert starts == [BurstStart(1), BurstStart(2)]
    assert BurstEnd("handoff") in ev
    after = ev[ev.index(BurstStart(2)) + 1 :]
    assert sum(isinstance(e, Audio) for e in after) == 20  # all of B, its first 100 ms too
    assert rx.stats.handoffs == 1 and rx.stats.wrong_ssrc == 0


def test_another_ssrc_cannot_cut_in_while_the_talker_sends() -> None:
    rx = RtpReceiver(RtpReceiverConfig((PCMU,), rate=8000, hang_time=0.5))
    for i, pkt in pcmu_packets(tone(0.2), ssrc=1):
        rx.receive_datagram(pkt, ADDR, 1.0 + 0.02 * i)
        intruder = RtpPacket(0, 7, 0, 9, b"\xff" * 160).serialize()
        rx.receive_datagram(intruder, ADDR, 1.0 + 0.02 * i + 0.01)
    assert [e for e in rx.events_received() if isinstance(e, BurstStart)] == [BurstStart(1)]
    assert rx.stats.wrong_ssrc == 10 and rx.stats.handoffs == 0
