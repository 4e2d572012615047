"""adapters.rtp.stream: push-to-talk from RTP, SSRC lock, sender rules, codec round trips."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.codecs.pcm import pcm_to_l16
from adapters.rtp.packet import RtpPacket, parse_rtcp_sr, parse_rtp
from adapters.rtp.stream import (
    Audio,
    BurstEnd,
    BurstStart,
    PayloadFormat,
    RtpEvent,
    RtpReceiver,
    RtpReceiverConfig,
    RtpSender,
    RtpSenderConfig,
    RtpTransportConfig,
)

PCMU = PayloadFormat.of("pcmu")
PCMA = PayloadFormat.of("pcma")
L16 = PayloadFormat.of("l16", 97, 16000)
OPUS = PayloadFormat.of("opus", 111)
ADDR = ("127.0.0.1", 5004)
T0 = 1_700_000_000.0  # the sender's clock is wall-clock time (it goes into RTCP SRs)


def ulaw_packet(seq: int, ssrc: int = 0xA, *, marker: bool = False, samples: int = 160) -> bytes:
    return RtpPacket(0, seq & 0xFFFF, seq * samples, ssrc, b"\xff" * samples, marker).serialize()


def audio(events: list[RtpEvent]) -> list[bytes]:
    return [e.pcm for e in events if isinstance(e, Audio)]


def tone(rate: int, frames: int) -> np.ndarray:
    t = np.arange(frames * rate // 50) / rate
    x: np.ndarray = 5000 * np.sin(2 * np.pi * 440 * t) + 3000 * np.sin(2 * np.pi * 1000 * t)
    return x.astype(np.int16)


# --- receiver: push-to-talk ---------------------------------------------------------------


def test_burst_start_audio_and_hang_time_end() -> None:
    rx = RtpReceiver(RtpReceiverConfig((PCMU,), rate=8000, hang_time=0.5))
    assert rx.get_timer() is None
    now = 10.0
    for seq in range(10):
        rx.receive_datagram(ulaw_packet(seq), ADDR, now)
        now += 0.02
    events = rx.events_received()
    assert events[0] == BurstStart(0xA)
    assert audio(events) == [bytes(320)] * 10  # μ-law 0xFF is zero
    last = now - 0.02
    assert rx.get_timer() == pytest.approx(last + 0.5)
    rx.handle_timer(last + 0.49)
    assert rx.events_received() == []
    rx.handle_timer(last + 0.5)
    assert rx.events_received() == [BurstEnd("hang_time")]
    assert rx.get_timer() is None and rx.stats.bursts == 1


def test_marker_ends_the_burst_when_configured() -> None:
    rx = RtpReceiver(RtpReceiverConfig((PCMU,), end_on_marker=True))
    rx.receive_datagram(ulaw_packet(1), ADDR, 0.0)
    rx.receive_datagram(ulaw_packet(2, marker=True), ADDR, 0.02)
    events = rx.events_received()
    assert events == [BurstStart(0xA), Audio(bytes(320)), Audio(bytes(320)), BurstEnd("marker")]
    assert rx.get_timer() is None


def test_marker_is_ignored_by_default_and_end_signal_pt_ends() -> None:
    rx = RtpReceiver(RtpReceiverConfig((PCMU,), end_signal_pt=13))
    rx.receive_datagram(ulaw_packet(1, marker=True), ADDR, 0.0)
    rx.receive_datagram(ulaw_packet(2, marker=True), ADDR, 0.02)
    assert BurstEnd("marker") not in rx.events_received()
    cn = RtpPacket(13, 3, 480, 0xA, b"\x40").serialize()  # RFC 3389 comfort noise
    rx.receive_datagram(cn, ADDR, 0.04)
    assert rx.events_received() == [BurstEnd("end_signal")]


def test_wrong_ssrc_flood_is_counted_and_dropped() -> None:
    rx = RtpReceiver(RtpReceiverConfig((PCMU,), hang_time=0.3, max_gap_ms=120))
    rx.receive_datagram(ulaw_packet(0, ssrc=1), ADDR, 0.0)
    for i in range(1000):  # within the first packet's 20 ms + the hand-off margin
        rx.receive_datagram(ulaw_packet(i, ssrc=2), ADDR, 0.00006 * i)
    events = rx.events_received()
    assert events == [BurstStart(1), Audio(bytes(320))]
    assert rx.stats.wrong_ssrc == 1000
    assert rx.get_timer() == 0.3  # the flood did not keep the burst alive
    rx.handle_timer(0.3)
    rx.receive_datagram(ulaw_packet(5, ssrc=2), ADDR, 0.4)  # after the burst: a new talker
    assert rx.events_received() == [BurstEnd("hang_time"), BurstStart(2), Audio(bytes(320))]


def test_unknown_pt_malformed_and_rtcp_are_counted() -> None:
    rx = RtpReceiver(RtpReceiverConfig((PCMU,)))
    rx.receive_datagram(RtpPacket(8, 1, 0, 1, b"\xd5" * 160).serialize(), ADDR, 0.0)
    rx.receive_datagram(b"\x00garbage", ADDR, 0.0)
    rx.receive_datagram(bytes([0x80, 200, 0, 1, 0, 0, 0, 1]), ADDR, 0.0)
    assert rx.events_received() == []
    s = rx.stats
    assert (s.unknown_pt, s.malformed, s.rtcp, s.datagrams) == (1, 1, 1, 3)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=10))
def test_receive_datagram_never_raises(datagrams: list[bytes]) -> None:
    rx = RtpReceiver(RtpReceiverConfig((PCMU, PCMA, L16, OPUS), rate=16000))
    for i, data in enumerate(datagrams):
        rx.receive_datagram(data, ADDR, i * 0.02)
        rx.handle_timer(i * 0.02)
    rx.events_received()


def test_stale_and_duplicate_packets_are_dropped() -> None:
    rx = RtpReceiver(RtpReceiverConfig((PCMU,)))
    for seq in (65534, 65535, 0, 65535, 1, 0):  # wraps; one duplicate, one reordered
        rx.receive_datagram(ulaw_packet(seq), ADDR, 0.0)
    assert len(audio(rx.events_received())) == 4
    assert rx.stats.stale == 2 and rx.stats.lost == 0


def test_lost_packet_is_filled_to_keep_timing() -> None:
    rx = RtpReceiver(RtpReceiverConfig((PCMU,)))
    for seq in (0, 1, 3, 4):
        rx.receive_datagram(ulaw_packet(seq), ADDR, 0.0)
    assert len(audio(rx.events_received())) == 5
    assert rx.stats.lost == 1


def test_longer_ptime_is_rechunked_into_20ms_frames() -> None:
    rx = RtpReceiver(RtpReceiverConfig((L16,), rate=16000, hang_time=0.1))
    pcm = tone(16000, 9)  # 180 ms, sent as three 60 ms packets
    for i in range(3):
        part = pcm[i * 960 : (i + 1) * 960]
        packet = RtpPacket(97, i, i * 960, 7, pcm_to_l16(part)).serialize()
        rx.receive_datagram(packet, ADDR, i * 0.06)
    frames = audio(rx.events_received())
    assert [len(f) for f in frames] == [640] * 9
    assert b"".join(frames) == pcm.astype("<i2").tobytes()


def test_partial_tail_is_padded_when_a_packet_ends_the_burst() -> None:
    rx = RtpReceiver(RtpReceiverConfig((PCMU,), rate=8000, end_on_marker=True))
    rx.receive_datagram(RtpPacket(0, 1, 0, 7, b"\x7f" * 240, True).serialize(), ADDR, 0.0)
    events = rx.events_received()
    frames = audio(events)
    assert [len(f) for f in frames] == [320, 320]  # 30 ms: one frame and a padded half
    assert frames[1][160:] == bytes(160)
    assert events[-1] == BurstEnd("marker") and rx.stats.tails_dropped == 0


@pytest.mark.parametrize("rate", [8000, 16000])
def test_hang_time_end_sends_no_stale_tail(rate: int) -> None:
    """What is left at a hang-time end is ``hang_time`` old: sent now, it reached the far end
    after the burst had played out there and came out as a burst of its own (seen end to end
    once the resampler started holding back 30 ms). It is dropped and counted instead."""
    rx = RtpReceiver(RtpReceiverConfig((PCMU,), rate=rate, hang_time=0.25))
    for seq in range(5):
        rx.receive_datagram(ulaw_packet(seq, samples=240), ADDR, 0.03 * seq)  # 150 ms
    before = audio(rx.events_received())
    rx.handle_timer(0.5)
    assert rx.events_received() == [BurstEnd("hang_time")]  # no audio comes with it
    assert rx.stats.tails_dropped == 1
    assert len(b"".join(before)) // 2 >= rate * 100 // 1000  # the rest went out on time


# --- sender ------------------------------------------------------------------------------


def sent_packets(tx: RtpSender) -> list[RtpPacket]:
    return [parse_rtp(d) for kind, d in tx.datagrams_to_send() if kind == "rtp"]


def test_sender_seq_ts_marker_and_wrap() -> None:
    cfg = RtpSenderConfig(PCMU, rate=8000, rtcp_interval=None)
    tx = RtpSender(cfg, initial_seq=65534, initial_timestamp=2**32 - 160)
    tx.start_burst(T0)
    for i in range(4):
        tx.send_audio(bytes(320), T0 + 0.02 * i)
    tx.end_burst(T0 + 0.08)
    pkts = sent_packets(tx)
    assert [p.sequence_number for p in pkts] == [65534, 65535, 0, 1]
    assert [p.timestamp for p in pkts] == [2**32 - 160, 0, 160, 320]
    assert [p.marker for p in pkts] == [True, False, False, False]
    assert len({p.ssrc for p in pkts}) == 1 and all(p.payload_type == 0 for p in pkts)


def test_timestamps_follow_the_playout_clock_not_the_call_time() -> None:
    """Frames handed over late and at once (the process stalled 160 ms, then caught up) keep
    contiguous timestamps when the caller gives their playout times; a real pause (five
    periods with nothing played) advances the timestamp by exactly five frames. Without the
    playout time the stall would read as a pause: the old rule, kept for callers without it."""
    cfg = RtpSenderConfig(PCMU, rate=8000, rtcp_interval=None)
    tx = RtpSender(cfg, initial_seq=0, initial_timestamp=0)
    tx.start_burst(T0)
    calls = [(T0, 0.0), (T0 + 0.02, 0.02), (T0 + 0.18, 0.04), (T0 + 0.18, 0.06)]  # a stall
    calls += [(T0 + 0.30, 0.18), (T0 + 0.32, 0.20)]  # 0.08..0.16 not played: a pause
    for wall, media in calls:
        tx.send_audio(bytes(320), wall, media=100.0 + media)
    tx.end_burst(T0 + 0.34)
    assert [p.timestamp for p in sent_packets(tx)] == [0, 160, 320, 480, 1440, 1600]

    old = RtpSender(cfg, initial_seq=0, initial_timestamp=0)
    old.start_burst(T0)
    for wall, _media in calls[:3]:
        old.send_audio(bytes(320), wall)
    # the stall, read as a pause
    assert [p.timestamp for p in sent_packets(old)][2] == 160 + 8 * 160


def test_sender_initial_values_are_random() -> None:
    seen = set()
    for seed in range(5):
        tx = RtpSender(RtpSenderConfig(PCMU, rtcp_interval=None), rng=random.Random(seed))
        tx.start_burst(T0)
        tx.send_audio(bytes(320), T0)
        (p,) = sent_packets(tx)
        seen.add((p.sequence_number, p.timestamp, p.ssrc))
    assert len(seen) == 5


def test_per_burst_ssrc_changes_and_continuous_keeps_running() -> None:
    for mode in ("per-burst", "continuous"):
        tx = RtpSender(RtpSenderConfig(PCMU, ssrc_mode=mode, rtcp_interval=None))
        tx.start_burst(T0)
        tx.send_audio(bytes(320), T0)
        tx.end_burst(T0 + 0.02)
        tx.start_burst(T0 + 1.02)  # one second of silence
        tx.send_audio(bytes(320), T0 + 1.02)
        a, b = sent_packets(tx)
        assert a.marker and b.marker
        if mode == "per-burst":
            assert a.ssrc != b.ssrc
        else:
            assert a.ssrc == b.ssrc
            assert b.sequence_number == (a.sequence_number + 1) & 0xFFFF
            assert (b.timestamp - a.timestamp) % 2**32 == 160 + 8000  # §5.1: clock kept going


def test_opus_timestamps_use_the_48k_clock() -> None:
    tx = RtpSender(RtpSenderConfig(OPUS, rate=16000, rtcp_interval=None))
    tx.start_burst(T0)
    for i in range(3):
        tx.send_audio(bytes(640), T0 + 0.02 * i)
    pkts = sent_packets(tx)
    assert [(p.timestamp - pkts[0].timestamp) % 2**32 for p in pkts] == [0, 960, 1920]


def test_ptime_40_aggregates_two_frames_and_flushes_tail() -> None:
    tx = RtpSender(RtpSenderConfig(PCMA, rate=8000, ptime_ms=40, rtcp_interval=None))
    tx.start_burst(T0)
    for i in range(3):
        tx.send_audio(bytes(320), T0 + 0.02 * i)
    tx.end_burst(T0 + 0.06)
    pkts = sent_packets(tx)
    assert [len(p.payload) for p in pkts] == [320, 160]
    assert (pkts[1].timestamp - pkts[0].timestamp) % 2**32 == 320


def test_rtcp_sender_report_every_interval() -> None:
    tx = RtpSender(RtpSenderConfig(PCMU, rtcp_interval=5.0))
    tx.start_burst(T0)
    reports = []
    for i in range(600):  # 12 s
        tx.send_audio(bytes(320), T0 + 0.02 * i)
        reports += [parse_rtcp_sr(d) for kind, d in tx.datagrams_to_send() if kind == "rtcp"]
    assert len(reports) == 3  # at 0 s, 5 s, 10 s
    assert reports[-1].ssrc == tx.ssrc
    assert reports[-1].packet_count == 501 and reports[-1].octet_count == 501 * 160
    assert reports[1].ntp_timestamp >> 32 == int(T0 + 5.0) + 2_208_988_800


def test_sender_misuse_is_a_value_error() -> None:
    tx = RtpSender(RtpSenderConfig(PCMU))
    with pytest.raises(ValueError):
        tx.send_audio(bytes(320), T0)  # no burst
    tx.start_burst(T0)
    with pytest.raises(ValueError):
        tx.send_audio(bytes(100), T0)


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        PayloadFormat("opus", 111, 16000)  # RFC 7587 §4.1: always 48000
    with pytest.raises(ValueError):
        PayloadFormat.of("l16")  # dynamic PT required
    with pytest.raises(ValueError):
        PayloadFormat("pcmu", 72, 8000)  # would collide with RTCP
    with pytest.raises(ValueError):
        RtpReceiverConfig((PCMU, PayloadFormat("pcma", 0, 8000)))
    with pytest.raises(ValueError):
        RtpReceiverConfig((PCMU,), end_signal_pt=0)
    with pytest.raises(ValueError):
        RtpSenderConfig(OPUS, ptime_ms=40)
    with pytest.raises(ValueError):
        RtpTransportConfig(5004, group="10.0.0.1")


# --- round trips through sender and receiver ---------------------------------------------


CN = 13  # comfort noise (RFC 3389), here the gateway's end-of-transmission signal


def round_trip(fmt: PayloadFormat, rate: int, pcm: np.ndarray, drop: set[int] = set()) -> bytes:
    """Through an RtpSender and an RtpReceiver; the burst ends with an end-signal packet."""
    tx = RtpSender(RtpSenderConfig(fmt, rate=rate, rtcp_interval=None))
    rx = RtpReceiver(RtpReceiverConfig((fmt,), rate=rate, end_signal_pt=CN))
    n = rate // 50
    tx.start_burst(T0)
    for i in range(len(pcm) // n):
        tx.send_audio(pcm[i * n : (i + 1) * n].astype("<i2").tobytes(), T0 + 0.02 * i)
    tx.end_burst(T0 + 0.02 * (len(pcm) // n))
    datagrams = [data for _kind, data in tx.datagrams_to_send()]
    for i, data in enumerate(datagrams):
        if i not in drop:
            rx.receive_datagram(data, ADDR, 0.02 * i)
    last = parse_rtp(datagrams[-1])
    rx.receive_datagram(
        RtpPacket(CN, (last.sequence_number + 1) & 0xFFFF, 0, last.ssrc, b"").serialize(), ADDR, 9
    )
    events = rx.events_received()
    assert isinstance(events[0], BurstStart) and events[-1] == BurstEnd("end_signal")
    return b"".join(audio(events))


@pytest.mark.parametrize("fmt", [PCMU, PCMA])
def test_g711_round_trip_within_quantisation_bound(fmt: PayloadFormat) -> None:
    x = np.random.default_rng(1).integers(-30000, 30000, 8000).astype(np.int16)
    y = np.frombuffer(round_trip(fmt, 8000, x), "<i2").astype(np.int64)
    err = np.abs(y - x.astype(np.int64))
    assert np.all(err <= np.abs(x.astype(np.int64)) // 32 + 16)  # G.711: ~5 bits of mantissa


def test_l16_round_trip_is_exact() -> None:
    x = np.random.default_rng(2).integers(-32768, 32767, 16000).astype(np.int16)
    assert round_trip(L16, 16000, x) == x.astype("<i2").tobytes()


def best_correlation(ref: np.ndarray, out: np.ndarray, max_lag: int) -> float:
    n = min(len(ref), len(out)) - max_lag
    return max(float(np.corrcoef(ref[:n], out[k : k + n])[0, 1]) for k in range(max_lag))


@pytest.mark.parametrize("rate", [8000, 16000])
def test_opus_round_trip_by_correlation(rate: int) -> None:
    x = tone(rate, 50)
    y = np.frombuffer(round_trip(OPUS, rate, x), "<i2").astype(float)
    assert len(y) == len(x)
    assert best_correlation(x.astype(float), y, rate // 50) > 0.9


def test_opus_loss_is_filled_by_fec_or_plc() -> None:
    x = tone(16000, 50)
    y = np.frombuffer(round_trip(OPUS, 16000, x, drop={20, 35}), "<i2").astype(float)
    assert len(y) == len(x)  # two lost packets, timing kept
    assert best_correlation(x.astype(float), y, 320) > 0.8


def test_pcmu_to_a_wideband_endpoint_is_resampled() -> None:
    x = tone(16000, 25)
    y = np.frombuffer(round_trip(PCMU, 16000, x), "<i2").astype(float)
    assert len(y) == len(x)
    assert best_correlation(x.astype(float), y, 320) > 0.95
