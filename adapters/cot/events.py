"""A sans-IO Cursor-on-Target core: parse and build CoT XML events, refusing hostile input.

One :class:`CotEvent` carries what Crossband uses of an event: a position report (PLI,
``a-…`` types), a GeoChat message (``b-t-f``, ``__chat`` + ``remarks``) or an emergency
(``b-a-o-tbl``, ``b-a-o-pan``, ``b-a-o-opn``, ``b-a-g``, ``b-a-o-c``; ``b-a-o-can`` cancels).
Parsing uses :mod:`xml.etree` after refusing any DOCTYPE/ENTITY declaration (there is no
``defusedxml`` in the venv): without a DTD, expat expands no entity, so neither entity bombs
nor external entities can happen. Input is bounded to :data:`MAX_EVENT` bytes. Every refusal
is a :class:`CotError` with a short ``code``; nothing else escapes :func:`parse_xml`.
Coordinates are written with Python's shortest round-trip repr, so no decimal is lost.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from adapters.errors import AdapterError

__all__ = [
    "MAX_EVENT",
    "UNKNOWN",
    "CotError",
    "CotEvent",
    "EMERGENCY_TYPES",
    "parse_xml",
    "build_xml",
    "format_time",
    "parse_time",
    "safe_fromstring",
]

MAX_EVENT = 64 * 1024
MAX_FIELD = 1024  # uid, type, callsign, …
MAX_TEXT = 8 * 1024  # chat remarks
UNKNOWN = 9999999.0  # CoT's "not known" for hae/ce/le
EMERGENCY_TYPES = ("b-a-o-tbl", "b-a-o-pan", "b-a-o-opn", "b-a-g", "b-a-o-c")
CANCEL_TYPE = "b-a-o-can"
CHAT_TYPE = "b-t-f"
_DECL = re.compile(rb"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST)", re.IGNORECASE)
_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]00:?00)?")
_TYPE = re.compile(r"[a-zA-Z0-9.\-_]{1,64}")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class CotError(AdapterError):
    """A CoT event or frame was refused. ``code`` is short and stable (``too-large``,
    ``dtd``, ``xml``, ``not-event``, ``field``, ``time``, ``point``, ``frame``); the message
    never quotes the input."""

    def __init__(self, code: str, problem: str) -> None:
        self.code = code
        super().__init__(f"CoT {code}: {problem}")


@dataclass(frozen=True, slots=True)
class CotEvent:
    """The parts of a CoT event Crossband reads and writes. Times are UTC epoch seconds."""

    uid: str
    type: str
    time: float
    start: float
    stale: float
    lat: float = 0.0
    lon: float = 0.0
    hae: float = UNKNOWN
    ce: float = UNKNOWN
    le: float = UNKNOWN
    how: str = "m-g"
    callsign: str | None = None
    group_name: str | None = None
    group_role: str | None = None
    course: float | None = None
    speed: float | None = None
    remarks: str | None = None  # GeoChat text (or free remarks)
    chat_room: str | None = None
    sender_uid: str | None = None  # GeoChat/emergency <link uid> (the device that sent it)
    emergency_type: str | None = None  # <emergency type="911 Alert">
    emergency_cancel: bool = False

    def __post_init__(self) -> None:
        for name in ("uid", "type", "how"):
            _check_str(name, getattr(self, name))
        if not _TYPE.fullmatch(self.type):
            raise CotError("field", "type is not a CoT type")
        for name in (
            "callsign",
            "group_name",
            "group_role",
            "chat_room",
            "sender_uid",
            "emergency_type",
        ):
            value = getattr(self, name)
            if value is not None:
                _check_str(name, value)
        if self.remarks is not None and (
            not isinstance(self.remarks, str)
            or len(self.remarks) > MAX_TEXT
            or _NOT_XML.search(self.remarks)
        ):
            raise CotError("field", "remarks too long or not XML text")
        for name in ("time", "start", "stale", "hae", "ce", "le"):
            _check_num(name, getattr(self, name))
        for name in ("course", "speed"):
            if getattr(self, name) is not None:
                _check_num(name, getattr(self, name))
        _check_num("lat", self.lat, 90.0)
        _check_num("lon", self.lon, 180.0)

    @property
    def is_chat(self) -> bool:
        return self.type == CHAT_TYPE

    @property
    def is_emergency(self) -> bool:
        return self.type in EMERGENCY_TYPES or self.type == CANCEL_TYPE

    @property
    def is_position(self) -> bool:
        return self.type.startswith("a-")


def _check_str(name: str, value: object) -> None:
    if not isinstance(value, str) or not value or len(value) > MAX_FIELD:
        raise CotError("field", f"{name} must be a string of 1..{MAX_FIELD} characters")
    if _NOT_XML.search(value):
        raise CotError("field", f"{name} has characters XML cannot carry")


def _check_num(name: str, value: object, bound: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CotError("point" if bound else "field", f"{name} must be a finite number")
    if bound is not None and abs(value) > bound:
        raise CotError("point", f"{name} out of range")


def parse_time(text: str | None) -> float:
    """A CoT timestamp (``2026-12-02T14:00:00.123Z``) as epoch seconds."""
    m = _TIME.fullmatch(text or "")
    if m is None:
        raise CotError("time", "not a CoT timestamp")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    try:
        stamp = datetime(y, mo, d, h, mi, s, tzinfo=UTC).timestamp()
    except ValueError:
        raise CotError("time", "not a valid date") from None
    frac = m.group(7)
    return stamp + (int(frac) / 10 ** len(frac) if frac else 0.0)


def format_time(seconds: float) -> str:
    """Epoch seconds as a CoT timestamp with milliseconds."""
    ms = round(seconds * 1000)
    stamp = datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ms % 1000:03d}Z"


def _float(value: str | None, name: str, default: float | None) -> float | None:
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise CotError("point", f"{name} is not a number") from None


def _req(value: str | None, name: str, default: float) -> float:
    number = _float(value, name, default)
    return default if number is None else number


def parse_xml(data: bytes) -> CotEvent:
    """One CoT XML ``<event>`` as a :class:`CotEvent`; :class:`CotError` if refused."""
    if not isinstance(data, bytes | bytearray):
        raise CotError("xml", "input is not bytes")
    if len(data) > MAX_EVENT:
        raise CotError("too-large", f"event over {MAX_EVENT} bytes")
    return event_from_element(safe_fromstring(bytes(data)))


def safe_fromstring(data: bytes) -> ET.Element:
    """``data`` parsed, after refusing any DTD (so no entity can be declared or expanded)."""
    if _DECL.search(data):
        raise CotError("dtd", "DOCTYPE/ENTITY declarations are refused")
    try:
        return ET.fromstring(data)  # noqa: S314 - no DTD is possible: refused just above
    except (ET.ParseError, ValueError):
        raise CotError("xml", "not well-formed XML") from None


def event_from_element(root: ET.Element) -> CotEvent:
    """A parsed ``<event>`` element as a :class:`CotEvent`."""
    if root.tag != "event":
        raise CotError("not-event", "the root element is not <event>")
    point = root.find("point")
    pt = point.attrib if point is not None else {}
    detail = root.find("detail")
    fields = detail_fields(detail) if detail is not None else {}
    try:
        return CotEvent(
            uid=root.get("uid", ""),
            type=root.get("type", ""),
            how=root.get("how") or "m-g",
            time=parse_time(root.get("time")),
            start=parse_time(root.get("start") or root.get("time")),
            stale=parse_time(root.get("stale")),
            lat=_req(pt.get("lat"), "lat", 0.0),
            lon=_req(pt.get("lon"), "lon", 0.0),
            hae=_req(pt.get("hae"), "hae", UNKNOWN),
            ce=_req(pt.get("ce"), "ce", UNKNOWN),
            le=_req(pt.get("le"), "le", UNKNOWN),
            **fields,
        )
    except TypeError:
        raise CotError("field", "malformed event") from None


def detail_fields(detail: ET.Element) -> dict[str, Any]:
    """The :class:`CotEvent` fields found in a ``<detail>`` element."""
    out: dict[str, Any] = {}
    contact, group, track = detail.find("contact"), detail.find("__group"), detail.find("track")
    chat, link, remarks = detail.find("__chat"), detail.find("link"), detail.find("remarks")
    emergency = detail.find("emergency")
    if contact is not None:
        out["callsign"] = contact.get("callsign") or None
    if group is not None:
        out["group_name"] = group.get("name") or None
        out["group_role"] = group.get("role") or None
    if track is not None:
        out["course"] = _float(track.get("course"), "course", None)
        out["speed"] = _float(track.get("speed"), "speed", None)
    if chat is not None:
        out["chat_room"] = chat.get("chatroom") or chat.get("id") or None
        if "callsign" not in out or out["callsign"] is None:
            out["callsign"] = chat.get("senderCallsign") or None
    if link is not None:
        out["sender_uid"] = link.get("uid") or None
    if remarks is not None and remarks.text:
        out["remarks"] = remarks.text
    if emergency is not None:
        out["emergency_type"] = emergency.get("type") or None
        out["emergency_cancel"] = (emergency.get("cancel") or "").lower() == "true"
    return out


def _num(value: float) -> str:
    text = repr(float(value))  # the shortest text that reads back as the same float
    return format(Decimal(text), "f") if "e" in text else text


def extra_detail(event: CotEvent) -> list[ET.Element]:
    """The ``<detail>`` children that protobuf has no typed field for (chat, link, emergency)."""
    out: list[ET.Element] = []
    if event.chat_room is not None:
        chat = ET.Element(
            "__chat",
            parent="RootContactGroup",
            groupOwner="false",
            chatroom=event.chat_room,
            id=event.chat_room,
            senderCallsign=event.callsign or event.uid,
        )
        ET.SubElement(
            chat,
            "chatgrp",
            uid0=event.sender_uid or event.uid,
            uid1=event.chat_room,
            id=event.chat_room,
        )
        out.append(chat)
    if event.sender_uid is not None:
        out.append(ET.Element("link", uid=event.sender_uid, type="a-f-G-U-C", relation="p-p"))
    if event.remarks is not None:
        remarks = ET.Element("remarks", time=format_time(event.time))
        if event.chat_room is not None:
            remarks.set("source", f"BAO.F.ATAK.{event.sender_uid or event.uid}")
            remarks.set("to", event.chat_room)
        remarks.text = event.remarks
        out.append(remarks)
    if event.is_emergency:
        em = ET.Element("emergency")
        if event.emergency_cancel or event.type == CANCEL_TYPE:
            em.set("cancel", "true")
        elif event.emergency_type:
            em.set("type", event.emergency_type)
        em.text = event.callsign or event.uid
        out.append(em)
    return out


def build_element(event: CotEvent) -> ET.Element:
    """A :class:`CotEvent` as an ``<event>`` element (CoT 2.0)."""
    root = ET.Element(
        "event",
        version="2.0",
        uid=event.uid,
        type=event.type,
        how=event.how,
        time=format_time(event.time),
        start=format_time(event.start),
        stale=format_time(event.stale),
    )
    ET.SubElement(
        root,
        "point",
        lat=_num(event.lat),
        lon=_num(event.lon),
        hae=_num(event.hae),
        ce=_num(event.ce),
        le=_num(event.le),
    )
    detail = ET.SubElement(root, "detail")
    if event.callsign is not None:
        ET.SubElement(detail, "contact", callsign=event.callsign)
    if event.group_name is not None or event.group_role is not None:
        ET.SubElement(
            detail,
            "__group",
            name=event.group_name or "Cyan",
            role=event.group_role or "Team Member",
        )
    if event.course is not None or event.speed is not None:
        ET.SubElement(
            detail, "track", course=_num(event.course or 0.0), speed=_num(event.speed or 0.0)
        )
    detail.extend(extra_detail(event))
    return root


def build_xml(event: CotEvent) -> bytes:
    """A :class:`CotEvent` as CoT XML bytes (with an XML declaration)."""
    body = ET.tostring(build_element(event), encoding="unicode")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body.encode()
