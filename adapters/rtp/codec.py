"""The RTP adapter's own audio conversions: G.711 μ-law/A-law and sample-rate conversion.

* **G.711** μ-law and A-law: :mod:`adapters.codecs.g711` (shared with ``bridge.audio``, for
  the G.711 channel codecs), re-exported here.
* **Resampling** between the RTP clock of a payload (8 kHz for G.711, 8/16/48 kHz for L16) and
  the endpoint rate is libsoxr's (``soxr``), not ours. :class:`Resampler` streams 20 ms
  frames through it in one of two settings:

  - ``low_delay=True`` (what the RTP input and output use): libsoxr's fixed-rate engine,
    linear phase, with small DFT blocks (:mod:`adapters.rtp.soxr_lowdelay`), flat to 3.4 kHz
    at 8 kHz (±0.1 dB) with about 80 dB of alias and image rejection (the int16 floor). It
    holds back a varying 0–11.3 ms between 8 and 16 kHz (0–8.3 ms between 16 and 48 kHz),
    less than a frame, so a frame clock sees one frame (20 ms) of delay (where libsoxr's C API
    cannot be reached, the variable-rate engine below is used instead). With ``lead=True``
    each stream starts with :attr:`Resampler.lead` of silence, the most it ever holds
    (measured once per rate pair), so that every frame in gives a whole frame out at once:
    the audio is then delayed by exactly ``lead`` (12.3 ms between 8 and 16 kHz), and a
    burst is ``lead`` longer.
  - ``low_delay=False``: soxr's variable-rate engine, whose output follows the input with a
    fixed hold of 240 input samples (30 ms from 8 to 16 kHz, 15 ms from 16 to 8 kHz), which a
    frame clock rounds up to whole frames (40 and 20 ms). Its downsampling phase is not quite
    linear (0.23 ms at low frequencies to 0.4 ms at 3.4 kHz).

  :meth:`Resampler.flush` returns what is held at the end of a burst.

L16 itself (network byte order) is in :mod:`adapters.codecs.pcm`, shared with the endpoint.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import soxr

from adapters.codecs.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from adapters.codecs.pcm import CodecError, Int16Array, as_int16
from adapters.rtp import soxr_lowdelay

__all__ = [
    "Resampler",
    "alaw_decode",
    "alaw_encode",
    "resample",
    "ulaw_decode",
    "ulaw_encode",
]

# --- resampling (libsoxr) ----------------------------------------------------------------

_EMPTY = np.zeros(0, dtype=np.int16)


class Resampler:
    """Streaming sample-rate conversion of 16-bit mono PCM through libsoxr.

    :meth:`process` takes any number of samples and returns what soxr has ready; with
    ``lead`` the stream starts with :attr:`lead` of silence, so that what comes out never
    falls behind what went in (see the module docstring). :meth:`flush` returns what is
    held and starts a fresh stream, so one resampler serves burst after burst. Equal rates
    pass through.
    """

    def __init__(
        self, src_rate: int, dst_rate: int, *, low_delay: bool = False, lead: bool = False
    ) -> None:
        if src_rate <= 0 or dst_rate <= 0:
            raise ValueError("rates must be positive")
        if lead and not low_delay:
            raise ValueError("a lead is only for the low-delay setting")
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self.low_delay = low_delay and soxr_lowdelay.available() and src_rate != dst_rate
        self.lead_samples = _lead(src_rate, dst_rate) if self.low_delay and lead else 0
        self._stream = self._new_stream()
        self._started = False

    @property
    def lead(self) -> float:
        """Seconds of silence each stream starts with (``lead``: the audio's delay)."""
        return self.lead_samples / self.dst_rate

    def _new_stream(self) -> Any:
        if self.src_rate == self.dst_rate:
            return None
        if self.low_delay:
            return soxr_lowdelay.LowDelaySoxr(self.src_rate, self.dst_rate)
        try:
            return soxr.ResampleStream(self.src_rate, self.dst_rate, 1, dtype="int16", vr=True)
        except TypeError:  # a soxr from before variable-rate streaming
            raise CodecError(f"soxr {soxr.__version__} is too old: 1.1 or later is needed")

    def process(self, pcm: bytes | Int16Array) -> bytes:
        """Resample one block of PCM (little-endian bytes or an int16 array)."""
        x = as_int16(pcm)
        if self._stream is None:
            return x.astype("<i2").tobytes()
        if isinstance(self._stream, soxr_lowdelay.LowDelaySoxr):
            out: Int16Array = self._stream.process(x)
        else:
            out = self._stream.resample_chunk(x)
        if not self._started:
            self._started = True
            if self.lead_samples:
                out = np.concatenate([np.zeros(self.lead_samples, dtype=np.int16), out])
        return out.astype("<i2").tobytes()

    def flush(self) -> bytes:
        """The samples still held back; the next :meth:`process` starts a new stream."""
        if self._stream is None:
            return b""
        if isinstance(self._stream, soxr_lowdelay.LowDelaySoxr):
            out: Int16Array = self._stream.flush() if self._started else _EMPTY
        else:
            out = self._stream.resample_chunk(_EMPTY, last=True)
        self._stream = self._new_stream()  # (soxr's clear() does not quite restore the start)
        self._started = False
        return out.astype("<i2").tobytes()


_LEADS: dict[tuple[int, int], int] = {}


def _lead(src_rate: int, dst_rate: int) -> int:
    """The most output samples the low-delay stream ever holds back, fed 1 ms at a time over
    half a second (its blocks repeat well within that), plus 1 ms: fed in smaller pieces it
    can hold a few samples more (17 at most at 48 kHz, one sample at a time)."""
    key = (src_rate, dst_rate)
    if key not in _LEADS:
        probe = soxr_lowdelay.LowDelaySoxr(src_rate, dst_rate)
        step = src_rate // 1000
        chunk = np.zeros(step, dtype=np.int16)
        held = given = 0
        for i in range(1, 501):
            given += len(probe.process(chunk))
            held = max(held, i * step * dst_rate // src_rate - given)
        probe.close()
        _LEADS[key] = held + dst_rate // 1000
    return _LEADS[key]


def resample(pcm: bytes | Int16Array, src_rate: int, dst_rate: int) -> bytes:
    """One-shot resampling of a whole buffer: output length ``len × dst / src``, no delay."""
    x = as_int16(pcm)
    if src_rate == dst_rate:
        return x.astype("<i2").tobytes()
    out: Int16Array = soxr.resample(x, src_rate, dst_rate, quality="HQ")
    return out.astype("<i2").tobytes()
