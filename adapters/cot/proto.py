"""TAK protocol version 1 framing (sans-IO) through ``takproto``'s ``TakMessage``.

* mesh (UDP): ``0xbf 0x01 0xbf`` + a serialized ``TakMessage``;
* stream (TCP): ``0xbf`` + varint length + a serialized ``TakMessage``.

``takproto``'s own ``xml2proto`` parses XML with an unguarded ``ElementTree``, so the XML side
is ours (:mod:`adapters.cot.events`) and only its protobuf classes are used here. The
``xmlDetail`` string (chat, link, emergency) is parsed with the same guards as an event.
:class:`StreamSplitter` cuts a TCP byte stream carrying XML events or stream frames into
single events, with a bounded buffer.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError
from takproto.proto import TakMessage

from adapters.cot.events import (
    MAX_EVENT,
    UNKNOWN,
    CotError,
    CotEvent,
    detail_fields,
    extra_detail,
    parse_xml,
    safe_fromstring,
)

__all__ = [
    "MESH_HEADER",
    "StreamSplitter",
    "decode_datagram",
    "encode_mesh",
    "encode_stream",
    "from_message",
    "to_message",
]

MESH_HEADER = b"\xbf\x01\xbf"
MAGIC = 0xBF
_END = b"</event>"


def to_message(event: CotEvent) -> TakMessage:
    msg = TakMessage()
    ev = msg.cotEvent
    ev.type, ev.uid, ev.how = event.type, event.uid, event.how
    ev.sendTime = round(event.time * 1000)
    ev.startTime = round(event.start * 1000)
    ev.staleTime = round(event.stale * 1000)
    ev.lat, ev.lon, ev.hae, ev.ce, ev.le = event.lat, event.lon, event.hae, event.ce, event.le
    if event.callsign is not None:
        ev.detail.contact.callsign = event.callsign
    if event.group_name is not None or event.group_role is not None:
        ev.detail.group.name = event.group_name or "Cyan"
        ev.detail.group.role = event.group_role or "Team Member"
    if event.course is not None or event.speed is not None:
        ev.detail.track.course = event.course or 0.0
        ev.detail.track.speed = event.speed or 0.0
    ev.detail.xmlDetail = "".join(ET.tostring(e, encoding="unicode") for e in extra_detail(event))
    if event.is_chat and event.sender_uid:
        msg.takControl.contactUid = event.sender_uid
    return msg


def from_message(msg: TakMessage) -> CotEvent:
    ev = msg.cotEvent
    fields: dict[str, Any] = {}
    xml_detail = ev.detail.xmlDetail
    if xml_detail:
        wrapped = f"<event><detail>{xml_detail}</detail></event>".encode()
        if len(wrapped) > MAX_EVENT:
            raise CotError("too-large", "xmlDetail too large")
        detail = safe_fromstring(wrapped).find("detail")
        if detail is not None:
            fields.update(detail_fields(detail))
    d = ev.detail
    if d.HasField("contact") and d.contact.callsign:
        fields["callsign"] = d.contact.callsign
    if d.HasField("group"):
        fields["group_name"] = d.group.name or None
        fields["group_role"] = d.group.role or None
    if d.HasField("track"):
        fields["course"], fields["speed"] = d.track.course, d.track.speed
    try:
        return CotEvent(
            uid=ev.uid,
            type=ev.type,
            how=ev.how or "m-g",
            time=ev.sendTime / 1000,
            start=(ev.startTime or ev.sendTime) / 1000,
            stale=ev.staleTime / 1000,
            lat=ev.lat,
            lon=ev.lon,
            hae=ev.hae if ev.hae else UNKNOWN,
            ce=ev.ce,
            le=ev.le,
            **fields,
        )
    except TypeError:
        raise CotError("field", "malformed event") from None


def _parse_message(payload: bytes) -> CotEvent:
    msg = TakMessage()
    try:
        msg.ParseFromString(payload)
    except (DecodeError, ValueError, RuntimeError):
        raise CotError("frame", "not a TakMessage") from None
    if not msg.HasField("cotEvent"):
        raise CotError("frame", "a TakMessage without a cotEvent")
    return from_message(msg)


def encode_mesh(event: CotEvent) -> bytes:
    body: bytes = to_message(event).SerializeToString()
    return MESH_HEADER + body


def encode_stream(event: CotEvent) -> bytes:
    body: bytes = to_message(event).SerializeToString()
    size: bytes = varint(len(body))
    return bytes([MAGIC]) + size + body


def decode_datagram(data: bytes) -> CotEvent:
    """A UDP datagram: a mesh frame or an XML event."""
    if len(data) > MAX_EVENT:
        raise CotError("too-large", f"datagram over {MAX_EVENT} bytes")
    if data[:3] == MESH_HEADER:
        return _parse_message(bytes(data[3:]))
    if data[:1] == bytes([MAGIC]):
        raise CotError("frame", "unsupported TAK protocol version")
    return parse_xml(data)


class StreamSplitter:
    """Cuts a TCP stream into events: XML ``<event>…</event>`` or ``0xbf`` stream frames.

    :meth:`feed` returns the events completed so far; a refused event is returned as its
    :class:`CotError` (the stream stays usable); a stream that cannot be resynchronised
    (bytes that start neither ``<`` nor ``0xbf``, a frame or an XML event over
    :data:`MAX_EVENT`) raises :class:`CotError`."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[CotEvent | CotError]:
        self._buf += data
        out: list[CotEvent | CotError] = []
        while True:
            del self._buf[: len(self._buf) - len(self._buf.lstrip())]
            if not self._buf:
                return out
            if self._buf[0] == MAGIC:
                got = read_varint(self._buf, 1)
                if got is None:
                    if len(self._buf) > 1 + MAX_VARINT:
                        raise CotError("frame", "bad frame length")
                    return out  # the varint is not complete yet
                size, pos = got[0], got[1] - 1
                if size > MAX_EVENT:
                    raise CotError("too-large", f"frame over {MAX_EVENT} bytes")
                end = 1 + pos + size
                if len(self._buf) < end:
                    return out
                payload = bytes(self._buf[1 + pos : end])
                del self._buf[:end]
                out.append(_attempt(_parse_message, payload))
                continue
            if self._buf[:1] != b"<":
                raise CotError("sync", "neither an XML event nor a stream frame")
            end = self._buf.find(_END)
            if end < 0:
                if len(self._buf) > MAX_EVENT:
                    raise CotError("too-large", f"event over {MAX_EVENT} bytes")
                return out
            chunk = bytes(self._buf[: end + len(_END)])
            del self._buf[: end + len(_END)]
            out.append(_attempt(parse_xml, chunk))


MAX_VARINT = 4  # bytes: a length up to 2**28, far beyond MAX_EVENT


def varint(n: int) -> bytes:
    """The protobuf base-128 varint of ``n`` (≥ 0)."""
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_varint(buf: bytes | bytearray, at: int) -> tuple[int, int] | None:
    """(value, index after it) of the varint at ``at``; ``None`` while incomplete; a varint
    longer than :data:`MAX_VARINT` bytes is a :class:`CotError`."""
    value = 0
    for i in range(MAX_VARINT):
        if at + i >= len(buf):
            return None
        b = buf[at + i]
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            return value, at + i + 1
    raise CotError("frame", "bad frame length")


def _attempt(parse: Callable[[bytes], CotEvent], data: bytes) -> CotEvent | CotError:
    try:
        return parse(data)
    except CotError as exc:
        return exc
