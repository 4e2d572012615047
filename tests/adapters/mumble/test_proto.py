"""The Mumble wire codecs: varints, protobuf fields, framing, voice packets; and a fuzzer that
accepts only :class:`MumbleProtocolError` from anything the server could send."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.mumble.proto import (
    FrameDecoder,
    MsgType,
    MumbleProtocolError,
    decode_message,
    encode_frame,
    encode_message,
)
from adapters.mumble.voice import (
    VoicePacket,
    decode_varint,
    encode_varint,
    encode_voice,
    parse_voice,
)

# Mumble's varint table (docs/dev/network-protocol/voice_data.rst, "Variable length integer").
VARINTS = [
    (0, "00"),
    (0x7F, "7f"),
    (0x80, "8080"),
    (0x3FFF, "bfff"),
    (0x4000, "c04000"),
    (0x1FFFFF, "dfffff"),
    (0x200000, "e0200000"),
    (0xFFFFFFF, "efffffff"),
    (0x10000000, "f010000000"),
    (0xFFFFFFFF, "f0ffffffff"),
    (1 << 32, "f40000000100000000"),
]


@pytest.mark.parametrize(("value", "wire"), VARINTS)
def test_varint_vectors(value: int, wire: str) -> None:
    assert encode_varint(value).hex() == wire
    assert decode_varint(bytes.fromhex(wire), 0) == (value, len(wire) // 2)


@given(st.integers(0, (1 << 64) - 1))
def test_varint_round_trip(value: int) -> None:
    data = encode_varint(value) + b"tail"
    assert decode_varint(data, 0) == (value, len(data) - 4)


@pytest.mark.parametrize(("wire", "code"), [("f8", "negative-varint"), ("fc", "negative-varint"),
                                            ("c0", "truncated-varint"), ("", "truncated-varint"),
                                            ("f4000000", "truncated-varint")])  # fmt: skip
def test_varint_refusals(wire: str, code: str) -> None:
    with pytest.raises(MumbleProtocolError) as err:
        decode_varint(bytes.fromhex(wire), 0)
    assert err.value.code == code


def test_protobuf_vector() -> None:
    # Authenticate{username: "bob", opus: true}: field 1 len 3 "bob", field 5 varint 1.
    payload = encode_message(MsgType.Authenticate, username="bob", opus=True)
    assert payload.hex() == "0a03626f622801"
    assert decode_message(MsgType.Authenticate, payload) == {"username": "bob", "opus": True}


def test_protobuf_repeated_packed_and_unknown_fields() -> None:
    payload = (
        bytes.fromhex("0807")  # actor = 7
        + bytes.fromhex("3205")
        + b"hello"  # field 6, bytes: not ours, skipped
        + bytes.fromhex("3d01020304")  # field 7, fixed32: skipped
        + bytes.fromhex("41")
        + bytes(8)  # field 8, fixed64: skipped
        + bytes.fromhex("1a03010203")  # channel_id, packed: 1, 2, 3
        + bytes.fromhex("1804")  # channel_id, unpacked: 4
        + bytes.fromhex("2a02")
        + b"hi"  # message
    )
    assert decode_message(MsgType.TextMessage, payload) == {
        "actor": 7,
        "channel_id": [1, 2, 3, 4],
        "message": "hi",
    }


def test_protobuf_negative_int32() -> None:
    payload = encode_message(MsgType.CodecVersion, alpha=-2147483637, beta=0, opus=True)
    assert decode_message(MsgType.CodecVersion, payload)["alpha"] == -2147483637


@pytest.mark.parametrize(("payload", "code"), [
    ("0b", "bad-wire-type"),          # field 1, wire type 3 (group)
    ("1a05616263", "truncated-bytes"),
    ("0d0102", "truncated-fixed"),
    ("08ffffffffffffffffffff01", "varint-too-long"),
    ("1a02c328", "bad-utf8"),           # field 3 = name: invalid UTF-8
    ("0a00", "wrong-wire-type"),        # channel_id as bytes
    ("0001", "field-zero"),
])  # fmt: skip
def test_protobuf_refusals(payload: str, code: str) -> None:
    with pytest.raises(MumbleProtocolError) as err:
        decode_message(MsgType.ChannelState, bytes.fromhex(payload))
    assert err.value.code == code


def test_encode_message_refuses_unknown_fields() -> None:
    with pytest.raises(ValueError):
        encode_message(MsgType.Ping, good=1)


def test_frames_split_anywhere() -> None:
    stream = encode_frame(3, b"abc") + encode_frame(7, b"") + encode_frame(11, b"x" * 300)
    for cut in range(len(stream) + 1):
        decoder = FrameDecoder()
        frames = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert frames == [(3, b"abc"), (7, b""), (11, b"x" * 300)]


def test_oversized_frame_refused_from_its_header() -> None:
    decoder = FrameDecoder(max_frame=1000)
    with pytest.raises(MumbleProtocolError) as err:
        decoder.feed(b"\x00\x01\x00\x00\x03\xe9")  # 1001 bytes announced, none sent
    assert err.value.code == "frame-too-long"


def test_voice_round_trip_and_terminator() -> None:
    out = VoicePacket(None, 1234, b"\x01\x02\x03", last=True)
    wire = encode_voice(out)
    assert wire[0] == 0x80  # type 4 (Opus) << 5, target 0
    assert wire[1:] == encode_varint(1234) + encode_varint(3 | 0x2000) + b"\x01\x02\x03"
    assert parse_voice(wire, from_server=False) == out
    relayed = VoicePacket(42, 7, b"opus" * 100, last=False)
    assert parse_voice(encode_voice(relayed)) == relayed


def test_voice_other_codecs_ignored_and_truncation_refused() -> None:
    assert parse_voice(b"\x20\x00\x00") is None  # type 1: UDP ping
    with pytest.raises(MumbleProtocolError) as err:
        parse_voice(b"\x80\x01\x02\x05ab")
    assert err.value.code == "truncated-opus"
    with pytest.raises(ValueError):
        VoicePacket(None, 0, b"\x00" * 0x2000, last=False)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(list(MsgType)))
def test_fuzz_only_documented_errors(data: bytes, kind: MsgType) -> None:
    for call in (
        lambda: FrameDecoder(64).feed(data),
        lambda: decode_message(kind, data) if kind in _DECODABLE else None,
        lambda: parse_voice(data),
        lambda: parse_voice(data, from_server=False),
    ):
        try:
            call()
        except MumbleProtocolError:
            pass


_DECODABLE = {k for k in MsgType if k not in (MsgType.UDPTunnel, MsgType.CryptSetup)}
