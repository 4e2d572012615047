"""bridge.gateway.gateway: routing by channel, start/stop, a failing adapter isolated."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from adapters.base import EventSink, Pcm, TalkStart
from adapters.codecs.pcm import pcm_to_l16
from adapters.rtp import mapping as rtp_mapping
from bridge.audio import formats
from bridge.endpoint import events as ev
from bridge.gateway import Binding, ChannelAudio, Gateway
from tests.gateway.fakes import FakeAdapter, FakeEndpoint

L16 = ChannelAudio(codec="l16")


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0)

    await asyncio.wait_for(wait(), timeout)


def voice(ch: str, k: int) -> ev.Voice:
    return ev.Voice(ch, "ca/a", pcm_to_l16(bytes(640)), k)


def test_events_go_to_their_channel_and_a_failing_adapter_is_isolated() -> None:
    now = [0.0]
    a, b = FakeAdapter(), FakeAdapter()
    a.fail_on_play = True
    gw = Gateway(
        FakeEndpoint(), [Binding("ch-a", a, L16), Binding("ch-b", b, L16)], clock=lambda: now[0]
    )
    for k in range(5):
        now[0] = 0.001 + 0.02 * k
        gw.handle_event(voice("ch-a", k))
        gw.handle_event(voice("ch-b", k))
        gw.handle_event(voice("unbound", k))  # no binding: ignored
    for step in range(20):
        gw.tick(step * 0.02)
    assert len(b.of("play")) >= 5  # the other channel played on (then concealed, no release)
    assert gw.channels["ch-a"].stats.adapter_errors >= 1
    assert gw.adapter("ch-b") is b


def test_a_channel_or_an_adapter_is_bound_once() -> None:
    a = FakeAdapter()
    with pytest.raises(ValueError):
        Gateway(FakeEndpoint(), [Binding("x", a), Binding("x", FakeAdapter())])
    with pytest.raises(ValueError):
        Gateway(FakeEndpoint(), [Binding("x", a), Binding("y", a)])
    with pytest.raises(ValueError):
        Binding("", a)
    with pytest.raises(ValueError):
        ChannelAudio(codec="g729")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ChannelAudio(jitter_min_ms=300, jitter_max_ms=200)


async def test_start_pumps_events_and_stop_seals_the_burst_in_progress() -> None:
    ep = FakeEndpoint()
    ad = FakeAdapter()
    gw = Gateway(ep, [Binding("ch", ad, L16)])
    await gw.start()
    ad.emit(TalkStart("radio"))
    ad.emit(Pcm("radio", bytes(640), 16000))
    await until(lambda: len(ep.voice) == 1)
    ep.events.put_nowait(ev.Message("ch", "m1", "ca/b", "text", b"copy"))
    await until(lambda: bool(ad.of("post")))
    await gw.stop()
    assert ad.calls[-1] == ("stop",)
    assert ep.log[-1] == ("end", "ch", 1)  # released and sealed on the way out


async def test_an_adapter_that_fails_to_start_leaves_nothing_running() -> None:
    class Broken(FakeAdapter):
        async def start(self, sink: EventSink) -> None:
            raise OSError("port in use")

    good = FakeAdapter()
    gw = Gateway(FakeEndpoint(), [Binding("a", good), Binding("b", Broken())])
    with pytest.raises(OSError):
        await gw.start()
    assert good.calls == [("start",), ("stop",)]


def test_the_rtp_mapping_default_bit_rate_is_the_audio_paths() -> None:
    assert rtp_mapping.DEFAULT_BITRATE == formats.DEFAULT_BITRATE
    assert rtp_mapping.CHANNEL_CODECS == formats.CHANNEL_CODECS
    assert rtp_mapping.AUDIO_RATES == formats.AUDIO_RATES
