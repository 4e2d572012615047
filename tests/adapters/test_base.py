"""adapters.base: the adapter interface's events validate themselves; an adapter's defaults."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.base import (
    Adapter,
    EmergencyState,
    EventSink,
    Pcm,
    TalkEnd,
    TalkStart,
    Text,
    pcm_frame_bytes,
)


def test_events_that_are_well_formed() -> None:
    assert TalkStart("rtp:5004/0000000a").priority == "normal"
    assert TalkStart("radio", "emergency").priority == "emergency"
    assert len(Pcm("radio", bytes(320), 8000).frame) == pcm_frame_bytes(8000) == 320
    assert len(Pcm("radio", bytes(640), 16000).frame) == 640
    assert len(Pcm("radio", bytes(1920), 48000).frame) == 1920
    assert TalkEnd("radio").source == "radio"
    assert Text("room/alice", "unit 4 on scene").body == "unit 4 on scene"
    assert EmergencyState(True, "us-cbp/gw").active


@pytest.mark.parametrize(
    ("make", "args"),
    [
        (TalkStart, ("",)),  # no source
        (TalkStart, (None,)),
        (TalkStart, ("radio", "urgent")),  # not a floor priority
        (Pcm, ("radio", bytes(640), 8000)),  # 40 ms at 8 kHz
        (Pcm, ("radio", bytes(320), 11025)),  # not a PCM rate of the interface
        (Pcm, ("radio", bytearray(320), 8000)),  # frames are immutable bytes
        (Pcm, ("radio", bytes(319), 8000)),
        (TalkEnd, ("",)),
        (Text, ("room", "")),
        (Text, ("room", b"bytes")),
        (EmergencyState, ("yes",)),
        (EmergencyState, (True, "")),
    ],
)
def test_malformed_events_are_refused_when_built(make: Any, args: tuple[Any, ...]) -> None:
    with pytest.raises(ValueError):
        make(*args)


def test_events_are_frozen() -> None:
    e = TalkStart("radio")
    with pytest.raises(AttributeError):
        e.priority = "high"  # type: ignore[misc]


class Minimal(Adapter):
    """Only what an adapter must write: start and stop."""

    def __init__(self) -> None:
        self.sink: EventSink | None = None

    async def start(self, sink: EventSink) -> None:
        self.sink = sink

    async def stop(self) -> None:
        self.sink = None


async def test_an_adapter_needs_only_start_and_stop() -> None:
    a = Minimal()
    assert (a.rate, a.yields_audio, a.plays_audio) == (16000, False, False)
    got: list[object] = []
    await a.start(got.append)
    assert a.sink is not None
    a.sink(Text("room", "hello"))
    # What it cannot show is ignored by the defaults, without error.
    a.play(bytes(640), ("us/a",))
    a.talk_started("us/a")
    a.talk_ended("us/a", True)
    a.post("hello", "us/a")
    a.emergency(EmergencyState(False))
    await a.stop()
    assert got == [Text("room", "hello")]


def test_an_adapter_without_start_and_stop_cannot_be_built() -> None:
    class Incomplete(Adapter):
        async def start(self, sink: EventSink) -> None:
            pass

    with pytest.raises(TypeError):
        Incomplete()  # type: ignore[abstract]
