"""bridge.audio.jitter: adaptive playout under simulated loss and jitter, on a fake clock."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from bridge.audio.jitter import JitterBuffer, PlayoutItem

TICK = 0.020


@dataclass
class Run:
    items: list[tuple[float, PlayoutItem]] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)  # playout time - arrival, for frames
    targets: list[float] = field(default_factory=list)
    depths: list[int] = field(default_factory=list)
    lost: set[int] = field(default_factory=set)


def simulate(
    jb: JitterBuffer,
    frames: int,
    *,
    loss: float = 0.05,
    jitter: float = 0.040,
    jitter_until: int | None = None,
    spikes: float = 0.0,
    seed: int = 1,
    first_seq: int = 0,
    modulus: int = 1 << 16,
) -> Run:
    """Send one frame every 20 ms through a lossy, jittery path; pop every 20 ms."""
    rng = random.Random(seed)
    arrivals = []
    run = Run()
    for i in range(frames):
        if rng.random() < loss:
            run.lost.add(i)
            continue
        delay = 0.030
        if jitter_until is None or i < jitter_until:
            delay += rng.uniform(0, jitter) + (0.150 if rng.random() < spikes else 0.0)
        arrivals.append((i * TICK + delay, i))
    arrivals.sort()
    arrival_of = dict((i, t) for t, i in arrivals)
    k = 0
    for step in range(frames + 40):
        now = step * TICK
        while k < len(arrivals) and arrivals[k][0] <= now:
            t, i = arrivals[k]
            jb.push((first_seq + i) % modulus, i.to_bytes(4, "big"), t)
            k += 1
        item = jb.pop(now)
        run.targets.append(jb.target_delay_ms)
        run.depths.append(jb.stats.depth)
        if item is not None:
            run.items.append((now, item))
            if item.kind == "frame":
                assert item.payload is not None
                run.delays.append(now - arrival_of[int.from_bytes(item.payload, "big")])
    return run


def test_loss_and_jitter_are_concealed_within_bounds() -> None:
    jb = JitterBuffer(frame_ms=20, min_delay_ms=20, max_delay_ms=200, max_frames=50)
    run = simulate(jb, 1500, loss=0.05, jitter=0.040, spikes=0.02)
    assert max(run.delays) <= 0.200  # never played later than max_delay after arrival
    assert max(run.depths) <= 50
    assert max(run.targets) <= 200
    # Every sequence number from the first to the last is accounted for, in order, except
    # the frames skipped on purpose to shrink the delay.
    seqs = [item.seq for _, item in run.items if item.seq is not None]
    assert seqs == sorted(seqs)
    assert len(set(range(seqs[0], seqs[-1] + 1)) - set(seqs)) == jb.stats.skipped
    kinds = {item.seq: item.kind for _, item in run.items if item.seq is not None}
    for lost in run.lost:
        if seqs[0] <= lost <= seqs[-1]:
            assert kinds[lost] in ("fec", "conceal")
    st = jb.stats
    assert st.late > 0  # the 150 ms spikes arrive after their turn
    assert st.fec > 0 and st.concealed > 0
    assert st.received == st.played + st.late + st.duplicate + st.overflow_dropped + st.skipped


def test_target_grows_under_jitter_and_shrinks_after() -> None:
    jb = JitterBuffer()
    run = simulate(jb, 1500, loss=0.0, jitter=0.060, jitter_until=600)
    assert run.targets[0] == 20
    assert run.targets[590] > 45  # about the 95th percentile of 60 ms of jitter
    assert max(run.targets[:600]) <= 200
    assert run.targets[-1] < 25  # decayed back towards min_delay
    # and it decays slowly: no cliff right after the jitter stops
    assert run.targets[620] > 30
    # the real delay follows the target down, one skipped frame at a time
    assert jb.stats.skipped > 0
    assert max(run.delays[-200:]) <= 0.040 + 1e-9  # min target + at most one frame of pop phase


def test_no_jitter_plays_every_frame_without_concealment() -> None:
    jb = JitterBuffer()
    run = simulate(jb, 300, loss=0.0, jitter=0.0)
    kinds = [item.kind for _, item in run.items]
    assert kinds[:300] == ["frame"] * 300
    assert set(kinds[300:]) <= {"conceal"}  # the tail until the burst times out
    assert jb.stats.late == 0 and jb.stats.skipped == 0
    assert max(run.delays) <= 0.040 + 1e-9  # target + at most one frame of pop phase


def test_sequence_wrap_16_and_32_bit() -> None:
    jb16 = JitterBuffer()
    run = simulate(jb16, 400, first_seq=65_400, seed=3)
    seqs = [item.seq for _, item in run.items if item.seq is not None]
    assert 65_535 in seqs and 0 in seqs
    assert all((b - a) % 65_536 == 1 for a, b in zip(seqs, seqs[1:]))
    jb32 = JitterBuffer(seq_bits=32)
    run = simulate(jb32, 400, first_seq=(1 << 32) - 200, modulus=1 << 32, seed=3)
    seqs = [item.seq for _, item in run.items if item.seq is not None]
    assert all((b - a) % (1 << 32) == 1 for a, b in zip(seqs, seqs[1:]))
    with pytest.raises(ValueError):
        jb16.push(70_000, b"x", 0.0)


def test_reordering_inside_the_delay_is_played_in_order() -> None:
    jb = JitterBuffer(min_delay_ms=60)
    for seq, t in [(0, 0.000), (2, 0.041), (1, 0.045), (4, 0.080), (3, 0.081), (5, 0.100)]:
        jb.push(seq, bytes([seq]), t)
    out = [jb.pop(step * TICK) for step in range(12)]
    played = [item for item in out if item is not None]
    assert out[0] is None and out[2] is None  # buffering for 60 ms
    assert [(i.kind, i.seq) for i in played[:6]] == [("frame", s) for s in range(6)]


def test_fec_when_successor_is_buffered_conceal_when_not() -> None:
    jb = JitterBuffer(min_delay_ms=40)
    for seq in (0, 2, 3):
        jb.push(seq, bytes([seq]), 0.020 * seq)  # seq 1 is lost
    assert jb.pop(0.0) is None
    assert jb.pop(0.020) is None
    assert jb.pop(0.040) == PlayoutItem("frame", 0, b"\x00")
    assert jb.pop(0.060) == PlayoutItem("fec", 1, b"\x02")  # decode seq 2's FEC for seq 1
    assert jb.pop(0.080) == PlayoutItem("frame", 2, b"\x02")
    assert jb.pop(0.100) == PlayoutItem("frame", 3, b"\x03")
    item = jb.pop(0.120)
    assert item is not None and item.kind == "conceal"
    jb.push(2, b"\x02", 0.125)  # already played: a duplicate
    jb.push(4, b"\x04", 0.125)  # its turn was concealed: late
    assert (jb.stats.duplicate, jb.stats.late) == (1, 1)


def test_burst_ends_after_silence_and_reset_starts_over() -> None:
    jb = JitterBuffer(min_delay_ms=20, max_delay_ms=100)
    jb.push(10, b"a", 0.0)
    assert jb.pop(0.0) is None
    assert jb.pop(0.020) == PlayoutItem("frame", 10, b"a")
    tail = [jb.pop(0.020 * k) for k in range(2, 12)]
    assert tail[0] is not None and tail[0].kind == "conceal"
    assert tail[-1] is None  # more than max_delay without packets: the burst is over
    jb.push(500, b"b", 1.0)  # a new burst may start anywhere
    assert jb.pop(1.0) is None
    assert jb.pop(1.020) == PlayoutItem("frame", 500, b"b")
    jb.reset()
    assert jb.pop(1.040) is None and jb.stats.depth == 0


def test_depth_is_bounded_by_dropping_the_oldest() -> None:
    jb = JitterBuffer(max_frames=10, max_delay_ms=1000)
    for seq in range(25):
        jb.push(seq, bytes([seq]), 0.0)
    assert jb.stats.depth == 10
    assert jb.stats.overflow_dropped == 15
    item = jb.pop(1.0)
    assert item is not None and item.seq == 15


def test_far_jump_resynchronises() -> None:
    jb = JitterBuffer()
    jb.push(0, b"a", 0.0)
    jb.pop(0.0)
    jb.pop(0.020)
    jb.push(30_000, b"b", 0.040)  # a restarted sender, far ahead
    jb.pop(0.040)
    assert jb.pop(0.060) == PlayoutItem("frame", 30_000, b"b")


def test_playout_item_validates() -> None:
    with pytest.raises(ValueError):
        PlayoutItem("frame", 1, None)
    with pytest.raises(ValueError):
        PlayoutItem("conceal", 1, b"x")
    with pytest.raises(ValueError):
        PlayoutItem("bogus", 1, b"x")  # type: ignore[arg-type]
