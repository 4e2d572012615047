"""The re-timer's adaptive margin (issue 8: bridge delay): low for a smooth sender, grown by
the jitter actually seen, relaxed when it goes; on a fake clock."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.codecs.pcm import pcm_to_l16
from adapters.rtp.packet import RtpPacket
from adapters.rtp.receiver import Audio, BurstStart, RtpEvent
from adapters.rtp.retimer import RetimedReceiver
from adapters.rtp.stream import PayloadFormat, RtpReceiverConfig
from tests.adapters.rtp_clock import drive as drive_clock

L16 = PayloadFormat.of("l16", 97, 16000)
ADDR = ("127.0.0.1", 5004)
TAIL = 3  # frames of fading concealment after the last packet (60 ms)


def tail(ptime_s: float) -> int:
    """Frames after a hang-time end's last packet: fading concealment, then silence, through
    the loss of up to two packets (60 ms .. 300 ms; adapters.rtp.retimer)."""
    return int(min(max(2 * ptime_s, 0.06), 0.3) / 0.02 + 1e-9)


Arrivals = list[tuple[float, bytes]]
LOW = 0.004  # a low starting margin (the default is 10 ms): what adapts from it


def noise(seconds: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-8000, 8000, int(16000 * seconds)).astype(np.int16)


def burst(
    sig: np.ndarray, start: float, ptime: float, late: dict[int, float] | None = None, seq0: int = 0
) -> Arrivals:
    """``sig`` as L16 packets of ``ptime``, the last sample of packet i sent at start + (i+1)
    ptime; packet i arrives ``late[i]`` s after that (others on time, none overtaking)."""
    n = round(16000 * ptime)
    out: Arrivals = []
    for i in range(len(sig) // n):
        t = start + (i + 1) * ptime + (late or {}).get(i, 0.0)
        t = max(t, out[-1][0] if out else t)
        pkt = RtpPacket(
            97, (seq0 + i) & 0xFFFF, seq0 * 320 + i * n, 7, pcm_to_l16(sig[i * n : (i + 1) * n])
        )
        out.append((t, pkt.serialize()))
    return out


def run(rx: RetimedReceiver, arrivals: Arrivals) -> list[tuple[float, RtpEvent]]:
    """Packets and timers in time order, as the driver does; [(time, event)]."""
    return drive_clock(rx, arrivals)


def frames_out(events: list[tuple[float, RtpEvent]]) -> list[tuple[float, bytes]]:
    return [(t, e.pcm) for t, e in events if isinstance(e, Audio)]


def holds(
    sig: np.ndarray, arrivals: Arrivals, events: list[tuple[float, RtpEvent]], ptime: float = 0.02
) -> list[float]:
    """For each real frame out: when it left − when the packet completing it arrived."""
    frame = 320
    index = {
        sig[k * frame : (k + 1) * frame].astype("<i2").tobytes(): k
        for k in range(len(sig) // frame)
    }
    out = []
    for t, pcm in frames_out(events):
        k = index.get(pcm)
        if k is not None:
            j = int(np.ceil(round((k + 1) * 0.02 / ptime, 6))) - 1
            out.append(t - arrivals[j][0])
    return out


def test_a_smooth_20ms_sender_is_held_at_most_5ms() -> None:
    # HEAD held every frame 20 ms (a fixed jitter margin): 20 ms of bridge delay, always.
    rx = RetimedReceiver(RtpReceiverConfig((L16,), rate=16000), base_delay=LOW)
    sig = noise(1.0, 1)
    arrivals = burst(sig, 1.0, 0.02)
    events = run(rx, arrivals)
    h = holds(sig, arrivals, events)
    assert len(h) == 50 and max(h) <= 0.005, max(h)
    times = [t for t, _ in frames_out(events)]
    assert np.allclose(np.diff(times), 0.020, atol=1e-6)
    assert rx.retimer.stats.concealed == TAIL  # nothing but the end's fade


def test_60ms_packets_wait_for_nothing_but_their_own_frames() -> None:
    # HEAD added the packet's duration - 20 ms (40 ms) to the margin: a perfectly paced 60 ms
    # stream brings every frame in time without it.
    rx = RetimedReceiver(RtpReceiverConfig((L16,), rate=16000), base_delay=LOW)
    sig = noise(1.2, 2)
    arrivals = burst(sig, 1.0, 0.06)
    events = run(rx, arrivals)
    first = frames_out(events)[0][0]
    assert first - arrivals[0][0] <= 0.005  # key-up to first frame out
    times = [t for t, _ in frames_out(events)]
    assert len(times) == 60 + tail(0.06) and np.allclose(np.diff(times), 0.020, atol=1e-6)
    assert rx.retimer.stats.concealed == tail(0.06) and rx.retimer.stats.stretched == 0


@pytest.mark.parametrize(
    ("ptime_ms", "lag_ms"), [(10, 0), (20, 0), (30, 10), (40, 0), (120, 0), (128, 16), (25, 15)]
)
def test_packetization_lag(ptime_ms: int, lag_ms: int) -> None:
    from adapters.rtp.retimer import packetization_lag

    assert packetization_lag(ptime_ms / 1000) == pytest.approx(lag_ms / 1000)


def test_128ms_packets_need_their_packetization_lag_only_and_stay_even() -> None:
    rx = RetimedReceiver(RtpReceiverConfig((L16,), rate=16000))
    sig = noise(1.28, 3)
    events = run(rx, burst(sig, 1.0, 0.128))
    times = [t for t, _ in frames_out(events)]
    assert len(times) == 64 + tail(0.128) and np.allclose(np.diff(times), 0.020, atol=1e-6)
    assert rx.retimer.stats.concealed == tail(0.128)
    assert rx.last_jitter == pytest.approx(0.0, abs=1e-6)  # clumps are not jitter


JITTER = {i: 0.030 for i in range(3, 50, 7)}  # every 7th packet 30 ms late


def test_jitter_grows_the_margin_and_the_next_bursts_conceal_nothing() -> None:
    # HEAD started every burst at its fixed 20 ms and stretched (one concealed frame, 20 ms
    # more delay) in each of them; the margin now keeps what the last burst needed.
    rx = RetimedReceiver(RtpReceiverConfig((L16,), rate=16000, hang_time=0.3), base_delay=LOW)
    concealed, stretched, margins = [], [], []
    for b in range(3):
        sig = noise(1.0, 10 + b)
        c0, s0 = rx.retimer.stats.concealed, rx.retimer.stats.stretched
        arrivals = burst(sig, 10.0 * (b + 1), 0.02, JITTER, seq0=100 * b)
        events = run(rx, arrivals)
        margins.append(frames_out(events)[0][0] - arrivals[0][0])  # the first frame's hold
        concealed.append(rx.retimer.stats.concealed - c0 - TAIL)
        stretched.append(rx.retimer.stats.stretched - s0)
        if b:
            times = [t for t, _ in frames_out(events)]
            assert np.allclose(np.diff(times), 0.020, atol=1e-6), b
    assert concealed[0] >= 1  # the first burst learns it (a frame it could not wait for)
    assert concealed[1:] == [0, 0] and stretched[1:] == [0, 0]
    assert margins[0] <= 0.005  # it started low
    assert 0.030 <= margins[1] <= 0.035  # and grew by the jitter seen, not in 20 ms steps


def test_the_margin_relaxes_when_the_jitter_goes_and_stays_bounded() -> None:
    rx = RetimedReceiver(RtpReceiverConfig((L16,), rate=16000, hang_time=0.3), base_delay=LOW)
    late = {i: 0.5 for i in range(5, 50, 5)}  # stalls far beyond any sensible margin
    run(rx, burst(noise(1.0, 20), 10.0, 0.02, late))
    run(rx, burst(noise(1.0, 21), 20.0, 0.02, seq0=100))
    assert rx.retimer.jitter <= rx.retimer.max_jitter  # bounded (0.1 s)
    seen = []
    for b in range(4):  # smooth from now on: it halves each burst, down to the base
        run(rx, burst(noise(1.0, 22 + b), 30.0 + 10 * b, 0.02, seq0=200 + 100 * b))
        seen.append(rx.retimer.jitter)
    assert seen == sorted(seen, reverse=True) and seen[-1] <= 0.1 / 16 + 1e-9
    events = run(rx, burst(noise(1.0, 30), 80.0, 0.02, seq0=900))
    assert [type(e) for _t, e in events].count(BurstStart) == 1


def test_a_stall_in_the_first_burst_is_kept_not_lost() -> None:
    # The first burst has nothing learned: a stall beyond the margin costs concealed frames
    # (a stretch each), never the late audio itself.
    rx = RetimedReceiver(RtpReceiverConfig((L16,), rate=16000))
    sig = noise(0.6, 4)
    late = {10: 0.035, 11: 0.015}  # packets 10 and 11 come together, 35 ms late
    events = run(rx, burst(sig, 1.0, 0.02, late))
    got = [p for _t, p in frames_out(events)]
    frames = [sig[i * 320 : (i + 1) * 320].astype("<i2").tobytes() for i in range(30)]
    assert got[:10] == frames[:10] and got[-TAIL - 18 : -TAIL] == frames[12:]
    assert rx.retimer.stats.dropped_owed == 0 and rx.retimer.stats.stretched == 2


def test_timestamps_that_stand_still_through_a_pause_are_no_jitter() -> None:
    # A sender that stops through a pause and carries on with the next timestamp: the
    # arrival times jump by the pause against the timestamps, which is not network jitter.
    rx = RetimedReceiver(RtpReceiverConfig((L16,), rate=16000, hang_time=0.5))
    first = burst(noise(0.4, 40), 1.0, 0.02)
    second = [(t + 0.3, data) for t, data in burst(noise(0.4, 41), 1.4, 0.02, seq0=20)]
    run(rx, first + second)  # (seq 20.. and timestamps 6400.. follow on from the first half)
    assert rx.last_jitter == pytest.approx(0.0, abs=1e-6)
