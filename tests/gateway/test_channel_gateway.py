"""bridge.gateway.channel: any adapter ↔ one channel, against a fake endpoint, on a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from adapters.base import EmergencyState, Pcm, TalkEnd, TalkStart, Text
from adapters.codecs.pcm import pcm_to_l16
from bridge.endpoint import events as ev
from bridge.errors import RelayError
from bridge.gateway import Binding, ChannelAudio, ChannelGateway
from tests.gateway.fakes import FakeAdapter, FakeEndpoint

CH = "shiprider-7"
TICK = 0.020
L16 = ChannelAudio(codec="l16")


def frame(value: int, rate: int = 16000) -> bytes:
    return np.full(rate // 50, value, dtype="<i2").tobytes()


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0)

    await asyncio.wait_for(wait(), timeout)


def channel(
    adapter: FakeAdapter | None = None, audio: ChannelAudio = L16, **kw: Any
) -> tuple[ChannelGateway, FakeAdapter, FakeEndpoint]:
    ad = adapter or FakeAdapter()
    ep = FakeEndpoint()
    return ChannelGateway(ep, Binding(CH, ad, audio), **kw), ad, ep


def run(
    gw: ChannelGateway, script: list[tuple[float, ev.Event]], end: float
) -> list[tuple[float, tuple[Any, ...]]]:
    """Deliver endpoint events at their times, tick every 20 ms; adapter calls with times."""
    ad = gw.adapter
    assert isinstance(ad, FakeAdapter)
    script = sorted(script, key=lambda s: s[0])
    seen = len(ad.calls)
    out: list[tuple[float, tuple[Any, ...]]] = []
    k = 0
    for step in range(round(end / TICK) + 1):
        now = step * TICK
        while k < len(script) and script[k][0] <= now:
            gw.handle_event(script[k][1], script[k][0])
            k += 1
        gw.tick(now)
        out += [(now, c) for c in ad.calls[seen:]]
        seen = len(ad.calls)
    return out


def burst(sender: str, n: int, start: float = 0.0) -> list[tuple[float, ev.Event]]:
    """The floor goes to ``sender``, then ``n`` L16 frames of value k+1, 20 ms apart."""
    script: list[tuple[float, ev.Event]] = [
        (start, ev.TalkerChanged(CH, sender, "normal", "granted"))
    ]
    script += [
        (start + 0.001 + k * TICK, ev.Voice(CH, sender, pcm_to_l16(frame(k + 1)), k))
        for k in range(n)
    ]
    return script


def released(at: float) -> tuple[float, ev.Event]:
    return (at, ev.TalkerChanged(CH, None, None, "released"))


def sealed(at: float, sender: str, verified: bool = True) -> tuple[float, ev.Event]:
    return (at, ev.BurstSealed(CH, sender, "b1", 5, verified, 5))


def kinds(out: list[tuple[float, tuple[Any, ...]]]) -> list[str]:
    return [c[0] for _t, c in out]


# --- native side → channel ------------------------------------------------------------------


async def test_a_native_burst_is_a_floor_request_frames_and_a_seal() -> None:
    gw, ad, ep = channel()
    await gw.start()
    ad.emit(TalkStart("rtp:5004/0a", "high"))
    frames = [frame(i) for i in range(3)]
    for f in frames:  # before the floor answers: held, then sent in order
        ad.emit(Pcm("rtp:5004/0a", f, 16000))
    ad.emit(TalkEnd("rtp:5004/0a"))
    await gw.aclose()
    assert ep.log == [("floor", CH, "high"), ("end", CH, 3)]
    assert ep.voice == [pcm_to_l16(f) for f in frames]
    assert ad.calls[0] == ("start",) and ad.calls[-1] == ("stop",)


async def test_audio_the_binding_cannot_carry_is_counted() -> None:
    gw, ad, ep = channel()
    await gw.start()
    ad.emit(TalkStart("radio"))
    ad.emit(Pcm("radio", frame(1, 8000), 8000))  # the adapter declared 16 kHz
    assert gw.stats.unexpected == 1
    mute, mad, _ = channel(FakeAdapter(audio_in=False))
    await mute.start()
    mad.emit(TalkStart("radio"))
    assert mute.stats.unexpected == 1 and mute.sender is None
    await gw.aclose()
    await mute.aclose()
    assert ep.voice == []


async def test_texts_are_sent_in_order_and_a_failure_is_counted() -> None:
    """... each under its native author's alias, "via" the bridge device that signs it."""
    gw, ad, ep = channel()
    await gw.start()
    ep.text_error = RelayError("not-member")
    ad.emit(Text("room/alice", "first"))
    await until(lambda: gw.stats.text_errors == 1)
    ep.text_error = None
    for body in ("second", "third", "fourth"):
        ad.emit(Text("room/alice", body))
    await until(lambda: gw.stats.texts_sent == 3)
    via = f"room/alice via {ep.device}: "
    assert ep.texts == [via + "second", via + "third", via + "fourth"]
    await gw.aclose()


async def test_texts_beyond_the_queue_are_dropped_not_buffered_without_bound() -> None:
    gw, ad, ep = channel(max_texts=2)
    await gw.start()
    ep.text_gate = asyncio.Event()  # the relay is slow
    for i in range(5):
        ad.emit(Text("room", f"t{i}"))
    assert gw.stats.texts_dropped == 3
    ep.text_gate.set()
    await until(lambda: gw.stats.texts_sent == 2)
    assert ep.texts == [f"room via {ep.device}: t0", f"room via {ep.device}: t1"]
    await gw.aclose()


# --- channel → native side ------------------------------------------------------------------


def test_messages_of_other_devices_are_posted() -> None:
    gw, ad, ep = channel()
    gw.handle_event(ev.Message(CH, "m1", "ca-rcmp/d1", "text", "10-4 reçu".encode()), 0.0)
    gw.handle_event(ev.Message(CH, "m2", ep.device, "text", b"my own"), 0.0)
    gw.handle_event(ev.Message(CH, "m3", "ca-rcmp/d1", "position", b"{}"), 0.0)
    gw.handle_event(ev.Message(CH, "m4", "ca-rcmp/d1", "text", b"\xff\xfe"), 0.0)
    assert ad.of("post") == [("post", "10-4 reçu", "ca-rcmp/d1")]
    assert gw.stats.posted == 1 and gw.stats.undecodable == 1


def test_the_emergency_state_is_passed_on() -> None:
    gw, ad, _ = channel()
    gw.handle_event(ev.Emergency(CH, True, "ca-rcmp/boat"), 0.0)
    gw.handle_event(ev.Emergency(CH, False, None), 1.0)
    assert ad.of("emergency") == [
        ("emergency", EmergencyState(True, "ca-rcmp/boat")),
        ("emergency", EmergencyState(False, None)),
    ]
    assert all(not state.verified for _, state in ad.of("emergency"))  # the relay's claims


def test_a_signed_emergency_reaches_the_adapter_as_verified() -> None:
    """The adapter is told which emergencies a member signed (``verified``) and which only the
    relay claims; before, the signed declare never reached it."""
    gw, ad, _ = channel()
    gw.handle_event(ev.Emergency(CH, True, "ca-rcmp/boat"), 0.0)
    gw.handle_event(ev.EmergencySigned(CH, True, "ca-rcmp/boat"), 0.1)
    gw.handle_event(ev.EmergencySigned(CH, False, "us-cbp/dispatch"), 1.0)
    assert ad.of("emergency") == [
        ("emergency", EmergencyState(True, "ca-rcmp/boat", verified=False)),
        ("emergency", EmergencyState(True, "ca-rcmp/boat", verified=True)),
        ("emergency", EmergencyState(False, "us-cbp/dispatch", verified=True)),
    ]


def test_a_remote_burst_is_played_then_ended_with_its_seal_verdict() -> None:
    gw, _, _ = channel()
    out = run(gw, [*burst("ca/a", 5), released(0.12), sealed(0.125, "ca/a")], end=1.0)
    assert kinds(out) == ["started", "play", "play", "play", "play", "play", "ended"]
    plays = [c for _t, c in out if c[0] == "play"]
    assert [c[1] for c in plays] == [frame(k + 1) for k in range(5)]
    assert all(c[2] == ("ca/a",) for c in plays)
    assert out[-1][1] == ("ended", "ca/a", True)


def test_a_seal_that_comes_after_the_playout_is_waited_for() -> None:
    gw, _, _ = channel()
    out = run(gw, [*burst("ca/a", 5), released(0.12), sealed(0.6, "ca/a")], end=1.5)
    (t_end, call) = out[-1]
    assert call == ("ended", "ca/a", True) and t_end == pytest.approx(0.6)


def test_without_a_seal_the_burst_ends_unverified_after_the_grace() -> None:
    gw, _, _ = channel(seal_grace=0.5)
    out = run(gw, [*burst("ca/a", 5), released(0.12)], end=2.0)
    t_last_play = max(t for t, c in out if c[0] == "play")
    (t_end, call) = out[-1]
    assert call == ("ended", "ca/a", False)
    assert t_last_play + 0.5 <= t_end <= t_last_play + 0.5 + 3 * TICK


def test_a_seal_before_the_floor_left_the_talker_vouches_for_nothing() -> None:
    """An honest talker releases the floor and then seals; a seal that comes while the talker
    still holds the floor cannot be about the burst being played."""
    gw, _, _ = channel(seal_grace=0.5)
    out = run(gw, [*burst("ca/a", 5), sealed(0.09, "ca/a"), released(0.3)], end=2.0)
    assert out[0][1] == ("started", "ca/a") and out[0][0] < 0.09  # sealed while it played
    assert out[-1][1] == ("ended", "ca/a", False)


def test_a_failed_verdict_is_reported() -> None:
    gw, _, _ = channel()
    out = run(gw, [*burst("ca/a", 5), released(0.12), sealed(0.13, "ca/a", False)], end=1.0)
    assert out[-1][1] == ("ended", "ca/a", False)


def test_own_voice_is_not_played_back() -> None:
    gw, _, ep = channel()
    out = run(gw, burst(ep.device, 5), end=0.5)
    assert out == [] and gw.mixer is not None and gw.mixer.stats.ignored == 5


async def test_a_revoked_floor_drops_the_rest_of_the_burst() -> None:
    gw, ad, ep = channel()
    await gw.start()
    ad.emit(TalkStart("radio"))
    await until(lambda: gw.sender is not None and gw.sender.state == "talking")
    ad.emit(Pcm("radio", frame(1), 16000))
    gw.handle_event(ev.FloorEvent(CH, "revoked", "someone/else"), 0.0)  # not ours
    ad.emit(Pcm("radio", frame(2), 16000))
    gw.handle_event(ev.FloorEvent(CH, "revoked", ep.device, "emergency"), 0.0)
    ad.emit(Pcm("radio", frame(3), 16000))
    assert ep.voice == [pcm_to_l16(frame(1)), pcm_to_l16(frame(2))]
    assert gw.sender is not None and gw.sender.stats.dropped_denied == 1
    await gw.aclose()


async def test_closing_ends_the_talks_being_played() -> None:
    gw, ad, _ = channel()
    run(gw, burst("ca/a", 3), end=0.1)
    assert ad.of("started") == [("started", "ca/a")]
    await gw.aclose()
    assert ad.of("ended") == [("ended", "ca/a", False)]


async def test_security_alarms_reach_the_adapter_in_plain_words() -> None:
    """A relay caught withholding an epoch, or showing an emergency no member signed: the
    adapter is told (its users on the native side see it), with the device it names."""
    from adapters.base import SecurityAlarm

    gw, ad, _ep = channel()
    await gw.start()
    gw.handle_event(ev.FreshnessAlarm("behind", CH, "us-cbp/d1 holds epoch 3", 2), 10.0)
    gw.handle_event(ev.EmergencyUnsigned(CH, "ca-rcmp/v7", 5.0), 11.0)
    alarms = [c[1] for c in ad.of("alarm")]
    assert alarms == [
        SecurityAlarm("behind", "us-cbp/d1 holds epoch 3"),
        SecurityAlarm("emergency-unsigned", "no signed declaration within 5 s", "ca-rcmp/v7"),
    ]
    assert "withheld a newer key epoch" in alarms[0].describe()
    assert alarms[1].describe().startswith("SECURITY ALARM (ca-rcmp/v7)")
    assert gw.stats.alarms == 2
    await gw.aclose()


async def test_a_denied_or_revoked_burst_is_told_to_its_native_talker() -> None:
    """The floor refuses the native talker's burst (someone else holds it), then a granted
    burst is taken back (an emergency preempts it): both times the adapter learns which of
    its talkers it was and who holds the floor, so it can tell them (Mumble: a chat line)."""
    gw, ad, ep = channel()
    await gw.start()
    gw.handle_event(ev.TalkerChanged(CH, "ca-rcmp/v7", "normal", "granted"), 1.0)
    ep.grant = False
    ad.emit(TalkStart("mumble:alice"))
    await until(lambda: bool(ad.of("floor_denied")))
    assert ad.of("floor_denied") == [("floor_denied", "mumble:alice", "ca-rcmp/v7")]
    ad.emit(TalkEnd("mumble:alice"))
    ep.grant = True
    ad.emit(TalkStart("mumble:bob"))
    await until(lambda: gw.sender is not None and gw.sender.state == "talking")
    gw.handle_event(ev.TalkerChanged(CH, "us-cbp/d1", "emergency", "preempted"), 2.0)
    gw.handle_event(ev.FloorEvent(CH, "revoked", ep.device), 2.0)
    assert ad.of("floor_denied")[-1] == ("floor_denied", "mumble:bob", "us-cbp/d1")
    assert gw.stats.floor_denied == 2
    await gw.aclose()


async def test_a_text_only_adapter_gets_burst_notices_without_a_mixer() -> None:
    """A chat room plays no audio but posts "who talked, verified": the gateway tells it each
    sealed burst of another member, builds no mixer and decodes nothing for it."""
    ad = FakeAdapter(audio_in=False, audio_out=False)
    ad.wants_talk_notices = True
    gw, _ad, ep = channel(ad)
    await gw.start()
    assert gw.mixer is None and gw.sender is None
    gw.handle_event(ev.BurstSealed(CH, "ca-rcmp/v7", "b1", 50, True, 50), 1.0)
    gw.handle_event(ev.BurstSealed(CH, "mx-gn/o1", "b2", 50, False, 41), 2.0)
    gw.handle_event(ev.BurstSealed(CH, ep.device, "b3", 10, True, 10), 3.0)  # our own
    assert ad.of("ended") == [("ended", "ca-rcmp/v7", True), ("ended", "mx-gn/o1", False)]
    await gw.aclose()
