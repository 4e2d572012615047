"""The harness's RFC 6455 framing (tests/security/wsframes.py), sans-IO: lengths, masks,
fragments with control frames between them, and every violation refused."""

from __future__ import annotations

import struct

import pytest

from tests.security.wsframes import (
    BINARY,
    CONT,
    PING,
    PONG,
    TEXT,
    MessageReader,
    WsProtocolError,
    apply_mask,
    encode,
)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
@pytest.mark.parametrize("masked", [True, False])
def test_every_length_encoding_round_trips(size: int, masked: bool) -> None:
    payload = bytes(i % 251 for i in range(size))
    data = encode(BINARY, payload, mask=masked)
    header = 2 + (0 if size < 126 else 2 if size < 65536 else 8) + (4 if masked else 0)
    assert len(data) == header + size
    assert MessageReader(masked).feed(data) == [(BINARY, payload)]


def test_masking_is_rfc_6455_section_5_3() -> None:
    # RFC 6455 §5.7: a masked "Hello" from a client, key 37 fa 21 3d.
    frame = bytes.fromhex("818537fa213d7f9f4d5158")
    assert MessageReader(masked=True).feed(frame) == [(TEXT, b"Hello")]
    assert apply_mask(bytes.fromhex("37fa213d"), b"Hello") == bytes.fromhex("7f9f4d5158")
    assert MessageReader(masked=False).feed(bytes.fromhex("810548656c6c6f")) == [(TEXT, b"Hello")]


def test_fragments_are_reassembled_around_control_frames_fed_byte_by_byte() -> None:
    # RFC 6455 §5.6/§5.4: "Hel" + ping + "lo", then a pong, unmasked.
    stream = bytes.fromhex("010348656c") + bytes.fromhex("8900") + bytes.fromhex("80026c6f")
    stream += bytes.fromhex("8a0161")
    reader = MessageReader(masked=False)
    out = [m for b in stream for m in reader.feed(bytes([b]))]
    assert out == [(PING, b""), (TEXT, b"Hello"), (PONG, b"a")] and reader.frames == 4


@pytest.mark.parametrize("masked", [True, False])
def test_encoded_fragments(masked: bool) -> None:
    """16 frames: a first with FIN clear, continuations, a last with FIN set; a control frame is
    never split. (The real aiohttp endpoint and relay read them: test_harness.py, "ws".)"""
    payload = b"x" * 1000
    data = encode(TEXT, payload, mask=masked, fragment=64)
    reader = MessageReader(masked)
    assert reader.feed(data) == [(TEXT, payload)] and reader.frames == 16
    assert data[0] == TEXT and data[-(40 + (4 if masked else 0)) - 2] == 0x80 | CONT
    assert len(encode(PING, b"p" * 100, mask=masked, fragment=10)) == 102 + (4 if masked else 0)


def _frame(b0: int, b1: int, payload: bytes = b"", key: bytes = b"") -> bytes:
    return bytes([b0, b1]) + key + (apply_mask(key, payload) if key else payload)


@pytest.mark.parametrize(
    ("masked", "data", "why"),
    [
        (True, _frame(0x81, 0x01, b"a"), "masked"),  # a client frame without a mask
        (False, _frame(0x81, 0x81, b"a", b"kkkk"), "masked"),  # a server frame with one
        (False, _frame(0xC1, 0x01, b"a"), "reserved bits"),  # RSV1 (permessage-deflate)
        (False, _frame(0x80, 0x01, b"a"), "continuation"),  # nothing to continue
        (False, _frame(0x01, 0x01, b"a") + _frame(0x81, 0x01, b"b"), "new data frame"),
        (False, _frame(0x09, 0x00), "control frames"),  # a fragmented ping
        (False, bytes([0x89, 126]) + struct.pack("!H", 126) + b"p" * 126, "control frames"),
        (False, _frame(0x83, 0x00), "reserved opcode"),
        (False, bytes([0x82, 127]) + struct.pack("!Q", 2**40), "size limit"),
    ],
)
def test_violations_are_refused(masked: bool, data: bytes, why: str) -> None:
    with pytest.raises(WsProtocolError, match=why):
        MessageReader(masked).feed(data)


def test_a_fragmented_message_over_the_limit_is_refused() -> None:
    reader = MessageReader(masked=False, max_size=100)
    assert reader.feed(_frame(0x02, 60, b"a" * 60)) == []
    with pytest.raises(WsProtocolError, match="size limit"):
        reader.feed(_frame(CONT, 60, b"a" * 60))
