"""What the relay may send an endpoint, as data: the table of relay-to-endpoint control messages.

The relay is not trusted (DESIGN §4a), so :func:`parse_relay_message` is a parser of hostile
input. Whatever the text, it returns a message whose type is in :data:`RELAY_MESSAGES` and
whose fields have the types the table gives (required ones present, optional ones absent,
``None`` where allowed, or of the right type), or raises
:class:`~bridge.errors.RemoteProtocolError` (code ``malformed``, ``too-large`` or
``bad-version``) and nothing else. Unknown message types come back as ``None``: a newer
relay may send what this endpoint does not know, and that is not an error.

The text is read with :func:`bridge.wire.control.parse_json`, as strictly as the relay reads
ours (:mod:`crypto.strict_json`): bounded nesting (however deep the input, a refusal, never a
``RecursionError``), 64-bit integers, no NaN or Infinity, no duplicate keys, no lone surrogates.
The two messages of authentication (``challenge``, ``welcome``) are in the table too: the
:class:`~bridge.endpoint.link.RelayLink` reads them with the same parser.
"""

from __future__ import annotations

from typing import Any, Final

from bridge.errors import RemoteProtocolError
from bridge.wire import control as p
from bridge.wire.codes import Code

_Kind = type | tuple[type, ...]
_OptStr: Final = (str, type(None))
_OptInt: Final = (int, type(None))

# type -> (required {field: type}, optional {field: type}). Extra fields are ignored.
RELAY_MESSAGES: Final[dict[str, tuple[dict[str, _Kind], dict[str, _Kind]]]] = {
    "challenge": ({"nonce": str, "relay": str}, {}),
    "welcome": (
        {"udp_token": str, "udp_key": str},
        {"udp_port": _OptInt, "relay_sig": _OptStr, "channels": list},
    ),
    "deliver": ({"seq": int, "kind": str, "ch": str, "id": str, "body": str}, {}),
    "channel": ({"ch": str, "no": int}, {"epoch": int}),
    "channel-closed": ({"ch": str}, {"epoch": int, "reason": str}),
    "floor": (
        {"ch": str, "event": str},
        {
            "device": _OptStr,
            "priority": _OptStr,
            "reason": _OptStr,
            "position": _OptInt,
            "active": bool,
        },
    ),
    "floor-state": (
        {"ch": str},
        {"holder": _OptStr, "priority": _OptStr, "emergency": bool, "emergency_by": _OptStr},
    ),
    "accepted": ({"id": str}, {"ch": str}),
    "commit-ok": ({"ch": str, "epoch": int}, {}),
    "directory": ({"credentials": list}, {"rid": _OptStr}),
    "revocation-ok": ({"agency": str, "number": int}, {}),
    "error": ({"code": str}, {"detail": str, "ch": str, "epoch": int, "rid": _OptStr}),
    "pong": ({}, {}),
}
MAX_NO: Final = 0xFFFFFFFF
MAX_SEQ: Final = (1 << 63) - 1
MAX_PORT: Final = 0xFFFF


def _typed(value: Any, kind: _Kind) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        return False  # JSON true is not an integer here
    return isinstance(value, kinds)


def parse_relay_message(data: str | bytes) -> dict[str, Any] | None:
    """Parse one control message from the relay (see the module docstring)."""
    if len(data) > p.MAX_CONTROL:
        raise RemoteProtocolError(Code.TOO_LARGE, "control message too large")
    return check_relay_message(p.parse_json(data))


def check_relay_message(msg: Any) -> dict[str, Any] | None:
    """Validate an already parsed message against :data:`RELAY_MESSAGES`."""
    if not isinstance(msg, dict):
        raise RemoteProtocolError(Code.MALFORMED, "not an object")
    t = msg.get("t")
    if not isinstance(t, str):
        raise RemoteProtocolError(Code.MALFORMED, "no message type")
    if msg.get("v") != p.VERSION:
        raise RemoteProtocolError(Code.BAD_VERSION, f"protocol version {p.VERSION} expected")
    spec = RELAY_MESSAGES.get(t)
    if spec is None:
        return None
    required, optional = spec
    for name, kind in required.items():
        if name not in msg or not _typed(msg[name], kind):
            raise RemoteProtocolError(Code.MALFORMED, f"{t}: field {name!r}")
    for name, kind in optional.items():
        if name in msg and not _typed(msg[name], kind):
            raise RemoteProtocolError(Code.MALFORMED, f"{t}: field {name!r}")
    if t == "channel" and not 1 <= msg["no"] <= MAX_NO:
        raise RemoteProtocolError(Code.MALFORMED, "channel number out of range")
    if t == "deliver" and not 0 <= msg["seq"] <= MAX_SEQ:
        raise RemoteProtocolError(Code.MALFORMED, "delivery sequence out of range")
    if t == "welcome" and not 0 <= (msg.get("udp_port") or 0) <= MAX_PORT:
        raise RemoteProtocolError(Code.MALFORMED, "welcome: udp port out of range")
    return msg


def welcome_channels(welcome: Any) -> list[tuple[str, int]]:
    """The (channel, number) pairs of a ``welcome``; malformed entries raise."""
    items = welcome.get("channels", []) if isinstance(welcome, dict) else None
    if not isinstance(items, list):
        raise RemoteProtocolError(Code.MALFORMED, "welcome: channels")
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise RemoteProtocolError(Code.MALFORMED, "welcome: channel entry")
        ch, no = item.get("ch"), item.get("no")
        if not isinstance(ch, str) or not isinstance(no, int) or isinstance(no, bool):
            raise RemoteProtocolError(Code.MALFORMED, "welcome: channel entry")
        if not 1 <= no <= MAX_NO:
            raise RemoteProtocolError(Code.MALFORMED, "welcome: channel number")
        out.append((ch, no))
    return out
