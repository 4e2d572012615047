"""Issue 8: the far side's share of the bridge delay (jitter buffer start, playout phase).

On a fake clock: the mixer is ticked every 5 ms (as :class:`PlayoutTicker` now does) and keeps
its own 20 ms periods, started when a burst's first frame is due; a talker heard before on a
clean path starts its next burst at the minimum delay; one whose Opus frames were lost keeps
a frame of delay, so that a lost frame's successor is there for FEC.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from adapters.codecs.opus import OpusEncoder
from adapters.codecs.pcm import pcm_to_l16
from bridge.audio.jitter import JitterBuffer
from bridge.audio.mixer import ListenMixer, PlayoutEvent, PlayoutFrame, TalkerStopped
from bridge.audio.playout import PlayoutTicker
from tests.adapters.gateway_rig import speech_like

FRAME = 0.020
TICK = 0.005  # bridge.audio.playout.TICK
T0 = 1000.0
Push = tuple[float, str, int, bytes]  # arrival time, sender, SFrame counter, payload


def tone(k: int) -> bytes:
    return pcm_to_l16(bytes([k % 250 + 1]) * 640)


def run(
    mixer: ListenMixer,
    pushes: list[Push],
    until: float,
    step: float = 0.005,
) -> list[tuple[float, PlayoutEvent]]:
    """Deliver (time, sender, ctr, payload) in order and tick every ``step`` seconds."""
    pushes = sorted(pushes, key=lambda p: p[0])
    out: list[tuple[float, PlayoutEvent]] = []
    k = 0
    for i in range(int(round(until / step)) + 1):
        now = T0 + i * step
        while k < len(pushes) and pushes[k][0] <= now + 1e-9:
            t, sender, ctr, payload = pushes[k]
            mixer.voice(sender, ctr, payload, t)
            k += 1
        out.extend((now, e) for e in mixer.tick(now))
    return out


def burst(sender: str, first_ctr: int, n: int, start: float, offset: float = 0.0013) -> list[Push]:
    return [
        (T0 + start + offset + i * FRAME, sender, first_ctr + i, tone(first_ctr + i))
        for i in range(n)
    ]


def frames(out: list[tuple[float, PlayoutEvent]]) -> list[tuple[float, PlayoutFrame]]:
    return [(t, e) for t, e in out if isinstance(e, PlayoutFrame)]


def test_ticked_every_5ms_the_mixer_plays_one_frame_per_20ms_from_the_first_due() -> None:
    mixer = ListenMixer("c", 16000, "l16")
    pushes = burst("us/a", 0, 25, start=0.0)
    out = frames(run(mixer, pushes, until=0.8))
    played = [(t, e) for t, e in out if e.pcm in {tone(i) for i in range(25)}]
    assert [e.pcm for _t, e in played] == [tone(i) for i in range(25)]  # all, in order
    times = [t for t, _e in played]
    # one period every 20 ms (the old mixer produced a frame at every tick)
    assert all(b - a == pytest.approx(FRAME) for a, b in zip(times, times[1:]))
    # first frame out within one 5 ms tick of being due: arrival + the 40 ms start delay
    due = pushes[0][0] + 0.040
    assert due <= times[0] < due + TICK + 1e-9


def test_a_clean_talkers_second_burst_starts_at_the_minimum_delay() -> None:
    mixer = ListenMixer("c", 16000, "l16")
    first = burst("us/a", 0, 20, start=0.0)
    out = run(mixer, first, until=1.5)  # no release: the pause hold times the burst out
    assert any(isinstance(e, TalkerStopped) for _t, e in out)
    t_first = next(t for t, e in frames(out) if e.pcm == tone(0))
    assert first[0][0] + 0.040 <= t_first < first[0][0] + 0.040 + TICK + 1e-9  # not known yet
    second = burst("us/a", 20, 20, start=2.0, offset=0.0021)
    played = frames(run(mixer, second, until=3.0))
    t_first = next(t for t, e in played if e.pcm == tone(20))
    # learned: a clean path, so the 10 ms minimum
    assert second[0][0] + 0.010 <= t_first < second[0][0] + 0.010 + TICK + 1e-9
    assert mixer.start_delay_ms("us/a") == 10
    assert mixer.start_delay_ms("ca/b") == 40  # another talker: still unknown


def test_jitter_and_late_frames_raise_the_next_start() -> None:
    mixer = ListenMixer("c", 16000, "l16")
    rng = random.Random(3)
    first = [
        (T0 + 0.001 + i * FRAME + rng.uniform(0, 0.015), "us/a", i, tone(i)) for i in range(40)
    ]
    run(mixer, first, until=2.2)
    learned = mixer.start_delay_ms("us/a")
    assert 12 <= learned <= 16  # about the 95th percentile of 15 ms of jitter
    late = burst("us/a", 100, 30, start=3.0)
    late[10] = (late[10][0] + 0.060, *late[10][1:])  # 60 ms late: after its turn
    run(mixer, late, until=5.0)
    assert mixer.stats.late == 1
    # this burst's spread (the one late frame is above its 95th percentile) plus a frame
    assert mixer.start_delay_ms("us/a") == pytest.approx(20, abs=1)


def opus_burst(sender: str, first_ctr: int, start: float, lost: set[int]) -> list[Push]:
    enc = OpusEncoder(16000, 48000, True, 5, 10)
    pcm = speech_like(16000, 1.0, seed=first_ctr)
    packets = [enc.encode(pcm[i : i + 640]) for i in range(0, len(pcm), 640)]
    return [
        (T0 + start + 0.001 + i * FRAME, sender, first_ctr + i, p)
        for i, p in enumerate(packets)
        if i not in lost
    ]


def test_opus_losses_keep_a_frame_of_delay_so_fec_rebuilds_the_next_bursts_losses() -> None:
    lost = {12, 30}
    # A clean first burst teaches the minimum ...
    clean = ListenMixer("c", 16000, "opus")
    run(clean, opus_burst("us/a", 0, 0.0, set()), until=2.2)
    assert clean.start_delay_ms("us/a") < 20
    # ... where a lost frame's successor has not arrived when its turn comes: concealed
    # (each such turn waits one 5 ms tick, so the delay creeps up towards what FEC needs).
    run(clean, opus_burst("us/a", 100, 3.0, lost), until=5.2)
    assert clean.stats.fec < len(lost) and clean.stats.concealed >= 1
    # That burst's losses teach a frame more: the next burst rebuilds its losses by FEC.
    assert clean.start_delay_ms("us/a") >= 20
    fec = clean.stats.fec
    run(clean, opus_burst("us/a", 200, 6.0, lost), until=8.2)
    assert clean.stats.fec - fec == len(lost)
    # A talker never heard before starts at 20 ms: its first burst's losses use FEC too.
    fresh = ListenMixer("c", 16000, "opus")
    run(fresh, opus_burst("ca/b", 0, 0.0, lost), until=2.2)
    assert fresh.stats.fec == len(lost)


def test_a_configured_minimum_is_also_the_start_and_the_floor() -> None:
    mixer = ListenMixer("c", 16000, "l16", min_delay_ms=60)
    assert mixer.start_delay_ms("us/a") == 60
    run(mixer, burst("us/a", 0, 20, start=0.0), until=1.5)
    assert mixer.start_delay_ms("us/a") == 60  # a clean path never goes below it


def test_jitter_buffer_start_delay_and_peak_spread() -> None:
    jb = JitterBuffer(20, 10, 200, start_delay_ms=30)
    assert jb.target_delay_ms == 30
    for i, jitter in enumerate([0.0, 0.004, 0.001, 0.007, 0.002]):
        jb.push(i, bytes([i]), i * FRAME + jitter)
    assert jb.peak_spread_ms == pytest.approx(7.0)
    assert jb.pop(0.029) is None  # the first frame is due at 30 ms
    item = jb.pop(0.030)
    assert item is not None and item.kind == "frame" and item.seq == 0
    with pytest.raises(ValueError):
        JitterBuffer(20, 20, 200, start_delay_ms=10)


async def test_the_ticker_runs_at_a_quarter_frame() -> None:
    ticks: list[float] = []
    ticker = PlayoutTicker(ticks.append)
    ticker.start()
    try:

        async def enough() -> None:
            while len(ticks) < 9:
                await asyncio.sleep(0.001)

        await asyncio.wait_for(enough(), 2.0)
    finally:
        await ticker.stop()
    assert ticks[8] - ticks[0] < 8 * FRAME / 2  # well under the old 20 ms per tick


def test_a_frame_just_behind_its_time_waits_one_tick_instead_of_being_concealed() -> None:
    pushes = burst("us/a", 0, 25, start=0.0)
    pushes[10] = (pushes[10][0] + 0.016, *pushes[10][1:])  # 2 ms after its turn (10 ms start)
    fine = ListenMixer("c", 16000, "l16", min_delay_ms=10)
    out = frames(run(fine, pushes, until=1.0))
    sent = [tone(i) for i in range(25)]
    played = [(t, e) for t, e in out if e.pcm in sent]
    assert [e.pcm for _t, e in played] == sent and fine.stats.late == 0
    times = [t for t, _e in played]
    assert times[10] - times[9] == pytest.approx(FRAME + TICK)  # the rest plays 5 ms later
    assert times[11] - times[10] == pytest.approx(FRAME)
    # Ticked every 20 ms there is no finer tick to wait for: one period every 20 ms, as ever.
    coarse = ListenMixer("c", 16000, "l16", min_delay_ms=10)
    times = [t for t, _e in frames(run(coarse, pushes, until=1.0, step=FRAME))]
    assert all(b - a == pytest.approx(FRAME) for a, b in zip(times, times[1:]))


def test_an_opus_frame_that_came_late_adds_one_frame_to_the_next_start() -> None:
    mixer = ListenMixer("c", 16000, "opus")
    late = opus_burst("us/a", 0, 0.0, set())
    late[20] = (late[20][0] + 0.030, *late[20][1:])  # 30 ms late: after its turn
    run(mixer, late, until=2.2)
    assert mixer.stats.late == 1  # its turn was rebuilt from its successor's FEC
    # the spread plus one frame (the late frame's FEC turn is not counted twice, as a loss)
    assert mixer.start_delay_ms("us/a") == pytest.approx(20, abs=1)
    assert mixer.receiver("us/a") is None
