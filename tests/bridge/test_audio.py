"""bridge.audio: the talk sender against a fake endpoint, the listen mixer on a fake clock."""

from __future__ import annotations

import asyncio
import random

import numpy as np
import pytest

from adapters.codecs.opus import OpusDecoder, OpusEncoder
from adapters.codecs.pcm import pcm_to_l16
from bridge.audio.mixer import (
    ListenMixer,
    PlayoutEvent,
    PlayoutFrame,
    TalkerStarted,
    TalkerStopped,
)
from bridge.audio.sender import TalkSender
from bridge.endpoint import events as ev
from tests.adapters.gateway_rig import align, pcm_array, speech_like

CH = "inc-1"
TICK = 0.020
FRAME16 = 640  # bytes of 20 ms at 16 kHz


def frames_of(pcm: bytes, size: int = FRAME16) -> list[bytes]:
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


# --- TalkSender ----------------------------------------------------------------------------


class FakeEndpoint:
    """Answers floor requests when the test says so; records what is sent."""

    def __init__(self) -> None:
        self.answer: asyncio.Future[bool] | None = None
        self.sent: list[bytes] = []
        self.log: list[str] = []

    async def start_burst(self, ch: str, priority: str = "normal", timeout: float = 5.0) -> bool:
        self.log.append(f"request {priority}")
        self.answer = asyncio.get_running_loop().create_future()
        return await self.answer

    def send_voice(self, ch: str, payload: bytes) -> None:
        self.sent.append(payload)

    async def end_burst(self, ch: str) -> None:
        self.log.append(f"end after {len(self.sent)}")


async def settle() -> None:
    for _ in range(5):  # let the burst task run (no time passes)
        await asyncio.sleep(0)


@pytest.fixture
def frames() -> list[bytes]:
    return frames_of(speech_like(16000, 0.4, seed=1))  # 20 frames


async def test_frames_before_the_grant_are_held_then_sent_in_order(frames: list[bytes]) -> None:
    ep = FakeEndpoint()
    tx = TalkSender(ep, CH, codec="l16")
    tx.start("high")
    await settle()
    assert tx.state == "requesting" and ep.log == ["request high"]
    for f in frames[:3]:
        tx.send(f)
    assert ep.sent == []
    assert ep.answer is not None
    ep.answer.set_result(True)
    await settle()
    assert tx.state == "talking"
    for f in frames[3:]:
        tx.send(f)
    assert ep.sent == [pcm_to_l16(f) for f in frames]  # nothing lost, nothing reordered
    tx.stop()
    await tx.drain()
    assert ep.log == ["request high", f"end after {len(frames)}"]
    assert tx.stats.sent == len(frames) and tx.stats.granted == 1


async def test_denied_burst_drops_and_counts(frames: list[bytes]) -> None:
    ep = FakeEndpoint()
    tx = TalkSender(ep, CH)
    tx.start()
    await settle()
    tx.send(frames[0])
    tx.send(frames[1])
    assert ep.answer is not None
    ep.answer.set_result(False)
    await settle()
    tx.send(frames[2])
    tx.stop()
    await tx.drain()
    assert ep.sent == [] and tx.state == "idle"
    assert tx.stats.denied == 1 and tx.stats.dropped_denied == 3
    assert ep.log == ["request normal"]  # no release, no seal for a burst never granted


async def test_pre_grant_buffer_is_bounded_and_keeps_the_newest(frames: list[bytes]) -> None:
    ep = FakeEndpoint()
    tx = TalkSender(ep, CH, codec="l16", max_pending=4)
    tx.start()
    await settle()
    for f in frames[:10]:
        tx.send(f)
    tx.stop()  # key-down before the answer: what is held still goes out, then the seal
    assert ep.answer is not None
    ep.answer.set_result(True)
    await tx.drain()
    assert ep.sent == [pcm_to_l16(f) for f in frames[6:10]]
    assert tx.stats.dropped_overflow == 6
    assert ep.log[-1] == "end after 4"


async def test_opus_frames_and_revocation(frames: list[bytes]) -> None:
    ep = FakeEndpoint()
    tx = TalkSender(ep, CH)
    tx.start()
    await settle()
    assert ep.answer is not None
    ep.answer.set_result(True)
    await settle()
    tx.send(frames[0])
    tx.revoked()
    tx.send(frames[1])
    assert len(ep.sent) == 1 and OpusDecoder(16000).decode(ep.sent[0])  # a real Opus packet
    assert tx.stats.dropped_denied == 1
    with pytest.raises(ValueError):
        tx.send(b"\x00" * 10)
    await tx.aclose()


async def test_frames_outside_a_burst_are_counted(frames: list[bytes]) -> None:
    tx = TalkSender(FakeEndpoint(), CH)
    tx.send(frames[0])
    assert tx.stats.dropped_idle == 1


# --- ListenMixer ---------------------------------------------------------------------------


def voice(sender: str, ctr: int, payload: bytes) -> ev.Voice:
    return ev.Voice(CH, sender, payload, ctr, 0.0)


def feed(mixer: ListenMixer, event: ev.Event, now: float) -> None:
    """What the gateway does with the endpoint's events of the mixer's channel."""
    if isinstance(event, ev.Voice):
        mixer.voice(event.sender, event.ctr, event.payload, now)
    elif isinstance(event, ev.TalkerChanged):
        mixer.floor_moved(event.talker)
    elif isinstance(event, ev.BurstSealed):
        mixer.burst_sealed(event.sender)


def run_mixer(
    mixer: ListenMixer,
    arrivals: list[tuple[float, ev.Event]],
    until: float,
) -> list[tuple[float, PlayoutEvent]]:
    """Deliver events at their times and tick every 20 ms on a fake clock."""
    arrivals = sorted(arrivals, key=lambda a: a[0])
    out: list[tuple[float, PlayoutEvent]] = []
    k = 0
    for step in range(int(until / TICK) + 1):
        now = step * TICK
        while k < len(arrivals) and arrivals[k][0] <= now:
            feed(mixer, arrivals[k][1], arrivals[k][0])
            k += 1
        out.extend((now, e) for e in mixer.tick(now))
    return out


def pcm_out(out: list[tuple[float, PlayoutEvent]]) -> bytes:
    return b"".join(e.pcm for _t, e in out if isinstance(e, PlayoutFrame))


def test_loss_and_jitter_are_concealed_with_bounded_delay() -> None:
    """5 % loss, 40 ms of jitter: FEC and PLC fill every hole, delay stays bounded."""
    pcm = speech_like(16000, 6.0, seed=7)
    enc = OpusEncoder(16000)
    packets = [enc.encode(f) for f in frames_of(pcm)]
    clean = OpusDecoder(16000)
    reference = b"".join(clean.decode(p) for p in packets)
    rng = random.Random(5)
    first_ctr = 7_000  # any starting counter
    arrivals: list[tuple[float, ev.Event]] = []
    lost = 0
    for i, p in enumerate(packets):
        if rng.random() < 0.05:
            lost += 1
            continue
        arrivals.append(
            (i * TICK + 0.010 + rng.uniform(0, 0.040), voice("ca/boat", first_ctr + i, p))
        )
    arrivals.append((len(packets) * TICK + 0.1, ev.TalkerChanged(CH, None, None, "released")))
    mixer = ListenMixer(CH)
    out = run_mixer(mixer, arrivals, until=len(packets) * TICK + 1.0)

    started = [t for t, e in out if isinstance(e, TalkerStarted)]
    stopped = [(t, e) for t, e in out if isinstance(e, TalkerStopped)]
    assert len(started) == 1 and len(stopped) == 1 and stopped[0][1].reason == "released"
    assert started[0] <= 0.100  # first frame out within 100 ms of being sent
    s = mixer.stats
    assert s.received == len(packets) - lost
    assert s.fec > 0 and s.fec + s.concealed >= lost  # every hole filled, most from FEC
    assert s.decode_errors == 0
    frames_out = len(pcm_out(out)) // FRAME16
    # Delay is bounded: the playout ends within max-delay of the last frame's send time,
    # and it played about as many frames as were sent (stretches and skips cancel out).
    assert stopped[0][0] <= len(packets) * TICK + 0.200 + 2 * TICK
    assert abs(frames_out - len(packets)) <= 8
    # The stream is the talker's speech, holes and all: it still correlates strongly.
    lag, corr = align(pcm_array(reference), pcm_array(pcm_out(out)), max_lag=3200)
    assert corr >= 0.8, (lag, corr)
    assert 0 <= lag <= 0.100 * 16000


def test_fec_beats_concealment_under_loss() -> None:
    pcm = speech_like(16000, 4.0, seed=8)
    enc = OpusEncoder(16000)
    packets = [enc.encode(f) for f in frames_of(pcm)]
    clean = OpusDecoder(16000)
    reference = pcm_array(b"".join(clean.decode(p) for p in packets))
    drop = set(range(5, len(packets), 17))  # isolated losses, ~6 %
    arrivals: list[tuple[float, ev.Event]] = [
        (i * TICK + 0.001, voice("us/gw", i, p)) for i, p in enumerate(packets) if i not in drop
    ]
    mixer = ListenMixer(CH)
    out = pcm_array(pcm_out(run_mixer(mixer, arrivals, until=len(packets) * TICK + 0.5)))
    assert mixer.stats.fec == len(drop) and mixer.stats.concealed >= 0
    lag, _ = align(reference, out, 3200)
    n = min(len(reference), len(out) - lag)
    err = out[lag : lag + n] - reference[:n]
    snr_fec = 10 * np.log10(np.sum(reference[:n] ** 2) / np.sum(err**2))
    # Same losses, no FEC data to recover from: every hole is plain concealment.
    plc = OpusDecoder(16000)
    concealed = pcm_array(
        b"".join(plc.conceal() if i in drop else plc.decode(p) for i, p in enumerate(packets))
    )
    err2 = concealed - reference
    snr_plc = 10 * np.log10(np.sum(reference**2) / np.sum(err2**2))
    assert snr_fec > snr_plc


def test_l16_passthrough_under_jitter_is_bit_exact() -> None:
    pcm = speech_like(16000, 3.0, seed=9)
    rng = random.Random(2)
    arrivals: list[tuple[float, ev.Event]] = [
        (i * TICK + rng.uniform(0, 0.030), voice("us/gw", 100 + i, pcm_to_l16(f)))
        for i, f in enumerate(frames_of(pcm))
    ]
    mixer = ListenMixer(CH, codec="l16")
    out = pcm_out(run_mixer(mixer, arrivals, until=3.6))
    # exact, then at most 60 ms of fading concealment (adapters.codecs.plc) until it ends
    assert out[: len(pcm)] == pcm and not any(out[len(pcm) + 3 * FRAME16 :])
    assert mixer.stats.played == len(pcm) // FRAME16 and mixer.stats.late == 0


def test_talkers_are_mixed_and_own_voice_is_ignored() -> None:
    a = np.full(320, 20000, dtype="<i2").tobytes()
    b = np.full(320, 15000, dtype="<i2").tobytes()
    mixer = ListenMixer(CH, rate=16000, codec="l16", self_device="me/gw")
    arrivals: list[tuple[float, ev.Event]] = []
    for i in range(5):
        arrivals.append((i * TICK, voice("us/a", i, pcm_to_l16(a))))
        arrivals.append((i * TICK, voice("ca/b", 50 + i, pcm_to_l16(b))))
        arrivals.append((i * TICK, voice("me/gw", i, pcm_to_l16(b))))
    out = run_mixer(mixer, arrivals, until=1.5)  # they never release: the 1 s pause hold
    mixed = [e for _t, e in out if isinstance(e, PlayoutFrame)]
    assert mixed[0].talkers == ("us/a", "ca/b")
    assert set(np.frombuffer(mixed[0].pcm, "<i2")) == {32767}  # saturated, not wrapped
    assert mixer.stats.ignored == 5
    stops = [e for _t, e in out if isinstance(e, TalkerStopped)]
    assert {e.sender for e in stops} == {"us/a", "ca/b"} and stops[0].reason == "timeout"


def test_release_stops_the_talker_as_soon_as_the_buffer_is_played() -> None:
    mixer = ListenMixer(CH, codec="l16")
    arrivals: list[tuple[float, ev.Event]] = [
        (i * TICK, voice("us/a", i, bytes(FRAME16))) for i in range(10)
    ]
    arrivals.append((9 * TICK + 0.001, ev.BurstSealed(CH, "us/a", "b1", 10, True, 10)))
    out = run_mixer(mixer, arrivals, until=1.0)
    frames = [t for t, e in out if isinstance(e, PlayoutFrame)]
    stop = [(t, e) for t, e in out if isinstance(e, TalkerStopped)]
    assert len(frames) == 10  # no concealment tail after a sealed burst
    assert stop[0][1].reason == "released" and stop[0][0] == pytest.approx(frames[-1] + TICK)
    assert mixer.active == ()


def test_counter_restart_of_a_new_epoch_starts_a_new_burst() -> None:
    mixer = ListenMixer(CH, codec="l16")
    one = np.full(320, 1, dtype="<i2").tobytes()
    two = np.full(320, 2, dtype="<i2").tobytes()
    arrivals: list[tuple[float, ev.Event]] = [
        (i * TICK, voice("us/a", 5000 + i, pcm_to_l16(one))) for i in range(10)
    ]
    arrivals += [((10 + i) * TICK, voice("us/a", i, pcm_to_l16(two))) for i in range(10)]
    out = pcm_out(run_mixer(mixer, arrivals, until=1.0))
    values = np.frombuffer(out, "<i2")
    assert np.count_nonzero(values == 2) >= 8 * 320  # the new epoch's frames are played
