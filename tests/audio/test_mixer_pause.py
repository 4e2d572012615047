"""Issue 8: a pause inside one transmission stays one burst at the far side."""

from __future__ import annotations

from adapters.codecs.pcm import pcm_to_l16
from bridge.audio.mixer import (
    ListenMixer,
    PlayoutEvent,
    PlayoutFrame,
    TalkerStarted,
    TalkerStopped,
)

FRAME = 640  # 20 ms at 16 kHz


def run(
    mixer: ListenMixer, pushes: dict[int, int], release_at: int | None, ticks: int
) -> list[tuple[int, PlayoutEvent]]:
    """Tick ``ticks`` times (20 ms); at tick k push frame ``pushes[k]`` (its counter)."""
    out: list[tuple[int, PlayoutEvent]] = []
    for k in range(ticks):
        now = 100.0 + 0.02 * k
        if k in pushes:
            ctr = pushes[k]
            mixer.voice("us/radio", ctr, pcm_to_l16(bytes([ctr % 255 + 1]) * FRAME), now)
        if release_at is not None and k == release_at:
            mixer.floor_moved(None)
        out.extend((k, e) for e in mixer.tick(now))
    return out


def test_a_pause_of_300ms_inside_a_transmission_stays_one_burst() -> None:
    mixer = ListenMixer("c", 16000, "l16")
    pushes = {k: k for k in range(20)}  # 0.4 s of talk
    pushes.update({k: k - 15 for k in range(35, 55)})  # a 0.3 s pause, counters run on
    events = run(mixer, pushes, release_at=60, ticks=120)
    starts = [e for _k, e in events if isinstance(e, TalkerStarted)]
    stops = [(k, e) for k, e in events if isinstance(e, TalkerStopped)]
    assert len(starts) == 1, events
    assert len(stops) == 1 and stops[0][1].reason == "released"
    frames = [e for _k, e in events if isinstance(e, PlayoutFrame)]
    sent = [bytes([c % 255 + 1]) * FRAME for c in sorted(pushes.values())]
    played = [f.pcm for f in frames if f.pcm in sent]
    assert played == sent  # every frame of both halves, in order (the rest: concealment)
    assert len(frames) - len(sent) <= 2 * 3 + 1  # at most 60 ms of fading PLC each time


def test_a_talker_that_vanishes_times_out_after_the_hold() -> None:
    mixer = ListenMixer("c", 16000, "l16", pause_hold=0.5)
    events = run(mixer, {k: k for k in range(10)}, release_at=None, ticks=100)
    stops = [(k, e) for k, e in events if isinstance(e, TalkerStopped)]
    assert len(stops) == 1 and stops[0][1].reason == "timeout"
    assert 9 + 25 <= stops[0][0] <= 9 + 30  # 0.5 s after the last frame, not for ever


def test_frames_played_after_a_stall_carry_their_own_period_times() -> None:
    """The caller stalls 60 ms and then ticks once: the periods it missed come out at once,
    each stamped with the time it was due, so an RTP output keeps their timestamps contiguous
    (adapters.rtp.sender ``media``); the frames of a real pause are simply not there."""
    mixer = ListenMixer("c", 16000, "l16")
    times: list[float] = []
    for k in list(range(10)) + [13, 14, 15]:  # no tick at k = 10, 11, 12: the stall
        now = 100.0 + 0.02 * k
        mixer.voice("us/radio", k, pcm_to_l16(bytes([k + 1]) * FRAME), now - 0.001)
        if k == 13:  # what came during the stall is there when the caller runs again
            for late in (10, 11, 12):
                mixer.voice("us/radio", late, pcm_to_l16(bytes([late + 1]) * FRAME), now)
        times += [e.at for e in mixer.tick(now) if isinstance(e, PlayoutFrame)]
    steps = [round(b - a, 6) for a, b in zip(times, times[1:])]
    assert steps and all(s == 0.02 for s in steps), (steps, times)
