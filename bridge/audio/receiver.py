"""One remote talker's incoming stream: adaptive jitter buffer + decoder (FEC, PLC).

A :class:`TalkReceiver` lives for one burst of one talker. Each 20 ms :meth:`~TalkReceiver.pop`
plays a buffered frame, rebuilds a lost one from the next packet's in-band FEC
(:meth:`OpusDecoder.decode_fec`), or conceals it (:meth:`OpusDecoder.conceal`).

**Sequence numbers.** Voice payloads carry no sequence number of their own: the jitter
buffer is keyed by the SFrame counter (``Voice.ctr``, RFC 9605 §4.3). A sender's voice KID
(context 0) is used for nothing but voice, and the sender takes one counter value per frame,
so within an epoch the CTRs of one talker's frames are consecutive integers — exactly an RTP
sequence number, but authenticated. The buffer runs with 32-bit sequence arithmetic on
``ctr mod 2**32``. A counter that jumps far ahead (a restart reserves a new counter block)
starts a new burst in the buffer; one that jumps back (a new epoch restarts the counters)
resets it.

**Delay policy.** Within a burst the jitter buffer *stretches* (adds a frame of delay) when
late packets need it but never *shrinks* by skipping a frame: a skipped 20 ms of speech is
audible (it cost 0.3 PESQ in the benchmark) and radio bursts are short. The delay is bounded
all the same — a frame older than the maximum delay is dropped. A burst starts at
``start_delay_ms``; :meth:`TalkReceiver.learned_delay_ms` is what this burst teaches the
next one of the same talker (:class:`~bridge.audio.mixer.ListenMixer` carries it over): the
largest jitter spread seen, plus one frame if frames came late — or, for Opus, if frames
were lost (a late frame is not taken for a lost one), because rebuilding a lost frame from
its successor's FEC needs the successor buffered when the lost frame's turn comes, one
frame period later than a loss-free path needs. On a clean path the next burst therefore starts
near the minimum.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.codecs.opus import OpusDecoder
from adapters.codecs.pcm import CodecError, frame_samples
from adapters.codecs.plc import Concealer
from bridge.audio.formats import ChannelCodec, check_format, decode_passthrough
from bridge.audio.jitter import JitterBuffer

__all__ = ["MixerStats", "TalkReceiver"]

_NEVER = 1 << 62  # a "shrink_every" that never comes: every received frame is played
_REPLAY_SPAN = 128  # crypto.group's replay window: one KID's CTR never goes further back


@dataclass(slots=True)
class MixerStats:
    """Frames produced since construction, by how they were made."""

    received: int = 0
    played: int = 0
    fec: int = 0
    concealed: int = 0
    decode_errors: int = 0
    late: int = 0  # arrived after their turn (jitter buffer)
    ignored: int = 0  # voice of this device itself


class TalkReceiver:
    """One talker's stream: jitter buffer + decoder (FEC, PLC)."""

    def __init__(
        self,
        sender: str,
        rate: int,
        codec: ChannelCodec,
        stats: MixerStats,
        *,
        min_delay_ms: int = 20,
        max_delay_ms: int = 200,
        start_delay_ms: float | None = None,
    ) -> None:
        check_format(rate, codec)
        self.sender = sender
        self.started = False
        self.ending = False  # the talker released the floor: stop once the buffer runs dry
        self.finished = False
        self._stats = stats
        self._frame_bytes = 2 * frame_samples(rate)
        self._decoder = OpusDecoder(rate) if codec == "opus" else None
        self._codec = codec
        self._plc = Concealer(rate) if codec != "opus" else None  # passthrough codecs
        self._window = 50
        self.jitter = JitterBuffer(
            20,
            min_delay_ms,
            max_delay_ms,
            max_frames=self._window,
            start_delay_ms=start_delay_ms,
            seq_bits=32,
            shrink_every=_NEVER,  # no frame is skipped within a burst (module docstring)
        )
        self._last_ctr: int | None = None
        self._late_seen = 0
        self._concealing = 0  # concealed periods since the last played frame
        self.gaps = 0  # concealed periods that real frames followed: losses, late frames
        self.last_push = 0.0
        self.max_delay = max_delay_ms / 1000

    def push(self, ctr: int, payload: bytes, now: float) -> None:
        if self._last_ctr is not None and ctr + _REPLAY_SPAN < self._last_ctr:
            # Further back than the SFrame replay window lets one KID go: a new epoch's KID
            # restarted the counters. Start a new burst in the buffer.
            self.jitter.reset()
            self._last_ctr = ctr
        self._last_ctr = ctr if self._last_ctr is None else max(ctr, self._last_ctr)
        dropped = self.jitter.stats.late + self.jitter.stats.duplicate
        self.jitter.push(ctr & 0xFFFFFFFF, payload, now)
        if self.jitter.stats.late + self.jitter.stats.duplicate == dropped:
            self.last_push = now  # a late or duplicate frame is no sign of a live talker
        self._stats.received += 1
        late = self.jitter.stats.late
        self._stats.late += late - self._late_seen
        self._late_seen = late

    def learned_delay_ms(self) -> float:
        """The delay to start this talker's next burst with (module docstring)."""
        st = self.jitter.stats
        delay = self.jitter.peak_spread_ms
        lost = st.fec + self.gaps - st.late  # gaps that no late arrival explains
        if st.late or (self._decoder is not None and lost > 0):
            # a frame more: for late frames (the spread's 95th percentile did not cover
            # them), and for lost Opus frames (their successors must be in time for FEC)
            delay += self.jitter.frame_ms
        return delay

    def would_conceal(self, now: float, recent: float) -> bool:
        """Its next frame is neither here nor rebuildable (no successor for FEC), though the
        talker was sending ``recent`` seconds ago and has not stopped: worth a short wait."""
        return (
            self.started
            and not self.ending
            and self._concealing == 0
            and now - self.last_push < recent
            and self.jitter.next_kind() == "conceal"
        )

    def pause(self) -> None:
        """The talker paused (nothing came for longer than jitter explains): restart the
        buffer and the concealment, so the frames after the pause play as they are — at the
        delay the frames before it played with (never earlier), not the decayed target."""
        self.jitter.restart(self.jitter.playout_delay_ms)
        self._concealing = 0
        if self._plc is not None:
            self._plc.reset()

    def pop(self, now: float) -> bytes | None:
        """PCM for the period starting at ``now``; None when there is nothing to play."""
        item = self.jitter.pop(now)
        if item is None:
            return None
        if item.kind == "conceal" and self.ending and self.jitter.stats.depth == 0:
            self.finished = True
            return None
        if item.kind == "conceal":
            self._concealing += 1
        else:
            self.gaps += self._concealing
            self._concealing = 0
        try:
            if item.kind == "frame":
                assert item.payload is not None
                pcm = self._decode(item.payload)
                self._stats.played += 1
                return pcm
            if item.kind == "fec" and self._decoder is not None:
                assert item.payload is not None
                pcm = self._fit(self._decoder.decode_fec(item.payload))
                self._stats.fec += 1
                return pcm
        except CodecError:
            self._stats.decode_errors += 1
        self._stats.concealed += 1
        if self._plc is not None:
            return self._plc.conceal(self._frame_bytes // 2)
        assert self._decoder is not None
        return self._fit(self._decoder.conceal())

    def _decode(self, payload: bytes) -> bytes:
        if self._decoder is not None:
            return self._fit(self._decoder.decode(payload))
        pcm = decode_passthrough(self._codec, payload, self._frame_bytes)
        return self._plc.audio(pcm) if self._plc is not None else pcm

    def _fit(self, pcm: bytes) -> bytes:
        if len(pcm) != self._frame_bytes:
            raise CodecError("a voice frame must be 20 ms")
        return pcm
