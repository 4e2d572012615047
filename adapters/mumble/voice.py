"""Mumble voice packets, sans-IO: Mumble's varints and the legacy Opus packet format.

**Voice** ("legacy" UDP format, carried in ``UDPTunnel`` frames over TLS): a header byte
``type << 5 | target`` (type 4 = Opus), then — server to client only — the talker's session,
then the sequence number and the Opus header ``length | 0x2000 if last``, all in Mumble's own
varint (not protobuf's: a prefix code, most significant bits first), then the Opus payload;
positional audio may follow and is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.mumble.proto import MumbleProtocolError

__all__ = ["VoicePacket", "decode_varint", "encode_varint", "encode_voice", "parse_voice"]

OPUS_TYPE = 4
OPUS_TERMINATOR = 0x2000
OPUS_MAX_LEN = 0x1FFF


def encode_varint(value: int) -> bytes:
    """Mumble's varint of a non-negative integer below 2**64."""
    if value < 0 or value >= 1 << 64:
        raise ValueError("Mumble varints here are non-negative and below 2**64")
    if value < 0x80:
        return bytes([value])
    if value < 0x4000:
        return bytes([0x80 | value >> 8, value & 0xFF])
    if value < 0x200000:
        return bytes([0xC0 | value >> 16]) + (value & 0xFFFF).to_bytes(2, "big")
    if value < 0x10000000:
        return bytes([0xE0 | value >> 24]) + (value & 0xFFFFFF).to_bytes(3, "big")
    if value < 1 << 32:
        return b"\xf0" + value.to_bytes(4, "big")
    return b"\xf4" + value.to_bytes(8, "big")


def decode_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Mumble's varint at ``pos``: ``(value, next position)``; negative forms are refused."""
    if pos >= len(data):
        raise MumbleProtocolError("truncated-varint")
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    for prefix, extra, mask in ((0x80, 1, 0x3F), (0xC0, 2, 0x1F), (0xE0, 3, 0x0F)):
        if first & ~mask & 0xFF == prefix:
            if pos + 1 + extra > len(data):
                raise MumbleProtocolError("truncated-varint")
            rest = int.from_bytes(data[pos + 1 : pos + 1 + extra], "big")
            return (first & mask) << (8 * extra) | rest, pos + 1 + extra
    if first & 0xFC in (0xF0, 0xF4):
        size = 4 if first & 0xFC == 0xF0 else 8
        if pos + 1 + size > len(data):
            raise MumbleProtocolError("truncated-varint")
        return int.from_bytes(data[pos + 1 : pos + 1 + size], "big"), pos + 1 + size
    raise MumbleProtocolError("negative-varint")


@dataclass(frozen=True, slots=True)
class VoicePacket:
    """One Opus voice packet: ``session`` is the talker's (None in client → server packets)."""

    session: int | None
    sequence: int
    opus: bytes
    last: bool
    target: int = 0

    def __post_init__(self) -> None:
        if len(self.opus) > OPUS_MAX_LEN:
            raise ValueError(f"an Opus voice frame is at most {OPUS_MAX_LEN} bytes")
        if not 0 <= self.target <= 31 or self.sequence < 0:
            raise ValueError("voice target is 0..31 and the sequence non-negative")


def encode_voice(packet: VoicePacket) -> bytes:
    """A voice packet as it goes in a ``UDPTunnel`` frame (with the session if it has one)."""
    header = bytes([OPUS_TYPE << 5 | packet.target])
    session = b"" if packet.session is None else encode_varint(packet.session)
    size = len(packet.opus) | (OPUS_TERMINATOR if packet.last else 0)
    return header + session + encode_varint(packet.sequence) + encode_varint(size) + packet.opus


def parse_voice(data: bytes, *, from_server: bool = True) -> VoicePacket | None:
    """A tunnelled voice packet; None for what is not Opus voice (pings, CELT, Speex)."""
    if not data:
        raise MumbleProtocolError("empty-voice")
    kind, target = data[0] >> 5, data[0] & 0x1F
    if kind != OPUS_TYPE:
        return None
    pos = 1
    session = None
    if from_server:
        session, pos = decode_varint(data, pos)
    sequence, pos = decode_varint(data, pos)
    size, pos = decode_varint(data, pos)
    length = size & OPUS_MAX_LEN
    if pos + length > len(data):
        raise MumbleProtocolError("truncated-opus")
    opus = data[pos : pos + length]
    return VoicePacket(session, sequence, opus, bool(size & OPUS_TERMINATOR), target)
