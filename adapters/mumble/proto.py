"""The Mumble control channel, sans-IO: framing and the few protobuf messages we use.

**Framing** (Mumble network protocol, "TCP channel"): every control message is a 2-byte
big-endian type, a 4-byte big-endian payload length and the protobuf payload.
:class:`FrameDecoder` buffers bytes and yields ``(type, payload)``; a frame longer than
``max_frame`` is refused before it is buffered.

**Messages.** We need a handful of fields of a dozen messages of ``Mumble.proto``, so the
protobuf wire format (varint, 64-bit, length-delimited, 32-bit) is decoded here by a small
table-driven codec instead of the protobuf runtime: no generated code, no descriptor pool, no
dependency the adapter does not declare, and every malformed input is one
:class:`MumbleProtocolError` with a stable ``code`` (the runtime's ``DecodeError`` says less).
Unknown fields are skipped by wire type, as protobuf requires; groups (wire types 3 and 4,
never used by Mumble) are refused.
Voice packets are in :mod:`adapters.mumble.voice`.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Any

from adapters.errors import AdapterError

__all__ = [
    "MAX_FRAME",
    "FrameDecoder",
    "MsgType",
    "MumbleError",
    "MumbleProtocolError",
    "decode_message",
    "encode_frame",
    "encode_message",
]

MAX_FRAME = 1 << 20  # bytes of one control payload (murmurd caps its own at 8 MiB; ours: 1 MiB)


class MumbleError(AdapterError):
    """Root of the Mumble adapter's errors."""


class MumbleProtocolError(MumbleError):
    """The server sent something malformed. ``code`` names the check that failed."""

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code
        super().__init__(f"mumble protocol error: {code}" + (f" ({detail})" if detail else ""))


class MsgType(IntEnum):
    Version = 0
    UDPTunnel = 1
    Authenticate = 2
    Ping = 3
    Reject = 4
    ServerSync = 5
    ChannelRemove = 6
    ChannelState = 7
    UserRemove = 8
    UserState = 9
    TextMessage = 11
    PermissionDenied = 12
    CryptSetup = 15
    CodecVersion = 21


# -- framing ---------------------------------------------------------------------------------

_HEADER = struct.Struct(">HI")


def encode_frame(kind: int, payload: bytes) -> bytes:
    """One control-channel frame."""
    if len(payload) > MAX_FRAME:
        raise MumbleError("message too long to send")
    return _HEADER.pack(kind, len(payload)) + payload


class FrameDecoder:
    """Bytes in, whole ``(type, payload)`` frames out; holds at most one partial frame."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        frames: list[tuple[int, bytes]] = []
        while len(self._buf) >= _HEADER.size:
            kind, length = _HEADER.unpack_from(self._buf)
            if length > self.max_frame:
                raise MumbleProtocolError("frame-too-long", f"{length} bytes")
            end = _HEADER.size + length
            if len(self._buf) < end:
                break
            frames.append((kind, bytes(self._buf[_HEADER.size : end])))
            del self._buf[:end]
        return frames


# -- protobuf wire format ----------------------------------------------------------------------

# A field: (number, name, kind, repeated). kind: uint (varint), int (int32/64, two's
# complement varint), bool, string, bytes, float (fixed32).
_Field = tuple[int, str, str, bool]
SCHEMAS: dict[MsgType, tuple[_Field, ...]] = {
    MsgType.Version: ((1, "version", "uint", False), (2, "release", "string", False),
                      (3, "os", "string", False), (4, "os_version", "string", False)),
    MsgType.Authenticate: ((1, "username", "string", False), (2, "password", "string", False),
                           (3, "tokens", "string", True), (4, "celt_versions", "int", True),
                           (5, "opus", "bool", False)),
    MsgType.Ping: ((1, "timestamp", "uint", False),),
    MsgType.Reject: ((1, "type", "uint", False), (2, "reason", "string", False)),
    MsgType.ServerSync: ((1, "session", "uint", False), (2, "max_bandwidth", "uint", False),
                         (3, "welcome_text", "string", False)),
    MsgType.ChannelRemove: ((1, "channel_id", "uint", False),),
    MsgType.ChannelState: ((1, "channel_id", "uint", False), (2, "parent", "uint", False),
                           (3, "name", "string", False), (8, "temporary", "bool", False)),
    MsgType.UserRemove: ((1, "session", "uint", False), (2, "actor", "uint", False),
                         (3, "reason", "string", False)),
    MsgType.UserState: ((1, "session", "uint", False), (2, "actor", "uint", False),
                        (3, "name", "string", False), (5, "channel_id", "uint", False),
                        (6, "mute", "bool", False), (8, "suppress", "bool", False),
                        (9, "self_mute", "bool", False), (14, "comment", "string", False)),
    MsgType.TextMessage: ((1, "actor", "uint", False), (2, "session", "uint", True),
                          (3, "channel_id", "uint", True), (4, "tree_id", "uint", True),
                          (5, "message", "string", False)),
    MsgType.PermissionDenied: ((1, "permission", "uint", False), (4, "reason", "string", False),
                               (5, "type", "uint", False)),
    MsgType.CodecVersion: ((1, "alpha", "int", False), (2, "beta", "int", False),
                           (3, "prefer_alpha", "bool", False), (4, "opus", "bool", False)),
}  # fmt: skip


def _pb_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _pb_read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(10):
        if pos >= len(data):
            raise MumbleProtocolError("truncated-varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos
    raise MumbleProtocolError("varint-too-long")


def encode_message(kind: MsgType, **fields: Any) -> bytes:
    """A message's protobuf payload; fields not in its schema are a ``ValueError``."""
    schema = {name: (num, k, rep) for num, name, k, rep in SCHEMAS[kind]}
    out = bytearray()
    for name, value in fields.items():
        if name not in schema:
            raise ValueError(f"{kind.name} has no field {name!r} here")
        num, k, rep = schema[name]
        for item in value if rep else [value]:
            if k in ("uint", "int", "bool"):
                number = int(item)
                if k == "uint" and number < 0:
                    raise ValueError(f"{kind.name}.{name} is unsigned")
                out += _pb_varint(num << 3) + _pb_varint(number & (1 << 64) - 1)
            elif k == "float":
                out += _pb_varint(num << 3 | 5) + struct.pack("<f", item)
            else:
                raw = item.encode("utf-8") if k == "string" else bytes(item)
                out += _pb_varint(num << 3 | 2) + _pb_varint(len(raw)) + raw
    return bytes(out)


def _convert(kind: str, wire: int, value: int | bytes) -> Any:
    expected = {"uint": 0, "int": 0, "bool": 0, "float": 5}.get(kind, 2)
    if wire != expected:
        raise MumbleProtocolError("wrong-wire-type")
    if kind == "uint":
        return value
    if kind == "int":
        assert isinstance(value, int)
        value &= (1 << 64) - 1
        return value - (1 << 64) if value >= 1 << 63 else value
    if kind == "bool":
        return bool(value)
    assert isinstance(value, bytes)
    if kind == "float":
        return struct.unpack("<f", value)[0]
    if kind == "string":
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise MumbleProtocolError("bad-utf8") from None
    return value


def decode_message(kind: MsgType, payload: bytes) -> dict[str, Any]:
    """The known fields of a message (absent ones omitted; repeated ones as lists)."""
    schema = {num: (name, k, rep) for num, name, k, rep in SCHEMAS[kind]}
    fields: dict[str, Any] = {}
    pos = 0
    while pos < len(payload):
        key, pos = _pb_read_varint(payload, pos)
        num, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _pb_read_varint(payload, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(payload):
                raise MumbleProtocolError("truncated-fixed")
            value, pos = payload[pos : pos + size], pos + size
        elif wire == 2:
            size, pos = _pb_read_varint(payload, pos)
            if pos + size > len(payload):
                raise MumbleProtocolError("truncated-bytes")
            value, pos = payload[pos : pos + size], pos + size
        else:
            raise MumbleProtocolError("bad-wire-type", str(wire))
        if num == 0:
            raise MumbleProtocolError("field-zero")
        if num not in schema:
            continue
        name, k, rep = schema[num]
        if rep and k != "string" and isinstance(value, bytes):  # packed repeated varints
            items, sub = [], 0
            while sub < len(value):
                item, sub = _pb_read_varint(value, sub)
                items.append(_convert(k, 0, item))
            fields.setdefault(name, []).extend(items)
        elif rep:
            fields.setdefault(name, []).append(_convert(k, wire, value))
        else:
            fields[name] = _convert(k, wire, value)
    return fields
