"""Issue 8: the radio side's packetization re-timed onto the 20 ms clock, on a fake clock."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from adapters.codecs.pcm import pcm_to_l16
from adapters.rtp.packet import RtpPacket
from adapters.rtp.receiver import Audio, BurstEnd, BurstStart, RtpEvent
from adapters.rtp.retimer import RetimedReceiver
from adapters.rtp.stream import PayloadFormat, RtpReceiverConfig
from tests.adapters.rtp_clock import drive as drive_clock

L16 = PayloadFormat.of("l16", 97, 16000)
TAIL = 3  # frames of fading concealment after the last packet (60 ms)


def tail(ptime_s: float) -> int:
    """Frames after a hang-time end's last packet: fading concealment, then silence, through
    the loss of up to two packets (60 ms .. 300 ms; adapters.rtp.retimer)."""
    return int(min(max(2 * ptime_s, 0.06), 0.3) / 0.02 + 1e-9)


PCMU = PayloadFormat.of("pcmu")
ADDR = ("127.0.0.1", 5004)


def tone(rate: int, seconds: float, hz: float = 200.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def packets(
    signal: np.ndarray, ptime_ms: int, rate: int = 16000, seq0: int = 0, ts0: int = 0
) -> Iterator[bytes]:
    n = rate * ptime_ms // 1000
    for i in range(len(signal) // n):
        chunk = signal[i * n : (i + 1) * n]
        yield RtpPacket(
            97, (seq0 + i) & 0xFFFF, (ts0 + i * n) & 0xFFFFFFFF, 7, pcm_to_l16(chunk)
        ).serialize()


def run(
    rx: RetimedReceiver, arrivals: list[tuple[float, bytes]], until: float
) -> list[tuple[float, RtpEvent]]:
    """Drive ``rx`` on a fake clock; returns [(time, event)] as a driver would see them."""
    return drive_clock(rx, sorted(arrivals, key=lambda a: a[0]), until)


def audio_times(events: list[tuple[float, RtpEvent]]) -> list[float]:
    return [t for t, e in events if isinstance(e, Audio)]


def test_128ms_packets_come_out_as_evenly_spaced_20ms_frames() -> None:
    rx = RetimedReceiver(RtpReceiverConfig((L16,), rate=16000, hang_time=0.5))
    sig = tone(16000, 1.28)
    arrivals = [(1.0 + 0.128 * i, p) for i, p in enumerate(packets(sig, 128))]
    events = run(rx, arrivals, 5.0)
    times = audio_times(events)
    assert len(times) == 64 + tail(0.128)  # 1.28 s in 20 ms frames, then the faded tail
    steps = np.diff(times)
    assert np.allclose(steps, 0.020, atol=1e-6), sorted(set(np.round(steps, 4)))
    assert rx.retimer.stats.concealed == tail(0.128)
    pcm = b"".join(e.pcm for _t, e in events if isinstance(e, Audio))
    assert pcm[: 64 * 640] == sig.astype("<i2").tobytes()  # L16 at the endpoint rate: exact
    assert isinstance(events[0][1], BurstStart) and isinstance(events[-1][1], BurstEnd)


def test_clumped_arrival_of_20ms_packets_is_smoothed() -> None:
    rx = RetimedReceiver(RtpReceiverConfig((L16,), rate=16000))
    sig = tone(16000, 0.6)
    pk = list(packets(sig, 20))
    # three packets at a time, every 60 ms (a gateway that sends in clumps)
    arrivals = [(1.0 + 0.06 * (i // 3), p) for i, p in enumerate(pk)]
    rx2 = RetimedReceiver(RtpReceiverConfig((L16,), rate=16000))
    rx2.retimer.base_delay = 0.05  # clumping beyond the first packet needs a margin
    times = audio_times(run(rx2, arrivals, 5.0))
    assert len(times) == 30 + TAIL and np.allclose(np.diff(times), 0.020, atol=1e-6)
    assert rx2.retimer.stats.concealed == TAIL
    del rx


def test_lost_120ms_packet_is_filled_not_compressed() -> None:
    rx = RetimedReceiver(RtpReceiverConfig((L16,), rate=16000, hang_time=0.5))
    sig = tone(16000, 1.2)
    pk = list(packets(sig, 120))
    arrivals = [(1.0 + 0.12 * i, p) for i, p in enumerate(pk) if i != 4]  # lose the 5th
    events = run(rx, arrivals, 5.0)
    times = audio_times(events)
    assert len(times) == 60 + tail(0.12)  # the lost 120 ms is there, concealed
    assert np.allclose(np.diff(times), 0.020, atol=1e-6)  # and in its time
    assert rx.stats.concealed == 1920  # the receiver filled the 120 ms (PLC)...
    assert rx.retimer.stats.concealed - tail(0.12) <= 1  # ...in time but for at most one frame
    pcm = np.frombuffer(b"".join(e.pcm for _t, e in events if isinstance(e, Audio)), "<i2")
    n = 320
    # what follows the gap is the stream's own audio, at its own place
    assert np.array_equal(pcm[31 * n : 60 * n], sig[31 * n : 60 * n])


def test_sequence_wrap_and_timestamp_jump() -> None:
    rx = RetimedReceiver(RtpReceiverConfig((L16,), rate=16000, hang_time=0.5))
    sig = tone(16000, 0.4)
    first = list(packets(sig, 40, seq0=0xFFFD, ts0=0xFFFFFF00))
    # a timestamp jump of 10 s mid-burst (a gateway restarting its clock), seq continues
    second = list(packets(sig, 40, seq0=(0xFFFD + len(first)) & 0xFFFF, ts0=12345678))
    arrivals = [(1.0 + 0.04 * i, p) for i, p in enumerate(first + second)]
    events = run(rx, arrivals, 5.0)
    times = audio_times(events)
    assert len(times) == 40 + tail(0.04) and np.allclose(np.diff(times), 0.020, atol=1e-6)
    assert rx.stats.jumps == 1 and rx.stats.lost == 0
    assert [type(e) for _t, e in events].count(BurstStart) == 1


def test_a_pause_without_packets_keeps_its_length() -> None:
    # silence suppression: no packets for 0.3 s, the timestamp runs on (RFC 3550 §5.1)
    rx = RetimedReceiver(RtpReceiverConfig((L16,), rate=16000, hang_time=0.5))
    sig = np.random.default_rng(1).integers(-8000, 8000, 9600).astype(np.int16)
    pk = list(packets(sig, 20))
    arrivals = [(1.0 + 0.02 * i, p) for i, p in enumerate(pk) if not 10 <= i < 25]
    events = run(rx, arrivals, 5.0)
    got = [(t, e) for t, e in events if isinstance(e, Audio)]
    resumed = [t for t, e in got if e.pcm == sig[26 * 320 : 27 * 320].astype("<i2").tobytes()]
    assert resumed, "the audio after the pause was not played"
    first = got[0][0]
    assert abs(resumed[0] - first - 26 * 0.020) < 0.021  # in its place: 0.52 s after the start
    assert [type(e) for _t, e in events].count(BurstStart) == 1


def test_a_late_packet_costs_one_concealed_frame_not_a_lost_one() -> None:
    # A 20 ms jitter margin (the adaptive margin starts at 4 ms; here as if a jittery earlier
    # burst had taught it 20 ms), so the 35 ms stall is 15 ms beyond it: one frame.
    rx = RetimedReceiver(RtpReceiverConfig((L16,), rate=16000, hang_time=0.5), base_delay=0.020)
    sig = np.random.default_rng(2).integers(-8000, 8000, 16000 * 6 // 10).astype(np.int16)
    pk = list(packets(sig, 20))
    # packets 10 and 11 come together 35 ms after packet 10 was due to (a network stall
    # longer than the 20 ms margin), the rest on time
    arrivals = [(1.235 if i in (10, 11) else 1.0 + 0.02 * i, p) for i, p in enumerate(pk)]
    events = run(rx, arrivals, 5.0)
    got = [e.pcm for _t, e in events if isinstance(e, Audio)]
    times = audio_times(events)
    assert np.allclose(np.diff(times), 0.020, atol=1e-6)
    frames = [sig[i * 320 : (i + 1) * 320].astype("<i2").tobytes() for i in range(len(pk))]
    assert rx.retimer.stats.stretched == 1 and rx.retimer.stats.dropped_owed == 0
    # every frame is played, in order; one concealed frame was inserted before frame 10
    # (whose first samples are cross-faded with the concealment)
    assert got[:10] == frames[:10] and got[12:31] == frames[11:30]
    assert got[11][160:] == frames[10][160:]  # past the (at most 3.75 ms) cross-fade
    assert len(got) == 30 + 1 + TAIL
