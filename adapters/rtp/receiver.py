"""Sans-IO RTP input stream of a radio-over-IP gateway: datagrams → push-to-talk + PCM.

:class:`RtpReceiver` is fed ``receive_datagram(data, addr, now)`` and ``handle_timer(now)``
and yields events from ``events_received()``:

* :class:`BurstStart` on the first packet of a transmission; the burst is then locked to
  that packet's SSRC — packets from any other SSRC are counted (``wrong_ssrc``) and dropped
  while it sends, so a flood from another source can neither cut in nor extend the burst.
  Once the locked SSRC has been silent for longer than its last packet's duration plus
  ``HANDOFF_MARGIN`` (it stopped talking and is only in hang time), a packet of another SSRC
  *takes over*: the first burst ends (``"handoff"``) and the new one starts with that packet,
  so a second talker keying up during the first one's hang time loses nothing;
* :class:`Audio` with exactly 20 ms of PCM at the endpoint rate (packets of any ptime are
  decoded, resampled and re-chunked; the tail is zero-padded when the burst ends);
* :class:`BurstEnd` when no packet came for ``hang_time`` seconds (``get_timer()`` says
  when) — or, if longer, for the burst's longest packet + ``max_gap_ms`` + its transit
  spread + ``GAP_MARGIN``: a gap the receiver would fill never ends the burst (ffmpeg's
  default packetization sends a 256 ms block as a 181.5 and a 74.5 ms packet back to back;
  losing a block leaves 512 ms between arrivals) — on a packet with the marker
  bit if ``end_on_marker`` (the gateway marks the *last* packet), or on a packet of
  ``end_signal_pt`` (e.g. 13, comfort noise, RFC 3389).

Malformed datagrams, RTCP, unknown payload types and stale or duplicate packets are counted
in ``stats`` and dropped: ``receive_datagram`` never raises. A timestamp gap of up to
``max_gap_ms`` (loss or silence suppression, RFC 3550 §5.1) is filled — with Opus FEC/PLC,
or for G.711/L16 with :class:`~adapters.codecs.plc.Concealer` (G.711 Appendix I style) — so
the audio keeps its timing; a longer jump is counted (``jumps``) and not filled. These events
come as soon as the packets do; :mod:`adapters.rtp.retimer` puts the frames on an even
20 ms clock, with a margin it takes from ``last_jitter``: how much the arrival times of the
last burst's packets, less their RTP timestamps, spread (clumping by the sender's
packetization does not count; a timestamp jump, or a packet that breaks the spread by more
than ``TRANSIT_RESET`` — a sender whose timestamps stood still through a pause — starts a
new reference).

**The tail.** The last packet may leave less than a frame over, and the resampler holds back
its delay (up to 11 ms, :mod:`adapters.rtp.codec`). A burst that ends with a packet (marker,
end signal) flushes both into a last, zero-padded frame. A burst that ends by hang time drops
them (``tails_dropped``): they would go out ``hang_time`` after the rest, and the far end,
having already played the burst out, would hear them as a burst of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from adapters.codecs.opus import OpusDecoder
from adapters.codecs.pcm import CodecError, frame_samples, l16_to_pcm
from adapters.codecs.plc import Concealer
from adapters.rtp.codec import Resampler, alaw_decode, ulaw_decode
from adapters.rtp.config import PayloadFormat, RtpReceiverConfig
from adapters.rtp.packet import RtpPacket, RtpParseError, is_rtcp, parse_rtp

__all__ = ["Audio", "BurstEnd", "BurstStart", "ReceiverStats", "RtpEvent", "RtpReceiver"]


EndReason = Literal["hang_time", "marker", "end_signal", "handoff"]
HANDOFF_MARGIN = 0.04  # seconds of silence, beyond a packet's duration, before a take-over
TRANSIT_RESET = 0.2  # seconds: a change of transit time this large is no jitter
GAP_MARGIN = 0.04  # seconds of arrival jitter a fillable gap may add before the hang ends


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

    reason: EndReason

    def __post_init__(self) -> None:
        if self.reason not in ("hang_time", "marker", "end_signal", "handoff"):
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
    tails_dropped: int = 0  # bursts that ended by hang time with a partial frame held back
    concealed: int = 0  # RTP clock ticks of lost stream filled (FEC, PLC)
    jumps: int = 0  # timestamp jumps longer than max_gap_ms, not filled
    handoffs: int = 0  # bursts taken over by another SSRC during hang time


class _Depayloader:
    """Payload → PCM at the endpoint rate, with loss filling, for one burst."""

    def __init__(self, fmt: PayloadFormat, rate: int, lead: bool = False) -> None:
        self.fmt = fmt
        self.rate = rate
        self._opus = OpusDecoder(rate) if fmt.name == "opus" else None  # decodes at ``rate``
        self._resampler = (
            Resampler(fmt.clock_rate, rate, low_delay=True, lead=lead)
            if self._opus is None
            else None
        )
        self._plc = Concealer(fmt.clock_rate) if self._opus is None else None
        self._decode: Callable[[bytes], bytes] = {
            "pcmu": ulaw_decode,
            "pcma": alaw_decode,
            "l16": l16_to_pcm,
            "opus": self._opus.decode if self._opus else l16_to_pcm,
        }[fmt.name]

    def decode(self, payload: bytes) -> tuple[bytes, int]:
        """PCM at the endpoint rate and the packet's length in RTP clock ticks."""
        pcm = self._decode(payload)
        if self._resampler is None or self._plc is None:
            return pcm, len(pcm) // 2 * self.fmt.clock_rate // self.rate
        return self._resampler.process(self._plc.audio(pcm)), len(pcm) // 2

    def fill(self, ticks: int, next_payload: bytes) -> bytes:
        """Stand-in audio for ``ticks`` of missing stream before ``next_payload``."""
        if self._resampler is not None and self._plc is not None:  # G.711/L16: concealment
            return self._resampler.process(self._plc.conceal(ticks))
        assert self._opus is not None
        frames = ticks // frame_samples(self.fmt.clock_rate)
        out = [self._opus.conceal() for _ in range(max(frames - 1, 0))]
        if frames:
            out.append(self._opus.decode_fec(next_payload))
        return b"".join(out)

    def flush(self) -> bytes:
        """What the resampler still holds at the end of the burst."""
        return self._resampler.flush() if self._resampler is not None else b""


class RtpReceiver:
    """One configured RTP input stream (see the module docstring)."""

    def __init__(self, config: RtpReceiverConfig) -> None:
        self.config = config
        self.stats = ReceiverStats()
        self._formats = {p.pt: p for p in config.payloads}
        self._events: list[RtpEvent] = []
        self._ssrc: int | None = None
        self._last_packet = 0.0
        self._last_duration = 0.0  # seconds of audio in the last packet
        self._longest = 0.0  # seconds of audio in this burst's longest packet
        self._next_seq = 0
        self._next_ts = 0
        self._depay: _Depayloader | None = None
        self._pending = b""
        self._frame_bytes = 2 * frame_samples(config.rate)
        self._stream_s = 0.0  # seconds of stream played in this burst (packets and fills)
        self._transit: tuple[float, float] | None = None  # min, max of arrival − stream time
        self._spread = 0.0  # this burst's largest transit spread
        self.last_jitter = 0.0  # the last burst's: how much later than others a packet came
        self.filled_s = 0.0  # seconds of lost stream filled, in all (``stats.concealed``)
        if any(p.name == "opus" for p in config.payloads):
            OpusDecoder(config.rate)  # fail now (OpusUnavailableError), not on a packet

    def receive_datagrams(self, datagrams: Iterable[tuple[bytes, object]], now: float) -> None:
        """Several datagrams a driver found waiting at ``now`` (it was not scheduled for a
        while): each handled as by :meth:`receive_datagram`, in order."""
        for data, addr in datagrams:
            self.receive_datagram(data, addr, now)

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
            if now - self._last_packet <= self._last_duration + HANDOFF_MARGIN:
                self.stats.wrong_ssrc += 1
                return
            self.stats.handoffs += 1
            self._end("handoff")
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
            if self._depay is not None:
                self._pending += self._depay.flush()
            self._depay = _Depayloader(fmt, self.config.rate, self.config.resample_lead)
        elif (packet.sequence_number - self._next_seq) & 0xFFFF >= 0x8000:
            self.stats.stale += 1  # duplicate or reordered behind what was played
            return
        self._last_packet = now
        self._play(packet, now)
        if self.config.end_on_marker and packet.marker and self._ssrc is not None:
            self._end("marker")

    def _start(self, packet: RtpPacket, fmt: PayloadFormat) -> None:
        self._ssrc = packet.ssrc
        self._depay = _Depayloader(fmt, self.config.rate, self.config.resample_lead)
        self._next_seq = packet.sequence_number
        self._next_ts = packet.timestamp
        self._pending = b""
        self._stream_s, self._transit, self._spread = 0.0, None, 0.0
        self._longest = 0.0
        self.stats.bursts += 1
        self._events.append(BurstStart(packet.ssrc))

    def _play(self, packet: RtpPacket, now: float) -> None:
        assert self._depay is not None
        self.stats.lost += (packet.sequence_number - self._next_seq) & 0xFFFF
        gap = (packet.timestamp - self._next_ts) & 0xFFFFFFFF
        clock = self._depay.fmt.clock_rate
        try:
            if 0 < gap <= self.config.max_gap_ms * clock // 1000:
                self._pending += self._depay.fill(gap, packet.payload)
                self.stats.concealed += gap
                self.filled_s += gap / clock
                self._stream_s += gap / clock
            elif gap:
                self.stats.jumps += 1
                self._transit = None  # the stream's clock moved: a new reference
            pcm, ticks = self._depay.decode(packet.payload)
        except CodecError:
            self.stats.decode_errors += 1
            return
        finally:
            self._next_seq = (packet.sequence_number + 1) & 0xFFFF
        self._next_ts = (packet.timestamp + ticks) & 0xFFFFFFFF
        self._last_duration = ticks / clock
        self._longest = max(self._longest, self._last_duration)
        self._stream_s += ticks / clock
        self._track_transit(now - self._stream_s)
        self._pending += pcm
        self._emit_frames()

    def _track_transit(self, transit: float) -> None:
        lo, hi = self._transit or (transit, transit)
        if max(hi, transit) - min(lo, transit) > TRANSIT_RESET:
            lo = hi = transit  # the stream's clock moved: a new reference
        self._transit = (min(lo, transit), max(hi, transit))
        self._spread = max(self._spread, self._transit[1] - self._transit[0])

    def _emit_frames(self) -> None:
        size = self._frame_bytes
        whole = len(self._pending) - len(self._pending) % size
        for i in range(0, whole, size):
            self._events.append(Audio(self._pending[i : i + size]))
        self._pending = self._pending[whole:]

    def _end(self, reason: EndReason) -> None:
        self.last_jitter = self._spread
        if reason != "hang_time":  # the end is now: send the last samples with it
            if self._depay is not None:
                self._pending += self._depay.flush()
                self._emit_frames()
            if self._pending:
                self._events.append(Audio(self._pending.ljust(self._frame_bytes, b"\x00")))
        elif self._pending or (self._depay is not None and self._depay.flush()):
            self.stats.tails_dropped += 1
        self._pending = b""
        self._ssrc = None
        self._depay = None
        self._events.append(BurstEnd(reason))

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next be called (the hang-time deadline)."""
        return self._hang_deadline()

    def _hang_deadline(self) -> float | None:
        if self._ssrc is None:
            return None
        # when the packet after a gap the receiver fills comes at the latest (module docstring)
        longest = max(self._longest, self._last_duration)
        fillable = longest + self.config.max_gap_ms / 1000 + self._spread + GAP_MARGIN
        return self._last_packet + max(self.config.hang_time, fillable)

    def handle_timer(self, now: float) -> None:
        timer = self._hang_deadline()
        if timer is not None and now >= timer:
            self._end("hang_time")

    def events_received(self) -> list[RtpEvent]:
        """Events since the last call, oldest first."""
        events, self._events = self._events, []
        return events
