"""Positions across a channel: the v1 data body, the pacing outbox on a fake clock, and the
gateway's both ways (against a fake endpoint), with hostile bodies and a TAK flood."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import EmergencyAlert, Position, Text
from bridge.endpoint import events as ev
from bridge.endpoint.emergency import body as emergency_body
from bridge.errors import RelayError, RemoteProtocolError
from bridge.gateway import Binding, ChannelAudio, ChannelGateway, PositionPacing
from bridge.gateway.positions import (
    MAX_POSITION_BODY,
    PositionOutbox,
    decode_position,
    encode_position,
)
from tests.gateway.fakes import FakeAdapter, FakeEndpoint

CH = "shiprider-7"
WALL = 1_796_000_000.0
PEER = "ca-rcmp/gw-sarnia"


def pos(uid: str = "ANDROID-9", t: float = WALL, lat: float = 49.0012345, **kw: Any) -> Position:
    return Position(
        uid=uid, callsign="RCMP 4", lat=lat, lon=-123.0345678, time=t, stale=t + 120, **kw
    )


# -- the v1 body --------------------------------------------------------------------------------


@given(
    st.floats(-90, 90),
    st.floats(-180, 180),
    st.one_of(st.none(), st.floats(0, 360)),
    st.floats(-1e4, 1e4),
)
@settings(max_examples=200, deadline=None)
def test_the_body_round_trips_exactly(
    lat: float, lon: float, course: float | None, hae: float
) -> None:
    p = pos(lat=lat, course=course, hae=hae, kind="a-f-S-X")
    body = encode_position(p)
    assert decode_position(body) == p
    assert len(body) < 300


def test_the_body_is_compact_versioned_json() -> None:
    obj = json.loads(encode_position(pos()))
    assert obj == {
        "v": 1,
        "t": "pos",
        "uid": "ANDROID-9",
        "cs": "RCMP 4",
        "lat": 49.0012345,
        "lon": -123.0345678,
        "time": WALL,
        "stale": WALL + 120,
        "kind": "a-f-G-U-C",
    }
    assert b": " not in encode_position(pos()) and b", " not in encode_position(pos())


def _good() -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(encode_position(pos()))
    return obj


def _with(**kw: Any) -> bytes:
    obj = _good() | kw
    return json.dumps({k: v for k, v in obj.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{" + b" " * MAX_POSITION_BODY + b"}", "too-large"),
        (b"\xff\xfe", "malformed"),
        (b"not json", "malformed"),
        (b"[1, 2]", "malformed"),
        (b"[" * 1500 + b"]" * 1500, "too-large"),
        (b"[" * 900 + b"]" * 900, "malformed"),
        (_with(t=...), "unknown-type"),
        (_with(t="track"), "unknown-type"),
        (_with(v=2), "bad-version"),
        (_with(v="1"), "malformed"),
        (_with(v=True), "malformed"),
        (_with(v=...), "malformed"),
        (_with(uid=...), "malformed"),
        (_with(extra=1), "malformed"),
        (_with(lat=90.5), "malformed"),
        (_with(lon=-181), "malformed"),
        (_with(lat=True), "malformed"),
        (_with(lat="49.0"), "malformed"),
        (_with(uid=""), "malformed"),
        (_with(uid="x" * 257), "malformed"),
        (_with(cs="a\nb"), "malformed"),
        (_with(stale=WALL - 1), "malformed"),
        (_with(ce=-1), "malformed"),
        (_with(course=361), "malformed"),
        (_good().__repr__().encode(), "malformed"),  # Python, not JSON
        (json.dumps(_good()).replace("49.0012345", "NaN").encode(), "malformed"),
        (json.dumps(_good()).replace("49.0012345", "1e999").encode(), "malformed"),
    ],
)
def test_hostile_bodies_get_a_coded_refusal(body: bytes, code: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_position(body)
    assert info.value.code == code


_json = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.sampled_from(sorted(_good()) + ["x"]), _json, max_size=12))
@settings(max_examples=300, deadline=None)
def test_mutated_bodies_decode_or_are_refused_with_a_code(changes: dict[str, Any]) -> None:
    body = json.dumps(_good() | changes).encode()
    try:
        got = decode_position(body)
    except RemoteProtocolError as exc:
        assert exc.code in ("malformed", "bad-version", "unknown-type", "too-large")
    else:
        assert isinstance(got, Position)


@given(st.binary(max_size=3000))
@settings(max_examples=200, deadline=None)
def test_random_bytes_are_refused_with_a_code(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_position(data)


# -- the outbox, on a fake clock ----------------------------------------------------------------


def test_a_flood_is_coalesced_per_uid_and_paced() -> None:
    pacing = PositionPacing(interval=1.0, rate=20.0, burst=20, max_pending=100)
    box = PositionOutbox(pacing)
    sent: list[tuple[float, Position]] = []
    latest: dict[str, Position] = {}
    step, seconds = 0.01, 5.0
    for i in range(round(seconds / step)):
        now = i * step
        for k in range(20):  # 2000 reports per second, from 150 uids
            p = pos(uid=f"u{(i * 20 + k) % 150}", t=WALL + now, lat=(i % 90) + k / 100)
            box.offer(p, WALL + now, now)
            latest[p.uid] = p
        sent += [(now, p) for p in box.due(WALL + now, now)]
        assert len(box) <= pacing.max_pending
    assert box.stats.offered == 10_000
    # the token bucket: at most burst + rate * t, and it is used fully under a flood
    assert len(sent) <= 20 + 20 * seconds
    assert len(sent) >= 20 * seconds
    by_uid: dict[str, list[float]] = {}
    for t, p in sent:
        by_uid.setdefault(p.uid, []).append(t)
    for times in by_uid.values():  # at most one per uid per second
        assert all(b - a >= 1.0 - 1e-9 for a, b in zip(times, times[1:], strict=False))
    assert box.stats.coalesced > 5_000 and box.stats.dropped > 0  # 150 uids > 100 waiting
    # what goes out is the newest report of its uid at that moment, not the first queued
    t0, first = sent[0]
    assert first.time == WALL + t0


def test_due_respects_the_interval_and_get_timer_says_when() -> None:
    box = PositionOutbox(PositionPacing(interval=1.0, rate=1000.0, burst=5))
    assert box.get_timer() is None
    box.offer(pos("a", t=WALL), WALL, 0.0)
    assert [p.uid for p in box.due(WALL, 0.0)] == ["a"]
    box.offer(pos("a", t=WALL + 0.2), WALL, 0.2)
    box.offer(pos("a", t=WALL + 0.4, lat=10.0), WALL, 0.4)  # replaces the one waiting
    assert box.due(WALL, 0.5) == []
    assert box.get_timer() == pytest.approx(1.0)
    got = box.due(WALL, 1.0)
    assert [(p.uid, p.lat) for p in got] == [("a", 10.0)]
    assert box.stats.coalesced == 1


def test_stale_reports_are_not_sent() -> None:
    box = PositionOutbox(PositionPacing(interval=0.0, rate=1.0, burst=1))
    assert not box.offer(pos("old", t=WALL - 500), WALL, 0.0)  # stale at WALL - 380
    assert box.offer(pos("a"), WALL, 0.0) and box.offer(pos("b"), WALL, 0.0)
    assert [p.uid for p in box.due(WALL, 0.0)] == ["a"]  # one token
    assert box.get_timer() == pytest.approx(1.0)
    assert box.due(WALL + 121, 1.0) == []  # b went stale while it waited for a token
    assert box.stats.stale == 2 and len(box) == 0


def test_pacing_is_validated() -> None:
    for bad in ({"interval": -1}, {"rate": 0}, {"burst": 0}, {"max_in_flight": 0}, {"rate": True}):
        with pytest.raises(ValueError):
            PositionPacing(**bad)


# -- the gateway, both ways ---------------------------------------------------------------------


class PosEndpoint(FakeEndpoint):
    def __init__(self, pause: float = 0.0) -> None:
        super().__init__(device="us-cbp/gw-blaine")
        self.sent: list[tuple[str, bytes]] = []
        self.pause = pause
        self.refuse = 0  # refuse this many sends, as a rate-limiting relay does

    async def send_text(
        self, ch: str, body: bytes | str, kind: str = "text", timeout: float = 30.0
    ) -> str:
        if self.pause:
            await asyncio.sleep(self.pause)  # the relay's acceptance takes a while
        if self.refuse:
            self.refuse -= 1
            raise RelayError("rate-limited")
        self.sent.append((kind, body.encode() if isinstance(body, str) else body))
        return f"id{len(self.sent)}"

    def of(self, kind: str) -> list[bytes]:
        return [b for k, b in self.sent if k == kind]


class PosAdapter(FakeAdapter):
    yields_positions = True
    takes_positions = True

    def show_position(self, position: Position, sender: str) -> None:
        self.calls.append(("position", position, sender))


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.001)

    await asyncio.wait_for(wait(), timeout)


def gateway(
    pacing: PositionPacing | None = None, pause: float = 0.0, wall: float = WALL
) -> tuple[ChannelGateway, PosAdapter, PosEndpoint]:
    ad, ep = PosAdapter(audio_in=False, audio_out=False), PosEndpoint(pause)
    binding = Binding(CH, ad, ChannelAudio(), pacing or PositionPacing())
    return ChannelGateway(ep, binding, wall=lambda: wall), ad, ep


async def test_a_flood_of_positions_does_not_delay_texts_or_emergencies() -> None:
    gw, ad, ep = gateway(PositionPacing(interval=1.0, rate=10.0, burst=5), pause=0.002)
    await gw.start()
    try:
        for i in range(5000):
            ad.emit(pos(uid=f"u{i % 400}", t=WALL + i / 1000))
        ad.emit(Text("RCMP 4", "vessel inbound"))
        ad.emit(EmergencyAlert("ANDROID-9", True))
        await until(lambda: bool(ep.of("text")) and bool(ep.of("emergency")))
        # the text and the alert went while positions were still held back by the bucket
        assert len(ep.of("data")) <= 5 + 2
        assert ep.of("emergency") == [emergency_body(True)]
        assert gw.positions is not None
        box = gw.positions.outbox  # bounded: 256 uids wait, reports of the 144 others dropped
        assert len(box) == 256 - box.stats.released and box.stats.dropped == 144 * 12
        await until(lambda: len(ep.of("data")) >= 10)
        sent = [decode_position(b) for b in ep.of("data")]
        assert [p.uid for p in sent[:3]] == ["u0", "u1", "u2"]
        assert sent[0].time == WALL + 4.8  # u0's newest report, coalesced
    finally:
        await gw.aclose()


async def test_refused_sends_are_counted_and_sending_goes_on() -> None:
    gw, ad, ep = gateway(PositionPacing(interval=0.0, rate=1000.0, burst=10, max_in_flight=1))
    ep.refuse = 3
    await gw.start()
    try:
        for i in range(5):
            ad.emit(pos(uid=f"u{i}"))
        await until(lambda: len(ep.of("data")) == 2)
        assert gw.positions is not None
        assert (gw.positions.sent, gw.positions.errors) == (2, 3)
        assert [decode_position(b).uid for b in ep.of("data")] == ["u3", "u4"]
    finally:
        await gw.aclose()


async def test_native_emergencies_are_signed_once_per_change() -> None:
    gw, ad, ep = gateway()
    await gw.start()
    try:
        ad.emit(EmergencyAlert("ANDROID-9", True))
        ad.emit(EmergencyAlert("ANDROID-9", True))  # TAK repeats its alert
        await until(lambda: len(ep.of("emergency")) == 1)
        gw.handle_event(ev.EmergencySigned(CH, False, PEER), 0.0)  # a dispatcher cleared it
        ad.emit(EmergencyAlert("ANDROID-9", True))
        ad.emit(EmergencyAlert("ANDROID-9", False))
        await until(lambda: len(ep.of("emergency")) == 3)
        ep.refuse = 1
        ad.emit(EmergencyAlert("ANDROID-9", True))  # refused: the state is unknown again
        await until(lambda: gw.stats.alert_errors == 1)
        ad.emit(EmergencyAlert("ANDROID-9", True))  # so the next repeat is sent
        await until(lambda: len(ep.of("emergency")) == 4)
        assert ep.of("emergency") == [emergency_body(a) for a in (True, True, False, True)]
        assert (gw.stats.alerts_sent, gw.stats.alerts_repeated) == (4, 1)
    finally:
        await gw.aclose()


def message(body: bytes, sender: str = PEER, kind: str = "data") -> ev.Message:
    return ev.Message(CH, "m1", sender, kind, body)


async def test_received_positions_go_to_the_adapter_labelled_with_the_signer() -> None:
    gw, ad, ep = gateway()
    p = pos()
    gw.handle_event(message(encode_position(p)), 0.0)
    assert ad.of("position") == [("position", p, PEER)]
    gw.handle_event(message(encode_position(p), sender=ep.device), 0.0)  # our own
    gw.handle_event(message(encode_position(pos(t=WALL - 10))), 0.0)  # older than shown
    gw.handle_event(message(encode_position(pos(t=WALL - 200))), 0.0)  # stale
    assert gw.stats.positions_dropped == 2
    for bad in (b"x" * 5000, b"{}", _with(v=7), _with(lat=99)):
        gw.handle_event(message(bad), 0.0)
    assert gw.stats.positions_refused == {
        "too-large": 1,
        "unknown-type": 1,
        "bad-version": 1,
        "malformed": 1,
    }
    assert len(ad.of("position")) == 1 and gw.stats.positions_shown == 1
    assert not ad.of("post")  # a data message is never shown as text


async def test_an_adapter_that_takes_no_positions_is_not_given_any() -> None:
    ad, ep = FakeAdapter(audio_in=False, audio_out=False), PosEndpoint()
    gw = ChannelGateway(ep, Binding(CH, ad), wall=lambda: WALL)
    gw.handle_event(message(encode_position(pos())), 0.0)
    assert gw.stats.positions_shown == 0 and gw.positions is None
    await gw.start()
    ad.emit(pos())  # it does not yield positions either: counted, not sent
    assert gw.stats.unexpected == 1
    await gw.aclose()
