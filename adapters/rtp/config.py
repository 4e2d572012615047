"""Configuration of RTP streams: payload formats, network placement, receiver and sender policy.

All are frozen dataclasses that validate themselves when built (a bad value is a
``ValueError`` at load time, not a surprise on the wire).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "PayloadName",
    "PayloadFormat",
    "RtpTransportConfig",
    "RtpReceiverConfig",
    "RtpSenderConfig",
]

PayloadName = Literal["pcmu", "pcma", "l16", "opus"]
_FIXED_CLOCK = {"pcmu": 8000, "pcma": 8000, "opus": 48000}  # RFC 3551 §4.5.14, RFC 7587 §4.1
_STATIC_PT = {"pcmu": 0, "pcma": 8}  # RFC 3551 table 4


@dataclass(frozen=True, slots=True)
class PayloadFormat:
    """One RTP payload format: codec name, payload type and RTP clock rate."""

    name: PayloadName
    pt: int
    clock_rate: int

    def __post_init__(self) -> None:
        if self.name not in ("pcmu", "pcma", "l16", "opus"):
            raise ValueError(f"unsupported payload {self.name!r}")
        if not 0 <= self.pt <= 127 or 72 <= self.pt <= 76:  # 72–76 clash with RTCP (RFC 5761)
            raise ValueError("payload type must be 0..127 and not 72..76")
        fixed = _FIXED_CLOCK.get(self.name)
        if fixed is not None and self.clock_rate != fixed:
            raise ValueError(f"{self.name} has an RTP clock of {fixed} Hz")
        if self.name == "l16" and self.clock_rate not in (8000, 16000, 48000):
            raise ValueError("L16 clock rate must be 8000, 16000 or 48000")

    @classmethod
    def of(cls, name: PayloadName, pt: int | None = None, clock_rate: int = 16000) -> PayloadFormat:
        """PCMU/PCMA on their static types; L16 (at ``clock_rate``) and Opus need ``pt``."""
        if pt is None:
            if name not in _STATIC_PT:
                raise ValueError(f"{name} needs a dynamic payload type (96..127)")
            pt = _STATIC_PT[name]
        return cls(name, pt, _FIXED_CLOCK.get(name, clock_rate))


@dataclass(frozen=True, slots=True)
class RtpTransportConfig:
    """Where a stream lives on the network (used by the driver, not by the sans-IO core).

    Receiver: bind ``host``:``port``, or join ``group`` on ``interface``. Sender: send to
    ``host``:``port``, or to ``group`` out of ``interface`` with ``ttl``. Both default to
    loopback: exposing a stream on a real interface is an explicit choice. RTCP uses
    ``port + 1`` (RFC 3550 §11).
    """

    port: int
    host: str = "127.0.0.1"
    group: str | None = None
    interface: str = "127.0.0.1"
    ttl: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65534:
            raise ValueError("port must leave room for RTCP on port + 1")
        if self.group is not None:
            first = int(self.group.split(".")[0]) if self.group.count(".") == 3 else 0
            if not 224 <= first <= 239:
                raise ValueError("group must be an IPv4 multicast address (224.0.0.0/4)")
        if not 0 <= self.ttl <= 255:
            raise ValueError("ttl is 0..255")


@dataclass(frozen=True, slots=True)
class RtpReceiverConfig:
    """An input stream: accepted payload formats, endpoint PCM rate and burst detection."""

    payloads: tuple[PayloadFormat, ...]
    rate: int = 8000
    hang_time: float = 0.5
    end_on_marker: bool = False
    end_signal_pt: int | None = None
    max_gap_ms: int = 300  # more than one lost 128 ms packet (ffmpeg's default ptime)
    resample_lead: bool = False  # resampled audio ~12 ms late, not 20 (codec.py)

    def __post_init__(self) -> None:
        if not self.payloads or len({p.pt for p in self.payloads}) != len(self.payloads):
            raise ValueError("payload formats need distinct payload types")
        if self.rate not in (8000, 16000, 48000):
            raise ValueError("endpoint rate must be 8000, 16000 or 48000")
        if self.hang_time <= 0:
            raise ValueError("hang_time must be positive")
        if not 20 <= self.max_gap_ms <= 2000:
            raise ValueError("max_gap_ms must be 20..2000")
        if self.end_signal_pt in {p.pt for p in self.payloads}:
            raise ValueError("end_signal_pt must differ from the audio payload types")


@dataclass(frozen=True, slots=True)
class RtpSenderConfig:
    """An output stream: payload format, input PCM rate and SSRC/RTCP policy."""

    payload: PayloadFormat
    rate: int = 8000
    ssrc_mode: Literal["per-burst", "continuous"] = "continuous"  # what receivers expect
    ptime_ms: int = 20
    rtcp_interval: float | None = 5.0
    cname: str = "crossband"
    opus_bitrate: int = 24000
    resample_lead: bool = False  # resampled audio ~12 ms late, not 20 (codec.py)

    def __post_init__(self) -> None:
        if self.rate not in (8000, 16000, 48000):
            raise ValueError("input rate must be 8000, 16000 or 48000")
        if self.ssrc_mode not in ("per-burst", "continuous"):
            raise ValueError("ssrc_mode is 'per-burst' or 'continuous'")
        if self.ptime_ms <= 0 or self.ptime_ms % 20 or self.ptime_ms > 120:
            raise ValueError("ptime must be a multiple of 20 ms up to 120")
        if self.payload.name == "opus" and self.ptime_ms != 20:
            raise ValueError("Opus is sent one 20 ms frame per packet")
