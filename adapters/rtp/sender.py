"""Sans-IO RTP output stream: push-to-talk + 20 ms PCM frames → RTP and RTCP datagrams.

:class:`RtpSender` turns ``start_burst``/``send_audio``/``end_burst`` into datagrams from
``datagrams_to_send()``: random initial sequence number and timestamp (RFC 3550 §5.1),
sequence +1 per packet and timestamp + samples at the payload clock (48000 for Opus, RFC
7587 §4.1), both wrapping; the marker bit on the first packet of a burst (RFC 3551 §4.1); a
new SSRC per burst or one for the whole session (``ssrc_mode``); an RTCP SR + SDES CNAME
compound every ``rtcp_interval`` seconds while sending. Its ``now`` is wall-clock (Unix)
seconds, because it becomes the SR's NTP timestamp (§6.4.1).

PCM at another rate than the payload clock is resampled (:mod:`adapters.rtp.codec`); every
packet still carries exactly ``ptime`` of samples, and ``end_burst`` flushes what the
resampler held back into a last, zero-padded frame — if the audio has only just stopped. An
``end_burst`` that comes later (the gateway keys down only once the talker's burst seal has
been checked, up to a second after the last frame) drops that tail (``tails_dropped``):
sent then, it would reach the radio side as a stray packet of its own after the burst.

Audio that resumes within a burst after a pause continues at a timestamp advanced by the
pause, so the receiver plays it at its time rather than seeing packets "late" (RFC 3550
§5.1). What a pause is comes from the playout clock when the caller gives it (``media``: the
frame period's due time; whole frame periods that went by unplayed), so frames handed over
late and at once after a stall of this process keep contiguous timestamps; without it, no
``send_audio`` for more than two frame periods counts as a pause.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from adapters.codecs.opus import OpusEncoder
from adapters.codecs.pcm import frame_samples, pcm_to_l16
from adapters.rtp.codec import Resampler, alaw_encode, ulaw_encode
from adapters.rtp.config import RtpSenderConfig
from adapters.rtp.packet import (
    RtcpSenderReport,
    RtpPacket,
    build_rtcp_sdes_cname,
    build_rtcp_sr,
    ntp_timestamp,
)

__all__ = ["Outgoing", "RtpSender"]

Outgoing = tuple[Literal["rtp", "rtcp"], bytes]
_FRAME = 0.020  # seconds


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
    last_audio: float | None = None  # when send_audio was last called in this burst
    last_media: float | None = None  # the ``media`` time of the last frame of this burst
    drained: bool = False  # the tail after the last audio has been sent


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
        self._resampler = (
            Resampler(config.rate, fmt.clock_rate, low_delay=True, lead=config.resample_lead)
            if not self._opus
            else None
        )
        self._resampled = b""  # resampler output not yet in a whole frame
        self.tails_dropped = 0
        self._encode: Callable[[bytes], bytes] = {
            "pcmu": ulaw_encode,
            "pcma": alaw_encode,
            "l16": pcm_to_l16,
            "opus": self._opus.encode if self._opus else pcm_to_l16,
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
        st.last_audio = st.last_media = None
        self._active = True

    def send_audio(self, pcm: bytes, now: float, *, media: float | None = None) -> None:
        """Queue one 20 ms PCM frame at the configured input rate. ``media``: when the frame's
        playout period was due, on the caller's clock (frames 20 ms apart are contiguous
        however late they are handed over); without it, the time between calls tells a pause
        (module docstring)."""
        if not self._active or self._state is None:
            raise ValueError("send_audio outside a burst: call start_burst first")
        if len(pcm) != self._frame_bytes:
            raise ValueError("send_audio takes one 20 ms frame")
        st = self._state
        if media is not None:  # the playout clock says whether periods went by unplayed
            if st.last_media is not None and not st.frames:
                missed = round((media - st.last_media) / _FRAME) - 1
                if missed > 0:
                    st.ts = (st.ts + missed * self._ticks_per_frame) & 0xFFFFFFFF
                    st.ts_time = now
            st.last_media = media
        elif st.last_audio is not None and now - st.last_audio > 2 * _FRAME and not st.frames:
            st.ts = (st.ts + self._ticks_since(st, now)) & 0xFFFFFFFF  # resume after a pause
            st.ts_time = now
        st.last_audio = now
        st.drained = False
        if self._resampler is None:
            self._queue(pcm, now)
        else:
            self._queue_resampled(self._resampler.process(pcm), now)
        self._maybe_rtcp(now)

    def end_burst(self, now: float) -> None:
        """Key down: send what is left of a partial packet (if the audio just stopped)."""
        st = self._state
        if self._active and st is not None:
            if st.last_audio is not None and now - st.last_audio <= 2 * _FRAME:
                self._flush_tail(now)
            elif self._resampled or st.frames:
                self.tails_dropped += 1  # the driver did not call handle_timer in time
            self._resampled = b""
            st.frames.clear()
            if self._resampler is not None:
                self._resampler.flush()
        self._active = False

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must be called: two frame periods after the last audio,
        if a part-packet or the resampler's delay is still held."""
        st = self._state
        if not self._active or st is None or st.last_audio is None or st.drained:
            return None
        return st.last_audio + 2 * _FRAME

    def handle_timer(self, now: float) -> None:
        """The audio stopped: send what is held now, as the end of what was played."""
        timer = self.get_timer()
        if timer is not None and now >= timer:
            self._flush_tail(now)

    def _flush_tail(self, now: float) -> None:
        st = self._state
        assert st is not None
        if self._resampler is not None:
            self._queue_resampled(self._resampler.flush(), now)
            if self._resampled:
                size = 2 * self._ticks_per_frame
                self._queue(self._resampled.ljust(size, b"\x00"), now)
            self._resampled = b""
        if st.frames:
            self._flush(now)
        st.drained = True

    def _queue_resampled(self, pcm: bytes, now: float) -> None:
        buf = self._resampled + pcm
        size = 2 * self._ticks_per_frame
        whole = len(buf) - len(buf) % size
        for i in range(0, whole, size):
            self._queue(buf[i : i + size], now)
        self._resampled = buf[whole:]

    def _queue(self, frame: bytes, now: float) -> None:
        st = self._state
        assert st is not None
        st.frames.append(frame)
        if len(st.frames) * 20 >= self.config.ptime_ms:
            self._flush(now)

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
