"""SDP for one audio stream (RFC 4566) and the offer/answer rules for it (RFC 3264), no I/O.

:func:`parse_sdp` reads a session description into a :class:`SessionDescription` (the
connection address, the first ``m=audio`` line's port, payload types and their ``rtpmap``,
``ptime`` and direction), raising :class:`SdpError` — and nothing else — on malformed input.
:func:`answer` picks the codec: the first payload type of the *offer's* order that we support
(RFC 3264 §6.1: the offerer's preference), plus ``telephone-event/8000`` (RFC 4733 §2.5.1) if
offered; no common audio codec is :class:`SdpError` with status 488 (RFC 3261 §13.3.1.3). The
answer's direction mirrors the offer's (§6.1: ``sendonly`` ↔ ``recvonly``); an offer with
``c=0.0.0.0`` or ``sendonly``/``inactive`` is a hold (RFC 3264 §8.4). :func:`build_sdp` writes
our offer or answer. Codecs we speak: PCMU (0), PCMA (8) at 8 kHz, Opus (``opus/48000/2``,
RFC 7587, dynamic payload type).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from adapters.errors import AdapterError
from adapters.rtp.config import PayloadFormat

__all__ = [
    "Codec",
    "Direction",
    "Negotiated",
    "SdpError",
    "SessionDescription",
    "answer",
    "build_sdp",
    "offer_formats",
    "parse_sdp",
]

MAX_SDP = 8192
MAX_FORMATS = 64
Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_MIRROR: dict[str, Direction] = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}
_STATIC = {0: ("pcmu", 8000), 8: ("pcma", 8000)}  # RFC 3551 table 4
Codec = Literal["pcmu", "pcma", "opus"]


class SdpError(AdapterError):
    """A malformed or unacceptable session description; ``status``: the SIP answer."""

    def __init__(self, code: str, status: int = 400) -> None:
        self.code = code
        self.status = status
        super().__init__(f"SDP: {code}")


@dataclass(frozen=True)
class SessionDescription:
    """The parts of an SDP body that one audio stream needs."""

    address: str
    port: int
    formats: tuple[int, ...]
    rtpmap: dict[int, tuple[str, int]] = field(default_factory=dict)  # pt → (name, clock)
    ptime: int | None = None
    direction: Direction = "sendrecv"

    @property
    def on_hold(self) -> bool:
        """The offerer puts us on hold (RFC 3264 §8.4; ``0.0.0.0`` is RFC 2543 style)."""
        held = self.address == "0.0.0.0"  # noqa: S104 - an address in SDP, not a bind
        return held or self.direction in ("sendonly", "inactive")

    def codec_of(self, pt: int) -> tuple[str, int] | None:
        """(lower-case encoding name, clock rate) of a payload type."""
        if pt in self.rtpmap:
            return self.rtpmap[pt]
        return _STATIC.get(pt)


@dataclass(frozen=True)
class Negotiated:
    """What offer and answer agreed: the audio payload, the DTMF payload type, the direction
    we use, where to send RTP and the ptime to send."""

    payload: PayloadFormat
    dtmf_pt: int | None
    direction: Direction
    remote: tuple[str, int]
    ptime: int = 20


def parse_sdp(body: bytes) -> SessionDescription:
    """Parse an SDP body (module docstring)."""
    if len(body) > MAX_SDP:
        raise SdpError("too_large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SdpError("not_utf8")
    session_c: str | None = None
    media_c: str | None = None
    audio: list[str] | None = None
    in_audio = False
    seen_audio = False
    rtpmap: dict[int, tuple[str, int]] = {}
    ptime: int | None = None
    direction: Direction = "sendrecv"
    session_dir: Direction = "sendrecv"
    lines = [ln for ln in text.replace("\r\n", "\n").split("\n") if ln]
    if not lines or not lines[0].startswith("v=0"):
        raise SdpError("no_version")
    for line in lines:
        kind, eq, value = line.partition("=")
        if not eq or len(kind) != 1:
            raise SdpError("bad_line")
        if kind == "m":
            in_audio = value.startswith("audio ") and not seen_audio
            if in_audio:
                audio, seen_audio = value.split(), True
        elif kind == "c":
            parts = value.split()
            if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
                raise SdpError("bad_connection")
            addr = parts[2].split("/")[0]
            if audio is None and not seen_audio:
                session_c = addr
            elif in_audio:
                media_c = addr
        elif kind == "a" and (in_audio or not seen_audio):
            name, _, arg = value.partition(":")
            if name in _DIRECTIONS:
                if in_audio:
                    direction = name  # type: ignore[assignment]
                else:
                    session_dir = name  # type: ignore[assignment]
                    direction = session_dir
            elif name == "rtpmap" and in_audio:
                pt_s, _, enc = arg.partition(" ")
                enc_name, _, rest = enc.partition("/")
                clock = rest.partition("/")[0]
                if not pt_s.isdigit() or not clock.isdigit() or not enc_name:
                    raise SdpError("bad_rtpmap")
                rtpmap[int(pt_s)] = (enc_name.lower(), int(clock))
            elif name == "ptime" and in_audio:
                if not arg.strip().isdigit() or not 10 <= int(arg) <= 200:
                    raise SdpError("bad_ptime")
                ptime = int(arg)
    if audio is None:
        raise SdpError("no_audio", 488)
    if len(audio) < 4 or not audio[1].isdigit() or int(audio[1]) > 65535:
        raise SdpError("bad_media")
    if not audio[2].startswith("RTP/AVP"):
        raise SdpError("unsupported_transport", 488)
    fmts = audio[3:]
    if len(fmts) > MAX_FORMATS or not all(f.isdigit() and int(f) <= 127 for f in fmts):
        raise SdpError("bad_formats")
    address = media_c or session_c
    if address is None:
        raise SdpError("no_connection")
    return SessionDescription(
        address, int(audio[1]), tuple(int(f) for f in fmts), rtpmap, ptime, direction
    )


def answer(offer: SessionDescription, supported: tuple[Codec, ...]) -> Negotiated:
    """Choose what to answer ``offer`` with (module docstring); ``supported``: our codecs."""
    if offer.port == 0:
        raise SdpError("stream_rejected", 488)
    payload: PayloadFormat | None = None
    dtmf: int | None = None
    for pt in offer.formats:
        codec = offer.codec_of(pt)
        if codec is None:
            continue
        name, clock = codec
        if name == "telephone-event" and clock == 8000 and dtmf is None:
            dtmf = pt
        elif payload is None and name in supported and name in ("pcmu", "pcma", "opus"):
            if (name == "opus") != (clock == 48000) or (name != "opus" and clock != 8000):
                continue
            if 72 <= pt <= 76:
                continue
            payload = PayloadFormat(name, pt, clock)  # type: ignore[arg-type]
    if payload is None:
        raise SdpError("no_common_codec", 488)
    ptime = offer.ptime if offer.ptime and offer.ptime % 20 == 0 else 20
    if payload.name == "opus":
        ptime = 20
    return Negotiated(payload, dtmf, _MIRROR[offer.direction], (offer.address, offer.port), ptime)


def offer_formats(supported: tuple[Codec, ...], opus_pt: int = 111) -> list[PayloadFormat]:
    """Our payload formats in order of preference, for an offer."""
    return [
        PayloadFormat.of(c) if c != "opus" else PayloadFormat("opus", opus_pt, 48000)
        for c in supported
    ]


def build_sdp(
    address: str,
    port: int,
    formats: list[PayloadFormat],
    *,
    session_id: int,
    version: int = 1,
    dtmf_pt: int | None = 101,
    direction: Direction = "sendrecv",
    ptime: int = 20,
) -> bytes:
    """One audio stream's description (offer or answer)."""
    pts = [f.pt for f in formats] + ([dtmf_pt] if dtmf_pt is not None else [])
    family = "IP6" if ":" in address else "IP4"
    lines = [
        "v=0",
        f"o=crossband {session_id} {version} IN {family} {address}",
        "s=crossband",
        f"c=IN {family} {address}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(map(str, pts))}",
    ]
    for f in formats:
        enc = {"pcmu": "PCMU/8000", "pcma": "PCMA/8000", "opus": "opus/48000/2"}[f.name]
        lines.append(f"a=rtpmap:{f.pt} {enc}")
    if dtmf_pt is not None:
        lines += [f"a=rtpmap:{dtmf_pt} telephone-event/8000", f"a=fmtp:{dtmf_pt} 0-16"]
    lines += [f"a=ptime:{ptime}", f"a={direction}"]
    return ("\r\n".join(lines) + "\r\n").encode()
