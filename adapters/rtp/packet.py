"""RTP and RTCP wire formats (RFC 3550): parse and build, no I/O.

RTP fixed header, RFC 3550 §5.1::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |V=2|P|X|  CC   |M|     PT      |       sequence number         |
    |                           timestamp                           |
    |           synchronization source (SSRC) identifier            |
    |            contributing source (CSRC) identifiers  (CC × 32)  |
    |   profile-defined ext. id     |  ext. length (32-bit words)   |  (if X, §5.3.1)
    |                        payload … | padding … | pad count      |  (if P)

:func:`parse_rtp` raises :class:`RtpParseError` — and nothing else — on any malformed
input: it is the one documented failure of the parser (the fuzz test holds it to that).
Building an invalid :class:`RtpPacket` raises ``ValueError``: that is a local bug.

RTCP: :func:`build_rtcp_sr` makes a sender report (§6.4.1), :func:`build_rtcp_sdes_cname`
the SDES CNAME item every compound packet carries (§6.1, §6.5.1), and
:func:`parse_rtcp_sr` reads the sender report at the head of a compound packet.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from adapters.errors import AdapterError

__all__ = [
    "RtpParseError",
    "RtpExtension",
    "RtpPacket",
    "parse_rtp",
    "is_rtcp",
    "ReportBlock",
    "RtcpSenderReport",
    "ntp_timestamp",
    "build_rtcp_sr",
    "build_rtcp_sdes_cname",
    "parse_rtcp_sr",
]

RTP_VERSION = 2
RTCP_SR = 200
RTCP_SDES = 202
_HEADER = struct.Struct("!BBHII")
_NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01 (RFC 868)
_U32 = 0xFFFFFFFF


class RtpParseError(AdapterError):
    """A datagram is not a well-formed RTP or RTCP packet."""


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """A header extension (RFC 3550 §5.3.1): 16-bit profile field and 32-bit-aligned data."""

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.profile <= 0xFFFF:
            raise ValueError("extension profile is 16 bits")
        if len(self.data) % 4 or len(self.data) > 4 * 0xFFFF:
            raise ValueError("extension data is a whole number of 32-bit words (≤ 65535)")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet (version 2). ``padding`` is the number of padding octets (0 = none)."""

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 127:
            raise ValueError("payload type is 7 bits")
        if not 0 <= self.sequence_number <= 0xFFFF:
            raise ValueError("sequence number is 16 bits")
        if not 0 <= self.timestamp <= _U32 or not 0 <= self.ssrc <= _U32:
            raise ValueError("timestamp and SSRC are 32 bits")
        if len(self.csrc) > 15 or not all(0 <= c <= _U32 for c in self.csrc):
            raise ValueError("at most 15 CSRCs of 32 bits")
        if not 0 <= self.padding <= 255:
            raise ValueError("padding is 0..255 octets")

    def serialize(self) -> bytes:
        """The packet on the wire."""
        first = (
            (RTP_VERSION << 6)
            | (0x20 if self.padding else 0)
            | (0x10 if self.extension else 0)
            | len(self.csrc)
        )
        second = (0x80 if self.marker else 0) | self.payload_type
        parts = [_HEADER.pack(first, second, self.sequence_number, self.timestamp, self.ssrc)]
        parts.extend(struct.pack("!I", c) for c in self.csrc)
        if self.extension is not None:
            ext = self.extension
            parts.append(struct.pack("!HH", ext.profile, len(ext.data) // 4) + ext.data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes([self.padding]))
        return b"".join(parts)


def is_rtcp(data: bytes) -> bool:
    """True when a datagram on a shared port is RTCP, not RTP (RFC 5761 §4: PT 192–223)."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse one RTP packet; raise :class:`RtpParseError` on anything malformed."""
    data = bytes(data)
    if len(data) < _HEADER.size:
        raise RtpParseError("shorter than the RTP fixed header")
    first, second, seq, ts, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != RTP_VERSION:
        raise RtpParseError("not RTP version 2")
    pos = _HEADER.size
    count = first & 0x0F
    if len(data) < pos + 4 * count:
        raise RtpParseError("truncated CSRC list")
    csrc = struct.unpack_from(f"!{count}I", data, pos)
    pos += 4 * count
    extension = None
    if first & 0x10:
        if len(data) < pos + 4:
            raise RtpParseError("truncated header extension")
        profile, words = struct.unpack_from("!HH", data, pos)
        pos += 4
        if len(data) < pos + 4 * words:
            raise RtpParseError("truncated header extension")
        extension = RtpExtension(profile, data[pos : pos + 4 * words])
        pos += 4 * words
    end = len(data)
    padding = 0
    if first & 0x20:
        padding = data[-1]
        if padding == 0 or padding > end - pos:
            raise RtpParseError("bad padding count")
        end -= padding
    return RtpPacket(
        payload_type=second & 0x7F,
        sequence_number=seq,
        timestamp=ts,
        ssrc=ssrc,
        payload=data[pos:end],
        marker=bool(second & 0x80),
        csrc=tuple(csrc),
        extension=extension,
        padding=padding,
    )


# --- RTCP --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """A reception report block (RFC 3550 §6.4.1)."""

    ssrc: int
    fraction_lost: int = 0
    cumulative_lost: int = 0
    highest_seq: int = 0
    jitter: int = 0
    last_sr: int = 0
    delay_since_last_sr: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.fraction_lost <= 255:
            raise ValueError("fraction lost is 8 bits")
        if not -(1 << 23) <= self.cumulative_lost < (1 << 23):
            raise ValueError("cumulative lost is a signed 24-bit value")
        for v in (self.ssrc, self.highest_seq, self.jitter, self.last_sr):
            if not 0 <= v <= _U32:
                raise ValueError("report block fields are 32 bits")
        if not 0 <= self.delay_since_last_sr <= _U32:
            raise ValueError("report block fields are 32 bits")

    def serialize(self) -> bytes:
        lost = (self.fraction_lost << 24) | (self.cumulative_lost & 0xFFFFFF)
        return struct.pack(
            "!IIIIII",
            self.ssrc,
            lost,
            self.highest_seq,
            self.jitter,
            self.last_sr,
            self.delay_since_last_sr,
        )


@dataclass(frozen=True, slots=True)
class RtcpSenderReport:
    """The sender-info part of an SR (RFC 3550 §6.4.1) and its report blocks."""

    ssrc: int
    ntp_timestamp: int  # 64-bit NTP format: seconds since 1900 << 32 | fraction
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()


def ntp_timestamp(unix_time: float) -> int:
    """Unix seconds → 64-bit NTP timestamp (RFC 3550 §4)."""
    seconds = int(unix_time) + _NTP_EPOCH_OFFSET
    fraction = int((unix_time - int(unix_time)) * (1 << 32))
    return ((seconds & _U32) << 32) | (fraction & _U32)


def _rtcp_header(count: int, packet_type: int, body_len: int) -> bytes:
    # length field: size in 32-bit words minus one (§6.4.1)
    return struct.pack("!BBH", (RTP_VERSION << 6) | count, packet_type, (4 + body_len) // 4 - 1)


def build_rtcp_sr(report: RtcpSenderReport) -> bytes:
    """One SR packet (PT=200), RFC 3550 §6.4.1."""
    if len(report.reports) > 31:
        raise ValueError("at most 31 report blocks")
    body = struct.pack(
        "!IQIII",
        report.ssrc,
        report.ntp_timestamp,
        report.rtp_timestamp & _U32,
        report.packet_count & _U32,
        report.octet_count & _U32,
    ) + b"".join(b.serialize() for b in report.reports)
    return _rtcp_header(len(report.reports), RTCP_SR, len(body)) + body


def build_rtcp_sdes_cname(ssrc: int, cname: str) -> bytes:
    """An SDES packet (PT=202) with one chunk holding a CNAME item, RFC 3550 §6.5."""
    name = cname.encode()
    if not 0 < len(name) <= 255:
        raise ValueError("CNAME is 1..255 octets")
    chunk = struct.pack("!IBB", ssrc, 1, len(name)) + name + b"\x00"
    chunk += bytes(-len(chunk) % 4)  # items end with a null octet, chunk padded to 32 bits
    return _rtcp_header(1, RTCP_SDES, len(chunk)) + chunk


def parse_rtcp_sr(data: bytes) -> RtcpSenderReport:
    """Read the SR at the head of a compound RTCP packet (RFC 3550 §6.1, §6.4.1)."""
    data = bytes(data)
    pos = 0
    while pos < len(data):  # the compound must be a whole number of well-formed packets
        if len(data) - pos < 4 or data[pos] >> 6 != RTP_VERSION:
            raise RtpParseError("malformed RTCP packet")
        pos += 4 * (struct.unpack_from("!H", data, pos + 2)[0] + 1)
    if pos != len(data) or len(data) < 28 or data[1] != RTCP_SR:
        raise RtpParseError("not an RTCP sender report")
    count = data[0] & 0x1F
    length = 4 * (struct.unpack_from("!H", data, 2)[0] + 1)
    if length < 28 + 24 * count:
        raise RtpParseError("truncated sender report")
    ssrc, ntp, rtp_ts, packets, octets = struct.unpack_from("!IQIII", data, 4)
    reports = []
    for i in range(count):
        fields = struct.unpack_from("!IIIIII", data, 28 + 24 * i)
        lost = fields[1] & 0xFFFFFF
        reports.append(
            ReportBlock(
                ssrc=fields[0],
                fraction_lost=fields[1] >> 24,
                cumulative_lost=lost - (1 << 24) if lost & 0x800000 else lost,
                highest_seq=fields[2],
                jitter=fields[3],
                last_sr=fields[4],
                delay_since_last_sr=fields[5],
            )
        )
    return RtcpSenderReport(ssrc, ntp, rtp_ts, packets, octets, tuple(reports))
