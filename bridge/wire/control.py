"""Control messages of the relay protocol (DESIGN §5), and the names callers use as ``p``.

A control message travels as one WebSocket text frame: a JSON object with a type ``t`` and a
protocol version ``v``. :func:`parse_control` reads a client's message strictly
(:mod:`crypto.strict_json`: bounded nesting, 64-bit integers, no NaN, no duplicate keys, no lone
surrogates) and checks it against :data:`CLIENT_MESSAGES`, a table of the fields each type must
carry and what each may hold (:mod:`bridge.wire.fields`). Whatever the input, it returns a
validated ``dict`` or raises :class:`~bridge.errors.RemoteProtocolError` with a wire
:class:`~bridge.wire.codes.Code`, in this order:

=================  =============================================================================
``too-large``      over :data:`MAX_CONTROL` (or :data:`MAX_SMALL_CONTROL` for a small type)
``malformed``      not strict JSON, not an object, nested too deeply, a field missing, of the
                   wrong type or out of range
``bad-version``    ``v`` is not the integer :data:`VERSION`
``unknown-type``   ``t`` names no client message
=================  =============================================================================

The ``detail`` of the error is a fixed hint that never echoes the input. Fields not in the table
are ignored (forward compatibility), except ``rid``, the optional request id a reply echoes,
which must be a short string or an integer.

Media framing (WebSocket binary frames, UDP datagrams) lives in :mod:`bridge.wire.media` and is
re-exported here, so ``from bridge.wire import control as p`` gives both.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Final

from bridge.errors import RemoteProtocolError
from bridge.wire.codes import Code
from bridge.wire.fields import (
    BASE64,
    CHANNEL_ID,
    DEVICE_ID,
    EPOCH,
    MESSAGE_ID,
    NONCE,
    OBJECT,
    PRIORITY,
    REQUEST_ID,
    SEQUENCE,
    FieldSpec,
    ListOf,
)
from bridge.wire.media import (
    MAC_LEN,
    MAX_SFRAME,
    TOKEN_LEN,
    UDP_MAGIC,
    UDP_MEDIA,
    UDP_MEDIA_DOWN,
    UDP_REGISTER,
    WS_MEDIA_DOWN,
    WS_MEDIA_UP,
    UdpUp,
    parse_udp_down,
    parse_udp_up,
    parse_ws_media,
    udp_mac,
    udp_mac_ok,
    udp_media_down,
    udp_media_up,
    udp_register,
    ws_media,
)
from crypto.strict_json import JsonRefused, loads

__all__ = [
    "CLIENT_MESSAGES",
    "MAC_LEN",
    "MAX_CONTROL",
    "MAX_DEPTH",
    "MAX_SFRAME",
    "MAX_SMALL_CONTROL",
    "OPTIONAL_FIELDS",
    "TOKEN_LEN",
    "UDP_MAGIC",
    "UDP_MEDIA",
    "UDP_MEDIA_DOWN",
    "UDP_REGISTER",
    "VERSION",
    "WS_MEDIA_DOWN",
    "WS_MEDIA_UP",
    "Code",
    "Codes",
    "UdpUp",
    "b64",
    "control",
    "error",
    "parse_control",
    "parse_json",
    "parse_udp_down",
    "parse_udp_up",
    "parse_ws_media",
    "udp_mac",
    "udp_mac_ok",
    "udp_media_down",
    "udp_media_up",
    "udp_register",
    "unb64",
    "ws_media",
]

VERSION: Final = 1
MAX_CONTROL: Final = 4 * 1024 * 1024  # a commit for 500 hybrid-KEM members is ~1.5 MB
MAX_SMALL_CONTROL: Final = 256 * 1024
MAX_DEPTH: Final = 8  # the deepest client message (auth: credential.body.roles) nests 4

Codes = Code  # the name the callers use

# type -> {field: what it must hold}. Missing or mistyped fields are refused.
CLIENT_MESSAGES: Final[dict[str, dict[str, FieldSpec]]] = {
    "auth": {"credential": OBJECT, "sig": BASE64, "nonce": NONCE},
    # ``ch``/``epoch`` name what the bundle changes, so the relay can refuse before decoding
    # it (checked against the bundle once decoded).
    "commit": {"bundle": BASE64, "ch": CHANNEL_ID, "epoch": EPOCH},
    "msg": {"ch": CHANNEL_ID, "id": MESSAGE_ID, "frame": BASE64},
    "ack": {"seq": SEQUENCE},
    "floor-request": {"ch": CHANNEL_ID, "priority": PRIORITY},
    "floor-release": {"ch": CHANNEL_ID},
    "emergency-clear": {"ch": CHANNEL_ID},
    "lookup": {"devices": ListOf(DEVICE_ID, max_items=1000)},
    "revocation": {"list": OBJECT},
    "ping": {},
    # A signed commit confirmation (crypto.confirm), passed to the channel's other members.
    "confirm": {"ch": CHANNEL_ID, "statement": BASE64},
}
# Optional in every message; ``null`` counts as absent.
OPTIONAL_FIELDS: Final[dict[str, FieldSpec]] = {"rid": REQUEST_ID}
_LARGE: Final = frozenset({"commit", "auth", "revocation"})


def parse_control(data: str | bytes) -> dict[str, Any]:
    """Parse and validate one client control message, or raise RemoteProtocolError (coded)."""
    if not isinstance(data, str | bytes | bytearray):
        raise RemoteProtocolError(Code.MALFORMED, "not a text message")
    if len(data) > MAX_CONTROL:
        raise RemoteProtocolError(Code.TOO_LARGE)
    msg = parse_json(data)
    if not isinstance(msg, dict):
        raise RemoteProtocolError(Code.MALFORMED, "not an object")
    v = msg.get("v")
    if type(v) is not int or v != VERSION:
        raise RemoteProtocolError(Code.BAD_VERSION, f"protocol version {VERSION} expected")
    t = msg.get("t")
    if not isinstance(t, str) or t not in CLIENT_MESSAGES:
        raise RemoteProtocolError(Code.UNKNOWN_TYPE)
    if t not in _LARGE and len(data) > MAX_SMALL_CONTROL:
        raise RemoteProtocolError(Code.TOO_LARGE)
    for name, spec in CLIENT_MESSAGES[t].items():
        if name not in msg or not spec.accepts(msg[name]):
            raise RemoteProtocolError(Code.MALFORMED, f"field {name!r}: {spec.describe}")
    for name, spec in OPTIONAL_FIELDS.items():
        value = msg.get(name)
        if value is not None and not spec.accepts(value):
            raise RemoteProtocolError(Code.MALFORMED, f"field {name!r}: {spec.describe}")
    return msg


def parse_json(data: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Strict JSON (:mod:`crypto.strict_json`) from a peer, or a coded ``malformed``: for any
    message of the protocol, in either direction (the endpoint reads the relay's with it)."""
    try:
        return loads(data, max_depth=max_depth)
    except JsonRefused as exc:
        raise RemoteProtocolError(Code.MALFORMED, str(exc)) from None


def b64(data: bytes) -> str:
    """Binary fields in control messages are standard base64."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    """Decode a base64 field of a peer's message; anything else is a coded ``malformed``."""
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise RemoteProtocolError(Code.MALFORMED, "bad base64") from None


def control(t: str, **fields: Any) -> str:
    """Encode a control message (used by both sides)."""
    return json.dumps({"t": t, "v": VERSION, **fields}, separators=(",", ":"))


def error(code: Code | str, detail: str = "", **fields: Any) -> str:
    """Encode an ``error`` message: a wire code, a fixed hint, and e.g. the request's ``rid``."""
    return control("error", code=code, detail=detail, **fields)
