"""Issue 8, far gateway: a talker resuming after a short quiet is played, not dropped as late;
late frames are no activity; a pause restarts at the delay the audio played with; fake clock."""

from __future__ import annotations

import pytest

from adapters.codecs.pcm import pcm_to_l16
from bridge.audio.jitter import JitterBuffer
from bridge.audio.receiver import MixerStats, TalkReceiver

FRAME = 640  # bytes of 20 ms at 16 kHz


def payload(ctr: int) -> bytes:
    return pcm_to_l16(bytes([ctr % 251 + 1]) * FRAME)


def test_a_frame_behind_the_cursor_after_concealments_restarts_the_buffer() -> None:
    # HEAD: the sender went quiet for 80 ms with its counter standing still; the buffer
    # concealed 3-4 periods, moved its cursor on, and dropped every frame after as late.
    jb = JitterBuffer(20, 20, 200, seq_bits=32)
    played: list[int | None] = []
    for k in range(40):
        now = 10.0 + 0.02 * k
        if k < 10:
            jb.push(k, b"x%d" % k, now)
        elif k >= 14:
            jb.push(k - 4, b"x%d" % (k - 4), now)  # counters 10.. resume 80 ms later
        item = jb.pop(now)
        if item is not None and item.kind == "frame":
            played.append(item.seq)
    assert jb.stats.late == 0
    assert played == list(range(0, 35))  # both halves, in order, nothing dropped


def test_late_and_duplicate_frames_are_not_activity() -> None:
    stats = MixerStats()
    r = TalkReceiver("s", 16000, "l16", stats, min_delay_ms=20, start_delay_ms=20)
    for k in range(5):
        r.push(k, payload(k), 1.0 + 0.02 * k)
        r.pop(1.0 + 0.02 * k + 0.02)
    r.push(2, payload(2), 1.3)  # a duplicate, 200 ms later (HEAD: last_push moved to 1.3)
    assert r.last_push == 1.08


def test_after_a_pause_audio_plays_no_earlier_than_before() -> None:
    # HEAD restarted the buffer at the target, which had decayed while the burst played on
    # at its start delay (the buffer never skips a frame): the frames after the pause played
    # earlier than those before it (here 60 -> 40 ms).
    stats = MixerStats()
    r = TalkReceiver("s", 16000, "l16", stats, min_delay_ms=20, start_delay_ms=60)
    pushes = {k: k for k in range(120)}
    pushes.update({k: k - 20 for k in range(140, 170)})  # a 0.4 s pause, counters run on
    arrival: dict[int, float] = {}
    delay: dict[int, float] = {}
    decayed = None
    for k in range(200):  # the mixer's periods: every 20 ms
        now = 100.0 + 0.02 * k
        if k in pushes:
            r.push(pushes[k], payload(pushes[k]), now)
            arrival[pushes[k]] = now
        if r.jitter.stats.depth == 0 and now - r.last_push > 0.1:
            decayed = r.jitter.target_delay_ms if decayed is None else decayed
            r.pause()  # what ListenMixer does when nothing came for longer than jitter
        pcm = r.pop(now)
        for ctr, t in arrival.items():
            if pcm == payload(ctr) and ctr not in delay:
                delay[ctr] = now - t
    assert decayed is not None and decayed < 30  # the target decayed meanwhile
    assert sorted(delay) == list(range(150))
    assert max(delay[c] for c in range(120)) == pytest.approx(0.06)
    assert min(delay[c] for c in range(120, 150)) >= 0.06 - 1e-9
