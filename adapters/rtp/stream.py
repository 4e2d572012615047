"""Sans-IO RTP streams of a radio-over-IP gateway: PCM + push-to-talk ↔ RTP datagrams.

:class:`RtpReceiver` is fed ``receive_datagram(data, addr, now)`` and ``handle_timer(now)``
and yields events from ``events_received()``:

* :class:`BurstStart` on the first packet of a transmission; the burst is then locked to
  that packet's SSRC — packets from any other SSRC are counted (``wrong_ssrc``) and dropped
  until it ends, so a flood from another source can neither cut in nor extend the burst;
* :class:`Audio` with exactly 20 ms of PCM at the endpoint rate (packets of any ptime are
  decoded, resampled and re-chunked; the tail is zero-padded when the burst ends);
* :class:`BurstEnd` when no packet came for ``hang_time`` seconds (``get_timer()`` says
  when), on a packet with the marker bit if ``end_on_marker`` (the gateway marks the *last*
  packet), or on a packet of ``end_signal_pt`` (e.g. 13, comfort noise, RFC 3389).

Malformed datagrams, RTCP, unknown payload types and stale or duplicate packets are counted
in ``stats`` and dropped: ``receive_datagram`` never raises. A timestamp gap of up to
``max_gap_ms`` (loss or silence suppression, RFC 3550 §5.1) is filled — with Opus FEC/PLC
or with silence — so the audio keeps its timing.

:class:`RtpSender` turns ``start_burst``/``send_audio``/``end_burst`` into datagrams from
``datagrams_to_send()``: random initial sequence number and timestamp (RFC 3550 §5.1),
sequence +1 per packet and timestamp + samples at the payload clock (48000 for Opus, RFC
7587 §4.1), both wrapping; the marker bit on the first packet of a burst (RFC 3551 §4.1); a
new SSRC per burst or one for the whole session (``ssrc_mode``); an RTCP SR + SDES CNAME
compound every ``rtcp_interval`` seconds while sending. Its ``now`` is wall-clock (Unix)
seconds, because it becomes the SR's NTP timestamp (§6.4.1).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from adapters.rtp.config import (
    PayloadFormat,
    RtpReceiverConfig,
    RtpSenderConfig,
    RtpTransportConfig,
)
from adapters.rtp.packet import (
    RtcpSenderReport,
    RtpPacket,
    RtpParseError,
    build_rtcp_sdes_cname,
    build_rtcp_sr,
    is_rtcp,
    ntp_timestamp,
    parse_rtp,
)
from bridge.audio import codec
from bridge.audio.codec import CodecError, OpusDecoder, OpusEncoder, Resampler, frame_samples

__all__ = [
    "PayloadFormat",
    "RtpTransportConfig",
    "RtpReceiverConfig",
    "RtpSenderConfig",
    "BurstStart",
    "Audio",
    "BurstEnd",
    "RtpEvent",
    "ReceiverStats",
    "RtpReceiver",
    "RtpSender",
]


@dataclass(frozen=True, slots=True)
class BurstStart:
    """A transmission began (key-up), from the SSRC the burst is now locked to."""

    ssrc: int


@dataclass(frozen=True, slots=True)
class Audio:
    """20 ms of 16-bit mono PCM at the endpoint rate."""

    pcm: bytes

    def __post_init__(self) -> None:
        if not self.pcm or len(self.pcm) % 2:
            raise ValueError("Audio carries whole 16-bit samples")


@dataclass(frozen=True, slots=True)
class BurstEnd:
    """The transmission ended (key-down) and why."""

    reason: Literal["hang_time", "marker", "end_signal"]

    def __post_init__(self) -> None:
        if self.reason not in ("hang_time", "marker", "end_signal"):
            raise ValueError(f"unknown burst end reason {self.reason!r}")


RtpEvent = BurstStart | Audio | BurstEnd


@dataclass(slots=True)
class ReceiverStats:
    """Counters of one receiver; ``stale`` = duplicate or behind, ``lost`` = sequence gaps."""

    datagrams: int = 0
    packets: int = 0
    malformed: int = 0
    rtcp: int = 0
    unknown_pt: int = 0
    wrong_ssrc: int = 0
    stale: int = 0
    lost: int = 0
    decode_errors: int = 0
    bursts: int = 0


class _Depayloader:
    """Payload → PCM at the endpoint rate, with loss filling, for one burst."""

    def __init__(self, fmt: PayloadFormat, rate: int) -> None:
        self.fmt = fmt
        self.rate = rate
        self._opus = OpusDecoder(rate) if fmt.name == "opus" else None
        pcm_rate = rate if fmt.name == "opus" else fmt.clock_rate
        self._resampler = Resampler(pcm_rate, rate)
        self._decode: Callable[[bytes], bytes] = {
            "pcmu": codec.ulaw_decode,
            "pcma": codec.alaw_decode,
            "l16": codec.l16_to_pcm,
            "opus": self._opus.decode if self._opus else codec.l16_to_pcm,
        }[fmt.name]

    def decode(self, payload: bytes) -> tuple[bytes, int]:
        """PCM at the endpoint rate and the packet's length in RTP clock ticks."""
        pcm = self._decode(payload)
        if self._opus is not None:
            return pcm, len(pcm) // 2 * self.fmt.clock_rate // self.rate
        return self._resampler.process(pcm), len(pcm) // 2

    def fill(self, ticks: int, next_payload: bytes) -> bytes:
        """Stand-in audio for ``ticks`` of missing stream before ``next_payload``."""
        if self._opus is None:
            return bytes(2 * (ticks * self.rate // self.fmt.clock_rate))
        frames = ticks // frame_samples(self.fmt.clock_rate)
        out = [self._opus.conceal() for _ in range(max(frames - 1, 0))]
        if frames:
            out.append(self._opus.decode_fec(next_payload))
        return b"".join(out)


class RtpReceiver:
    """One configured RTP input stream (see the module docstring)."""

    def __init__(self, config: RtpReceiverConfig) -> None:
        self.config = config
        self.stats = ReceiverStats()
        self._formats = {p.pt: p for p in config.payloads}
        self._events: list[RtpEvent] = []
        self._ssrc: int | None = None
        self._last_packet = 0.0
        self._next_seq = 0
        self._next_ts = 0
        self._depay: _Depayloader | None = None
        self._pending = b""
        self._frame_bytes = 2 * frame_samples(config.rate)
        if any(p.name == "opus" for p in config.payloads):
            OpusDecoder(config.rate)  # fail now (OpusUnavailableError), not on a packet

    def receive_datagram(self, data: bytes, addr: object, now: float) -> None:
        """Handle one UDP datagram that arrived at ``now`` (monotonic seconds)."""
        self.stats.datagrams += 1
        if is_rtcp(data):
            self.stats.rtcp += 1
            return
        try:
            packet = parse_rtp(data)
        except RtpParseError:
            self.stats.malformed += 1
            return
        self.stats.packets += 1
        if self._ssrc is not None and packet.ssrc != self._ssrc:
            self.stats.wrong_ssrc += 1
            return
        if packet.payload_type == self.config.end_signal_pt:
            if self._ssrc is not None:
                self._end("end_signal")
            return
        fmt = self._formats.get(packet.payload_type)
        if fmt is None:
            self.stats.unknown_pt += 1
            return
        if self._ssrc is None:
            self._start(packet, fmt)
        elif self._depay is None or self._depay.fmt != fmt:  # the gateway switched codec
            self._depay = _Depayloader(fmt, self.config.rate)
        elif (packet.sequence_number - self._next_seq) & 0xFFFF >= 0x8000:
            self.stats.stale += 1  # duplicate or reordered behind what was played
            return
        self._last_packet = now
        self._play(packet)
        if self.config.end_on_marker and packet.marker and self._ssrc is not None:
            self._end("marker")

    def _start(self, packet: RtpPacket, fmt: PayloadFormat) -> None:
        self._ssrc = packet.ssrc
        self._depay = _Depayloader(fmt, self.config.rate)
        self._next_seq = packet.sequence_number
        self._next_ts = packet.timestamp
        self._pending = b""
        self.stats.bursts += 1
        self._events.append(BurstStart(packet.ssrc))

    def _play(self, packet: RtpPacket) -> None:
        assert self._depay is not None
        self.stats.lost += (packet.sequence_number - self._next_seq) & 0xFFFF
        gap = (packet.timestamp - self._next_ts) & 0xFFFFFFFF
        try:
            if 0 < gap <= self.config.max_gap_ms * self._depay.fmt.clock_rate // 1000:
                self._pending += self._depay.fill(gap, packet.payload)
            pcm, ticks = self._depay.decode(packet.payload)
        except CodecError:
            self.stats.decode_errors += 1
            return
        finally:
            self._next_seq = (packet.sequence_number + 1) & 0xFFFF
        self._next_ts = (packet.timestamp + ticks) & 0xFFFFFFFF
        self._pending += pcm
        size = self._frame_bytes
        whole = len(self._pending) - len(self._pending) % size
        for i in range(0, whole, size):
            self._events.append(Audio(self._pending[i : i + size]))
        self._pending = self._pending[whole:]

    def _end(self, reason: Literal["hang_time", "marker", "end_signal"]) -> None:
        if self._pending:
            self._events.append(Audio(self._pending.ljust(self._frame_bytes, b"\x00")))
        self._pending = b""
        self._ssrc = None
        self._depay = None
        self._events.append(BurstEnd(reason))

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next be called (the hang-time deadline)."""
        return self._last_packet + self.config.hang_time if self._ssrc is not None else None

    def handle_timer(self, now: float) -> None:
        timer = self.get_timer()
        if timer is not None and now >= timer:
            self._end("hang_time")

    def events_received(self) -> list[RtpEvent]:
        """Events since the last call, oldest first."""
        events, self._events = self._events, []
        return events


Outgoing = tuple[Literal["rtp", "rtcp"], bytes]


@dataclass(slots=True)
class _SenderState:
    ssrc: int
    seq: int
    ts: int
    packets: int = 0
    octets: int = 0
    ts_time: float = 0.0  # wall-clock time that ``ts`` (the next packet's) stands for
    next_rtcp: float = 0.0
    marker: bool = True
    frames: list[bytes] = field(default_factory=list)


class RtpSender:
    """One RTP output stream (see the module docstring)."""

    def __init__(
        self,
        config: RtpSenderConfig,
        *,
        rng: random.Random | None = None,
        initial_seq: int | None = None,
        initial_timestamp: int | None = None,
    ) -> None:
        self.config = config
        self._rng = rng or random.SystemRandom()
        self._initial = (initial_seq, initial_timestamp)
        self._state: _SenderState | None = None
        self._active = False
        self._out: list[Outgoing] = []
        fmt = config.payload
        self._frame_bytes = 2 * frame_samples(config.rate)
        self._ticks_per_frame = frame_samples(fmt.clock_rate)
        self._opus = OpusEncoder(config.rate, config.opus_bitrate) if fmt.name == "opus" else None
        self._resampler = Resampler(config.rate, fmt.clock_rate) if not self._opus else None
        self._encode: Callable[[bytes], bytes] = {
            "pcmu": codec.ulaw_encode,
            "pcma": codec.alaw_encode,
            "l16": codec.pcm_to_l16,
            "opus": self._opus.encode if self._opus else codec.pcm_to_l16,
        }[fmt.name]

    @property
    def ssrc(self) -> int | None:
        return self._state.ssrc if self._state else None

    def _new_state(self, now: float) -> _SenderState:
        seq, ts = self._initial
        self._initial = (None, None)
        return _SenderState(
            ssrc=self._rng.getrandbits(32),
            seq=self._rng.getrandbits(16) if seq is None else seq,
            ts=self._rng.getrandbits(32) if ts is None else ts,
            ts_time=now,
            next_rtcp=now,
        )

    def start_burst(self, now: float) -> None:
        """Key up: the next packet carries the marker bit (RFC 3551 §4.1)."""
        if self._active:
            self.end_burst(now)
        st = self._state
        if st is None or self.config.ssrc_mode == "per-burst":
            st = self._state = self._new_state(now)
        else:  # the timestamp kept running through the silence (RFC 3550 §5.1)
            st.ts = (st.ts + self._ticks_since(st, now)) & 0xFFFFFFFF
            st.ts_time = now
        st.marker = True
        self._active = True

    def send_audio(self, pcm: bytes, now: float) -> None:
        """Queue one 20 ms PCM frame at the configured input rate."""
        if not self._active or self._state is None:
            raise ValueError("send_audio outside a burst: call start_burst first")
        if len(pcm) != self._frame_bytes:
            raise ValueError("send_audio takes one 20 ms frame")
        st = self._state
        if self._resampler is not None:
            pcm = self._resampler.process(pcm)
        st.frames.append(pcm)
        if len(st.frames) * 20 >= self.config.ptime_ms:
            self._flush(now)
        self._maybe_rtcp(now)

    def end_burst(self, now: float) -> None:
        """Key down: send what is left of a partial packet."""
        if self._state is not None and self._state.frames:
            self._flush(now)
        self._active = False

    def _flush(self, now: float) -> None:
        st = self._state
        assert st is not None
        payload = self._encode(b"".join(st.frames))
        ticks = self._ticks_per_frame * len(st.frames)
        st.frames.clear()
        packet = RtpPacket(self.config.payload.pt, st.seq, st.ts, st.ssrc, payload, st.marker)
        self._out.append(("rtp", packet.serialize()))
        st.marker = False
        st.seq = (st.seq + 1) & 0xFFFF
        st.ts = (st.ts + ticks) & 0xFFFFFFFF
        st.packets += 1
        st.octets += len(payload)
        st.ts_time = now + ticks / self.config.payload.clock_rate

    def _ticks_since(self, st: _SenderState, now: float) -> int:
        return round(max(now - st.ts_time, 0.0) * self.config.payload.clock_rate)

    def _maybe_rtcp(self, now: float) -> None:
        st, interval = self._state, self.config.rtcp_interval
        if st is None or interval is None or st.packets == 0 or now < st.next_rtcp:
            return
        st.next_rtcp = now + interval
        rtp_now = (st.ts + self._ticks_since(st, now)) & 0xFFFFFFFF  # same instant as NTP
        report = RtcpSenderReport(st.ssrc, ntp_timestamp(now), rtp_now, st.packets, st.octets)
        sdes = build_rtcp_sdes_cname(st.ssrc, self.config.cname)
        self._out.append(("rtcp", build_rtcp_sr(report) + sdes))

    def datagrams_to_send(self) -> list[Outgoing]:
        """RTP and RTCP datagrams queued since the last call, in order."""
        out, self._out = self._out, []
        return out
