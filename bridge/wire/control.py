"""The relay wire protocol: control messages, media framing, error codes.

Control messages travel as WebSocket text frames: one JSON object with a type ``t`` and a
protocol version ``v``. :func:`parse_control` validates an incoming message against the table
``CLIENT_MESSAGES`` (required fields and their types) and raises :class:`ProtocolError` with a
wire code for anything else; it never echoes the offending input back.

Media (SFrame frames, opaque to the relay) travels either as WebSocket binary frames::

    client -> relay   0x01 | channel_no (u32) | sframe
    relay -> client   0x02 | channel_no (u32) | sframe

or as UDP datagrams bound to the authenticated session by a token and a MAC::

    client -> relay   0xCB 0x01 | token (8) | channel_no (u32) | sframe | mac (8)
    client -> relay   0xCB 0x02 | token (8) | mac (8)                      (register/keepalive)
    relay -> client   0xCB 0x03 | channel_no (u32) | sframe

``mac`` is the first 8 bytes of HMAC-SHA256(udp_key, everything before it); the relay gives each
session its token and key in ``welcome``. Downstream datagrams carry no MAC: their content is
authenticated end to end by SFrame, and replays are caught by the receivers' windows.
"""

from __future__ import annotations

import base64
import hmac
import json
import struct
from typing import Any, Final

from bridge.errors import RemoteProtocolError
from bridge.wire.codes import Code

VERSION: Final = 1
MAX_CONTROL: Final = 4 * 1024 * 1024  # a commit for 500 hybrid-KEM members is ~1.5 MB
MAX_SMALL_CONTROL: Final = 256 * 1024
MAX_SFRAME: Final = 1400

WS_MEDIA_UP: Final = 0x01
WS_MEDIA_DOWN: Final = 0x02
UDP_MAGIC: Final = 0xCB
UDP_MEDIA: Final = 0x01
UDP_REGISTER: Final = 0x02
UDP_MEDIA_DOWN: Final = 0x03
TOKEN_LEN: Final = 8
MAC_LEN: Final = 8

_CH = struct.Struct(">I")


Codes = Code  # the name the callers use


# type -> {field: type}. Extra fields are ignored (forward compatibility), missing or
# mistyped ones are refused.
CLIENT_MESSAGES: Final[dict[str, dict[str, type | tuple[type, ...]]]] = {
    "auth": {"credential": dict, "sig": str, "nonce": str},
    "commit": {"bundle": str},
    "msg": {"ch": str, "id": str, "frame": str},
    "ack": {"seq": int},
    "floor-request": {"ch": str, "priority": str},
    "floor-release": {"ch": str},
    "emergency-clear": {"ch": str},
    "lookup": {"devices": list},
    "revocation": {"list": dict},
    "ping": {},
}
_LARGE = {"commit", "auth", "revocation"}


def parse_control(data: str | bytes) -> dict[str, Any]:
    """Parse and validate one client control message; raise ProtocolError with a wire code."""
    if len(data) > MAX_CONTROL:
        raise RemoteProtocolError(Codes.TOO_LARGE)
    try:
        msg = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise RemoteProtocolError(Codes.MALFORMED, "not JSON")
    if not isinstance(msg, dict):
        raise RemoteProtocolError(Codes.MALFORMED, "not an object")
    t = msg.get("t")
    if msg.get("v") != VERSION:
        raise RemoteProtocolError(Codes.BAD_VERSION, f"protocol version {VERSION} expected")
    if not isinstance(t, str) or t not in CLIENT_MESSAGES:
        raise RemoteProtocolError(Codes.UNKNOWN_TYPE)
    if t not in _LARGE and len(data) > MAX_SMALL_CONTROL:
        raise RemoteProtocolError(Codes.TOO_LARGE)
    for name, kind in CLIENT_MESSAGES[t].items():
        value = msg.get(name)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise RemoteProtocolError(Codes.MALFORMED, f"field {name!r}")
    return msg


def b64(data: bytes) -> str:
    """Binary fields in control messages are standard base64."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    """Decode a base64 field of a peer's message; anything else is a coded ``malformed``."""
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise RemoteProtocolError(Codes.MALFORMED, "bad base64")


def control(t: str, **fields: Any) -> str:
    """Encode a control message (used by both sides)."""
    return json.dumps({"t": t, "v": VERSION, **fields}, separators=(",", ":"))


def error(code: str, detail: str = "", **fields: Any) -> str:
    return control("error", code=code, detail=detail, **fields)


# -- media framing -------------------------------------------------------------------------


def ws_media(kind: int, channel_no: int, frame: bytes) -> bytes:
    return bytes((kind,)) + _CH.pack(channel_no) + frame


def parse_ws_media(data: bytes) -> tuple[int, int, bytes]:
    """Return (kind, channel_no, sframe)."""
    if len(data) < 6 or len(data) > MAX_SFRAME + 5:
        raise RemoteProtocolError(Codes.MALFORMED, "bad media frame")
    return data[0], _CH.unpack_from(data, 1)[0], data[5:]


def udp_mac(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, "sha256")[:MAC_LEN]


def udp_media_up(token: bytes, key: bytes, channel_no: int, frame: bytes) -> bytes:
    head = bytes((UDP_MAGIC, UDP_MEDIA)) + token + _CH.pack(channel_no) + frame
    return head + udp_mac(key, head)


def udp_register(token: bytes, key: bytes) -> bytes:
    head = bytes((UDP_MAGIC, UDP_REGISTER)) + token
    return head + udp_mac(key, head)


def udp_media_down(channel_no: int, frame: bytes) -> bytes:
    return bytes((UDP_MAGIC, UDP_MEDIA_DOWN)) + _CH.pack(channel_no) + frame
