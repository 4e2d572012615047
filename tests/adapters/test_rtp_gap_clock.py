"""Issue 8, input side: a gap the receiver would fill keeps the burst and its 20 ms clock
(adapters.rtp.receiver hang deadline, adapters.rtp.retimer running clock, starting margin,
stretch paid back); on a fake clock."""

from __future__ import annotations

import numpy as np

from adapters.codecs.pcm import pcm_to_l16
from adapters.rtp.packet import RtpPacket
from adapters.rtp.receiver import Audio, BurstEnd, BurstStart, RtpEvent, RtpReceiver
from adapters.rtp.retimer import RetimedReceiver
from adapters.rtp.stream import PayloadFormat, RtpReceiverConfig
from tests.adapters.rtp_clock import drive as drive_clock

L16 = PayloadFormat.of("l16", 97, 16000)
ADDR = ("127.0.0.1", 5004)
FRAME = 320  # samples of 20 ms at 16 kHz
Arrivals = list[tuple[float, bytes]]


def noise(seconds: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-8000, 8000, int(16000 * seconds)).astype(np.int16)


def send(
    sig: np.ndarray,
    ptime: float,
    *,
    lost: frozenset[int] | set[int] = frozenset(),
    late: dict[int, float] | None = None,
) -> Arrivals:
    """``sig`` as L16 packets of ``ptime``; packet i arrives at 1 + (i + 1) ptime (+ late)."""
    n = round(16000 * ptime)
    out: Arrivals = []
    for i in range(len(sig) // n):
        if i in lost:
            continue
        t = 1.0 + (i + 1) * ptime + (late or {}).get(i, 0.0)
        t = max(t, out[-1][0] if out else t)
        out.append(
            (t, RtpPacket(97, i, i * n, 7, pcm_to_l16(sig[i * n : (i + 1) * n])).serialize())
        )
    return out


def drive(rx: RtpReceiver, arrivals: Arrivals) -> list[tuple[float, RtpEvent]]:
    """Packets and timers in time order, as the driver does; [(time, event)]."""
    return drive_clock(rx, arrivals)


def audio(events: list[tuple[float, RtpEvent]]) -> list[tuple[float, bytes]]:
    return [(t, e.pcm) for t, e in events if isinstance(e, Audio)]


def frames_of(sig: np.ndarray) -> list[bytes]:
    return [
        sig[k * FRAME : (k + 1) * FRAME].astype("<i2").tobytes() for k in range(len(sig) // FRAME)
    ]


def test_a_lost_256ms_block_does_not_end_the_burst() -> None:
    # HEAD: hang deadline = last packet + 0.5 s; a lost 256 ms block leaves 512 ms between
    # arrivals, so the burst ended, the next packet started a second one and the lost block
    # was never concealed.
    rx = RtpReceiver(RtpReceiverConfig((L16,), rate=16000))  # hang 0.5 s, max gap 300 ms
    events = drive(rx, send(noise(1.28, 1), 0.256, lost={2}))
    kinds = [type(e) for _t, e in events]
    assert kinds.count(BurstStart) == 1 and kinds.count(BurstEnd) == 1, kinds
    assert kinds[-1] is BurstEnd and rx.stats.jumps == 0
    assert rx.stats.concealed == 4096  # the 256 ms were filled (16 kHz ticks)
    assert len(audio(events)) == 64  # 1.28 s of 20 ms frames, the lost block included


def test_a_lost_block_of_ffmpeg_default_packets_does_not_end_the_burst() -> None:
    # ffmpeg's default packetization: each 256 ms block as a 181.5 ms and a 74.5 ms packet,
    # back to back. Losing a block leaves 512 ms between arrivals after a short packet: a
    # deadline of the last packet's duration + max gap + 40 ms (414 ms) is not enough.
    rx = RtpReceiver(RtpReceiverConfig((L16,), rate=16000))
    sig = noise(2.048, 6)
    arrivals: Arrivals = []
    seq = 0
    for block in range(8):
        start = block * 4096
        for lo, hi in ((start, start + 2904), (start + 2904, start + 4096)):
            if block != 4:
                pkt = RtpPacket(97, seq, lo, 7, pcm_to_l16(sig[lo:hi]))
                arrivals.append((1.0 + (block + 1) * 0.256, pkt.serialize()))
            seq += 1
    events = drive(rx, arrivals)
    kinds = [type(e) for _t, e in events]
    assert kinds.count(BurstStart) == 1 and kinds.count(BurstEnd) == 1
    assert rx.stats.concealed == 4096 and len(audio(events)) == 102


def test_the_hang_time_still_ends_a_burst_of_short_packets() -> None:
    rx = RtpReceiver(RtpReceiverConfig((L16,), rate=16000, hang_time=0.5))
    arrivals = send(noise(0.2, 2), 0.02)
    events = drive(rx, arrivals)
    end = [t for t, e in events if isinstance(e, BurstEnd)]
    assert end == [arrivals[-1][0] + 0.5]  # 20 ms + 300 ms + 40 ms is less than 0.5 s


def test_the_frame_clock_runs_through_a_gap_the_receiver_fills() -> None:
    # HEAD: after 60 ms of concealment the re-timer went quiet mid-burst; the frames after a
    # lost 100 ms packet came out ~60 ms after the last concealed one, so the far side's
    # frame counter and time fell out of step.
    rx = RetimedReceiver(RtpReceiverConfig((L16,), rate=16000))
    sig = noise(1.0, 3)
    events = drive(rx, send(sig, 0.1, lost={4}))
    out = audio(events)
    times = [t for t, _ in out]
    assert np.allclose(np.diff(times), 0.020, atol=1e-6), sorted(set(np.round(np.diff(times), 3)))
    got, want = [p for _t, p in out], frames_of(sig)
    assert got[:20] == want[:20]
    assert got[26:50] == want[26:50]  # in its place (frame 25 is cross-faded from the PLC)
    assert got[23:25] == [bytes(2 * FRAME)] * 2  # faded out: silence, still on the clock
    assert rx.retimer.stats.restarts == 1  # only at the end of the burst
    assert len(got) == 50 + 10  # a hang-time end: the clock ran on for two packets (200 ms)


def test_a_frame_8ms_late_in_the_first_burst_is_not_a_stretch() -> None:
    # HEAD started at a 4 ms margin: one packet 8 ms late cost a concealed frame and shifted
    # the rest of the burst by 20 ms (L16 passthrough no longer sample-aligned).
    rx = RetimedReceiver(RtpReceiverConfig((L16,), rate=16000))
    sig = noise(1.0, 4)
    events = drive(rx, send(sig, 0.02, late={10: 0.008}))
    got = [p for _t, p in audio(events)]
    assert rx.retimer.stats.stretched == 0
    assert got[:50] == frames_of(sig)


def test_a_stretch_is_paid_back_by_the_next_filled_loss() -> None:
    # HEAD: a late frame's stretch (20 ms) stayed for the rest of the burst.
    rx = RetimedReceiver(RtpReceiverConfig((L16,), rate=16000))
    sig = noise(1.2, 5)
    arrivals = send(sig, 0.02, late={10: 0.025}, lost={30})
    events = drive(rx, arrivals)
    out = audio(events)
    times = [t for t, _ in out]
    assert rx.retimer.stats.stretched == 1 and rx.retimer.stats.unstretched == 1
    assert np.allclose(np.diff(times), 0.020, atol=1e-6)  # evenly spaced all the way
    # after the loss, frames wait no longer than they did before the stretch
    index = {p: k for k, p in enumerate(frames_of(sig))}
    hold = {index[p]: t - (1.0 + (index[p] + 1) * 0.02) for t, p in out if p in index}
    assert hold[5] < 0.0105 and hold[40] < 0.0105 and hold[20] > 0.029
