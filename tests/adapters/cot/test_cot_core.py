"""The sans-IO CoT core: XML and TAK protocol v1 round trips, and hostile input."""

from __future__ import annotations

import pytest
import takproto
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import EmergencyAlert, EmergencyState, Position, Text
from adapters.cot.events import MAX_EVENT, CotError, CotEvent, build_xml, parse_xml
from adapters.cot.mapping import chat_event, classify, emergency_event, position_event
from adapters.cot.proto import StreamSplitter, decode_datagram, encode_mesh, encode_stream

NOW = 1_796_000_000.0
PLI = (
    b'<?xml version="1.0"?><event version="2.0" uid="ANDROID-1" type="a-f-G-U-C" how="m-g" '
    b'time="2026-12-02T14:00:00.000Z" start="2026-12-02T14:00:00.000Z" '
    b'stale="2026-12-02T14:10:00Z"><point lat="45.123456789" lon="-75.987654321" '
    b'hae="70.5" ce="4.9" le="9999999.0"/><detail><contact callsign="Unit 7"/>'
    b'<__group name="Cyan" role="Team Lead"/><track course="271.5" speed="3.25"/></detail>'
    b"</event>"
)


def pos(lat: float = 45.1234567, lon: float = -75.7654321) -> Position:
    return Position(
        uid="u1",
        callsign="Unit 7",
        lat=lat,
        lon=lon,
        time=NOW,
        stale=NOW + 300,
        hae=12.25,
        ce=5.0,
        le=2.0,
        course=90.0,
        speed=1.5,
    )


SENDER = "ca-cbsa/gw-1"


def test_pli_parses_with_all_its_fields() -> None:
    ev = parse_xml(PLI)
    assert (ev.uid, ev.type, ev.callsign, ev.group_name, ev.group_role) == (
        "ANDROID-1",
        "a-f-G-U-C",
        "Unit 7",
        "Cyan",
        "Team Lead",
    )
    assert (ev.lat, ev.lon, ev.hae, ev.ce) == (45.123456789, -75.987654321, 70.5, 4.9)
    assert (ev.course, ev.speed) == (271.5, 3.25)
    assert ev.stale - ev.time == 600.0
    got = classify(ev, ev.time)
    assert isinstance(got, Position) and got.lat == 45.123456789 and got.callsign == "Unit 7"
    assert classify(ev, ev.stale + 1) is None  # stale events are not carried


@given(st.floats(-90, 90), st.floats(-180, 180))
@settings(max_examples=200, deadline=None)
def test_positions_round_trip_exactly_through_xml_and_both_framings(lat: float, lon: float) -> None:
    ev = position_event(pos(lat, lon), group="Cyan", sender=SENDER)
    for back in (
        parse_xml(build_xml(ev)),
        decode_datagram(encode_mesh(ev)),
        StreamSplitter().feed(encode_stream(ev))[0],
    ):
        assert isinstance(back, CotEvent)
        assert (back.lat, back.lon) == (lat, lon)  # every decimal kept, not just 6
        assert back.callsign == "ca-cbsa:Unit 7" and back.group_name == "Cyan"
        assert back.remarks == f"Crossband position signed by {SENDER}"
        again = classify(back, NOW)
        assert isinstance(again, Position) and (again.lat, again.lon) == (lat, lon)
        assert (again.hae, again.ce, again.le, again.course, again.speed) == (12.25, 5, 2, 90, 1.5)


def test_an_independent_parser_reads_six_decimals_from_our_output() -> None:
    ev = position_event(pos(45.1234567, -75.7654321), sender=SENDER)
    msg = takproto.parse_proto(bytearray(encode_mesh(ev)))
    assert round(msg.cotEvent.lat, 7) == 45.1234567 and round(msg.cotEvent.lon, 7) == -75.7654321
    xml_msg = takproto.functions.xml2message(bytearray(build_xml(ev)))
    assert (xml_msg.cotEvent.lat, xml_msg.cotEvent.lon) == (45.1234567, -75.7654321)
    assert xml_msg.cotEvent.detail.contact.callsign == "ca-cbsa:Unit 7"
    stream = takproto.parse_proto(bytearray(encode_stream(ev)))
    assert stream.cotEvent.uid == "u1" and stream.cotEvent.staleTime == int((NOW + 300) * 1000)


def test_geochat_round_trips_to_text() -> None:
    ev = chat_event(
        "north gate <clear> & quiet", "Alice", device_uid="dev-1", agency="USBP", now=NOW
    )
    for back in (parse_xml(build_xml(ev)), decode_datagram(encode_mesh(ev))):
        assert back.is_chat and back.chat_room == "All Chat Rooms"
        want = Text(source="cot:USBP:Alice", body="north gate <clear> & quiet")
        assert classify(back, NOW) == want
        assert back.sender_uid == "dev-1"


def test_emergency_and_cancel_round_trip() -> None:
    on = emergency_event(
        EmergencyState(True, "dev-1"), device_uid="dev-1", callsign="Alice", agency="USBP", now=NOW
    )
    off = emergency_event(
        EmergencyState(False, "dev-1"), device_uid="dev-1", callsign="Alice", agency="USBP", now=NOW
    )
    assert (on.type, off.type) == ("b-a-o-tbl", "b-a-o-can")
    for ev, active in ((on, True), (off, False)):
        for back in (parse_xml(build_xml(ev)), decode_datagram(encode_mesh(ev))):
            assert classify(back, NOW) == EmergencyAlert("dev-1", active)
    signed = emergency_event(
        EmergencyState(True, "us-cbp/a", verified=True),
        device_uid="dev-1",
        callsign="us-cbp/a",
        agency=None,
        now=NOW,
    )
    assert signed.remarks == "Crossband emergency signed by us-cbp/a"
    assert on.remarks == "Crossband emergency claimed by the relay (unverified)"


def test_a_pli_that_position_refuses_is_a_coded_refusal() -> None:
    long_uid = PLI.replace(b'uid="ANDROID-1"', b'uid="' + b"u" * 300 + b'"')
    with pytest.raises(CotError) as info:
        classify(ev := parse_xml(long_uid), ev.time)
    assert info.value.code == "field"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b'<!DOCTYPE lolz [<!ENTITY lol "lol">]><event>&lol;</event>', "dtd"),
        (b'<?xml version="1.0"?><!doctype x SYSTEM "file:///etc/passwd"><event/>', "dtd"),
        (b"<event uid='a' type='a-f' time='x' stale='y'/>", "time"),
        (b"<notevent/>", "not-event"),
        (b"<event", "xml"),
        (b"\xbf\x01\xbf\xff\xff\xff", "frame"),
        (b"\xbf\x01\xbf", "frame"),  # an empty TakMessage: no cotEvent
        (b"\xbf\x02", "frame"),
        (PLI.replace(b'lat="45.123456789"', b'lat="91"'), "point"),
        (PLI.replace(b'lat="45.123456789"', b'lat="nan"'), "point"),
        (PLI.replace(b'lon="-75.987654321"', b'lon="east"'), "point"),
        (PLI.replace(b'type="a-f-G-U-C"', b'type=""'), "field"),
        (PLI.replace(b"2026-12-02T14:10:00Z", b"2026-13-02T14:10:00Z"), "time"),
        (b"<event>" + b" " * MAX_EVENT + b"</event>", "too-large"),
    ],
)
def test_hostile_input_gets_a_coded_refusal(data: bytes, code: str) -> None:
    with pytest.raises(CotError) as info:
        decode_datagram(data)
    assert info.value.code == code


@given(st.binary(max_size=2048))
@settings(max_examples=300, deadline=None)
def test_random_bytes_never_crash(data: bytes) -> None:
    for blob in (data, b"\xbf\x01\xbf" + data, PLI[: len(data) % len(PLI)] + data):
        try:
            decode_datagram(blob)
        except CotError:
            pass
        try:
            StreamSplitter().feed(b"\xbf" + blob)
        except CotError:
            pass


@given(st.text(max_size=200), st.sampled_from(["uid", "type", "callsign", "remarks", "lat"]))
@settings(max_examples=200, deadline=None)
def test_mutated_fields_never_crash(value: str, where: str) -> None:
    from xml.sax.saxutils import quoteattr

    data = PLI.decode()
    if where == "remarks":
        data = data.replace("</detail>", f"<remarks>{value}</remarks></detail>")
    else:
        old = {
            "uid": '"ANDROID-1"',
            "type": '"a-f-G-U-C"',
            "callsign": '"Unit 7"',
            "lat": '"45.123456789"',
        }[where]
        data = data.replace(old, quoteattr(value), 1)
    try:
        parse_xml(data.encode("utf-8", "surrogatepass"))
    except CotError:
        pass


def test_stream_splitter_cuts_mixed_and_partial_input() -> None:
    ev = position_event(pos())
    blob = build_xml(ev) + encode_stream(ev) + b"<event>broken</event>" + build_xml(ev)
    splitter = StreamSplitter()
    out: list[object] = []
    for i in range(0, len(blob), 7):  # arrives in small pieces
        out += splitter.feed(blob[i : i + 7])
    assert [type(x).__name__ for x in out] == ["CotEvent", "CotEvent", "CotError", "CotEvent"]
    with pytest.raises(CotError) as info:
        StreamSplitter().feed(b"\xbf\xff\xff\xff\x7f")  # a frame length far over the bound
    assert info.value.code == "too-large"
    with pytest.raises(CotError):
        StreamSplitter().feed(b"<event>" + b"x" * MAX_EVENT)
