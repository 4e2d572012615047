"""adapters.rtp.packet: RFC 3550 §5.1 RTP header, §6.4.1 sender report, parser fuzzing."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.errors import AdapterError
from adapters.rtp.packet import (
    ReportBlock,
    RtcpSenderReport,
    RtpExtension,
    RtpPacket,
    RtpParseError,
    build_rtcp_sdes_cname,
    build_rtcp_sr,
    is_rtcp,
    ntp_timestamp,
    parse_rtcp_sr,
    parse_rtp,
)


def test_minimal_header_bytes() -> None:
    # RFC 3550 §5.1: V=2 P=0 X=0 CC=0 | M=1 PT=0 | seq | ts | ssrc
    p = RtpPacket(0, 0x1234, 0xDEADBEEF, 0x01020304, b"\xff" * 160, marker=True)
    wire = p.serialize()
    assert wire[:12] == bytes.fromhex("80 80 1234 deadbeef 01020304")
    assert len(wire) == 172
    assert parse_rtp(wire) == p


def test_all_fields_round_trip() -> None:
    p = RtpPacket(
        payload_type=111,
        sequence_number=65535,
        timestamp=2**32 - 1,
        ssrc=2**32 - 1,
        payload=b"opus",
        marker=False,
        csrc=(1, 2, 0xFFFFFFFF),
        extension=RtpExtension(0xBEDE, b"\x10\xaa\x00\x00"),
        padding=3,
    )
    wire = p.serialize()
    assert wire[0] == 0x80 | 0x20 | 0x10 | 3  # V=2, P, X, CC=3
    assert wire[1] == 111
    assert wire[12:24] == struct.pack("!III", 1, 2, 0xFFFFFFFF)
    assert wire[24:28] == bytes.fromhex("bede 0001")  # profile, length in 32-bit words
    assert wire[-3:] == b"\x00\x00\x03"  # §5.1: last padding octet counts the padding
    assert parse_rtp(wire) == p


def test_parse_rejects_malformed_with_rtp_parse_error_only() -> None:
    good = RtpPacket(8, 1, 2, 3, b"ab").serialize()
    cases = [
        b"",
        good[:11],  # short
        bytes([0x40]) + good[1:],  # version 1
        bytes([0x82]) + good[1:],  # two CSRCs announced, not present
        bytes([0x90]) + good[1:12],  # extension announced, not present
        bytes([0x90]) + good[1:12] + b"\x00\x00\x00\x05",  # extension longer than packet
        bytes([0xA0]) + good[1:12] + b"\x00",  # padding count 0
        bytes([0xA0]) + good[1:12] + b"ab\x09",  # padding longer than payload
    ]
    for data in cases:
        with pytest.raises(RtpParseError):
            parse_rtp(data)
    assert issubclass(RtpParseError, AdapterError)


def test_padding_may_consume_the_whole_payload() -> None:
    wire = bytes([0xA0]) + RtpPacket(8, 1, 2, 3).serialize()[1:] + b"\x00\x02"
    assert parse_rtp(wire).payload == b"" and parse_rtp(wire).padding == 2


def test_construction_validates() -> None:
    bad: list[dict[str, Any]] = [
        dict(payload_type=128),
        dict(sequence_number=65536),
        dict(timestamp=-1),
        dict(ssrc=2**32),
        dict(csrc=tuple(range(16))),
        dict(padding=256),
    ]
    for override in bad:
        fields: dict[str, Any] = dict(payload_type=0, sequence_number=0, timestamp=0, ssrc=0)
        with pytest.raises(ValueError):
            RtpPacket(**(fields | override))
    with pytest.raises(ValueError):
        RtpExtension(1, b"abc")


def test_rtcp_demultiplexing() -> None:
    # RFC 5761 §4: second octet 192..223 is RTCP (SR=200), RTP PT 0/8/111 is not.
    assert is_rtcp(bytes([0x80, 200]))
    assert not is_rtcp(RtpPacket(0, 1, 2, 3).serialize())
    assert not is_rtcp(RtpPacket(111, 1, 2, 3, marker=True).serialize())


def test_sender_report_layout_and_round_trip() -> None:
    ntp = ntp_timestamp(1_700_000_000.5)
    assert ntp == ((1_700_000_000 + 2_208_988_800) << 32) | (1 << 31)
    block = ReportBlock(ssrc=9, fraction_lost=25, cumulative_lost=-3, highest_seq=70000)
    sr = RtcpSenderReport(0xCAFEBABE, ntp, 123456, 10, 1600, (block,))
    wire = build_rtcp_sr(sr)
    # RFC 3550 §6.4.1: V=2, RC=1, PT=200, length = 52 bytes / 4 - 1 = 12
    assert wire[:4] == bytes([0x81, 200, 0, 12])
    assert len(wire) == 28 + 24
    compound = wire + build_rtcp_sdes_cname(0xCAFEBABE, "crossband")
    assert parse_rtcp_sr(compound) == sr


def test_sdes_cname_is_padded_to_32_bits() -> None:
    # RFC 3550 §6.5: header (SC=1, PT=202, length 3), SSRC, CNAME=1, len, text, null, pad
    sdes = build_rtcp_sdes_cname(1, "abc")
    assert sdes == bytes([0x81, 202, 0, 3, 0, 0, 0, 1, 1, 3]) + b"abc" + b"\x00" * 3
    with pytest.raises(ValueError):
        build_rtcp_sdes_cname(1, "")


def test_parse_rtcp_sr_rejects_malformed() -> None:
    good = build_rtcp_sr(RtcpSenderReport(1, 2, 3, 4, 5))
    for data in [b"", good[:27], good + b"\x80", bytes([0x80, 201]) + good[2:], good[:-4]]:
        with pytest.raises(RtpParseError):
            parse_rtcp_sr(data)


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=120))
def test_fuzz_parse_rtp_raises_only_rtp_parse_error(data: bytes) -> None:
    try:
        packet = parse_rtp(data)
    except RtpParseError:
        return
    assert parse_rtp(packet.serialize()) == packet


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=12, max_size=60).map(lambda b: bytes([0x80 | (b[0] & 0x3F)]) + b[1:]))
def test_fuzz_version_2_headers(data: bytes) -> None:
    try:
        parse_rtp(data)
    except RtpParseError:
        pass


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=120))
def test_fuzz_parse_rtcp_sr_raises_only_rtp_parse_error(data: bytes) -> None:
    try:
        parse_rtcp_sr(data)
    except RtpParseError:
        pass
