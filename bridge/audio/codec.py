"""Audio codecs of the bridge: Opus (libopus), G.711 μ-law/A-law, L16, and a resampler.

PCM everywhere is 16-bit signed mono, little-endian ``bytes``, in 20 ms frames, at 8000 Hz
(narrowband) or 16000 Hz (wideband); Opus also accepts 48000 Hz.

* **Opus** (RFC 6716) goes through ``opuslib``, a ctypes binding that loads Debian's
  ``libopus0``: nothing of the codec is written here. The encoder runs in VoIP mode with
  in-band FEC (LBRR, RFC 6716 §2.1.7) so that a lost frame can be rebuilt from the next
  packet (:meth:`OpusDecoder.decode_fec`); :meth:`OpusDecoder.conceal` is libopus' packet
  loss concealment (decode called with no data, RFC 6716 §4.4).
* **G.711** (ITU-T G.711, 1988) μ-law and A-law by lookup tables over all 65536 samples and
  all 256 codes, built once with numpy from the segment/quantisation rule of the
  Recommendation (the same rule as the reference ``g711.c`` and CPython's ``audioop``;
  the tests compare every entry).
* **L16** (RFC 3551 §4.5.11) is the same PCM in network byte order (big-endian).
* :class:`Resampler` converts between 8, 16 and 48 kHz (any integer-related rates): the
  signal is zero-stuffed by the up factor, filtered by a Kaiser-windowed sinc low-pass whose
  cutoff is the lower of the two Nyquist frequencies, and decimated by the down factor. It
  keeps the filter history between calls so 20 ms frames join without clicks; its delay is
  half the filter (about 2 ms).
"""

from __future__ import annotations

import math
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from crypto.errors import CrossbandError

__all__ = [
    "CodecError",
    "OpusUnavailableError",
    "OpusEncoder",
    "OpusDecoder",
    "Resampler",
    "frame_samples",
    "ulaw_encode",
    "ulaw_decode",
    "alaw_encode",
    "alaw_decode",
    "pcm_to_l16",
    "l16_to_pcm",
    "resample",
]

FRAME_MS = 20
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
_OPUS_MAX_FRAME_MS = 120  # the longest Opus packet, RFC 6716 §3.2.5

Int16Array = npt.NDArray[np.int16]


class CodecError(CrossbandError):
    """Audio could not be encoded or decoded (malformed packet, wrong frame size, …)."""


class OpusUnavailableError(CodecError, ImportError):
    """libopus could not be loaded."""


def frame_samples(rate: int, frame_ms: int = FRAME_MS) -> int:
    """Samples in one frame of ``frame_ms`` at ``rate`` Hz."""
    return rate * frame_ms // 1000


def _as_int16(pcm: bytes | Int16Array) -> Int16Array:
    if isinstance(pcm, np.ndarray):
        return pcm.astype(np.int16, copy=False)
    if len(pcm) % 2:
        raise CodecError("16-bit PCM must have an even number of bytes")
    return np.frombuffer(pcm, dtype="<i2").astype(np.int16, copy=False)


# --- G.711 -------------------------------------------------------------------------------

_ALL_SAMPLES = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)
_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def _build_ulaw_encode() -> npt.NDArray[np.uint8]:
    # G.711 μ-law on the 14-bit magnitude: bias 33, 8 segments, 4 mantissa bits, bits inverted.
    val = _ALL_SAMPLES >> 2
    mask = np.where(val < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(val), 8159) + 33
    seg = np.searchsorted(_ULAW_SEG_END, mag, side="left")
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> np.minimum(seg + 1, 12)) & 0xF))
    return ((code ^ mask) & 0xFF).astype(np.uint8)


def _build_ulaw_decode() -> Int16Array:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    # G.711 A-law on the 13-bit value: 8 segments, 4 mantissa bits, even bits inverted (0x55).
    val = _ALL_SAMPLES >> 3
    mask = np.where(val >= 0, 0xD5, 0x55)
    mag = np.where(val >= 0, val, -val - 1)
    seg = np.searchsorted(_ALAW_SEG_END, mag, side="left")
    shift = np.where(seg < 2, 1, seg)
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> np.minimum(shift, 12)) & 0xF))
    return ((code ^ mask) & 0xFF).astype(np.uint8)


def _build_alaw_decode() -> Int16Array:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    mant = a & 0x0F
    seg = (a & 0x70) >> 4
    t = np.where(seg > 0, (2 * mant + 33) << (seg + 2), (2 * mant + 1) << 3)
    return np.where(a & 0x80, t, -t).astype(np.int16)


_ULAW_ENC = _build_ulaw_encode()
_ULAW_DEC = _build_ulaw_decode()
_ALAW_ENC = _build_alaw_encode()
_ALAW_DEC = _build_alaw_decode()


def ulaw_encode(pcm: bytes | Int16Array) -> bytes:
    """16-bit PCM → G.711 μ-law, one octet per sample."""
    return _ULAW_ENC[_as_int16(pcm).view(np.uint16)].tobytes()


def ulaw_decode(data: bytes) -> bytes:
    """G.711 μ-law octets → 16-bit PCM."""
    return _ULAW_DEC[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()


def alaw_encode(pcm: bytes | Int16Array) -> bytes:
    """16-bit PCM → G.711 A-law, one octet per sample."""
    return _ALAW_ENC[_as_int16(pcm).view(np.uint16)].tobytes()


def alaw_decode(data: bytes) -> bytes:
    """G.711 A-law octets → 16-bit PCM."""
    return _ALAW_DEC[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()


# --- L16 (RFC 3551 §4.5.11): network byte order ------------------------------------------


def pcm_to_l16(pcm: bytes | Int16Array) -> bytes:
    """Little-endian PCM → L16 payload (big-endian)."""
    return _as_int16(pcm).astype(">i2").tobytes()


def l16_to_pcm(payload: bytes) -> bytes:
    """L16 payload (big-endian) → little-endian PCM."""
    if len(payload) % 2:
        raise CodecError("L16 payload must have an even number of bytes")
    return np.frombuffer(payload, dtype=">i2").astype("<i2").tobytes()


# --- resampling --------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _lowpass(up: int, down: int, taps_per_phase: int) -> npt.NDArray[np.float64]:
    factor = max(up, down)
    n = taps_per_phase * factor + 1
    cutoff = 0.5 / factor * 0.92  # cycles per (upsampled) sample, with a transition band
    k = np.arange(n) - (n - 1) / 2
    h: npt.NDArray[np.float64] = 2 * cutoff * np.sinc(2 * cutoff * k) * np.kaiser(n, 8.0)
    h *= up / h.sum()  # unity gain after zero-stuffing by ``up``
    return h


class Resampler:
    """Streaming windowed-sinc resampler between integer-related rates (8k ↔ 16k ↔ 48k)."""

    def __init__(self, src_rate: int, dst_rate: int, taps_per_phase: int = 16) -> None:
        if src_rate <= 0 or dst_rate <= 0:
            raise ValueError("rates must be positive")
        g = math.gcd(src_rate, dst_rate)
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self._up = dst_rate // g
        self._down = src_rate // g
        self._h = _lowpass(self._up, self._down, taps_per_phase)
        self._history = np.zeros(len(self._h) - 1)
        self._phase = 0  # index, in the next upsampled block, of the next output sample

    def process(self, pcm: bytes | Int16Array) -> bytes:
        """Resample one block of PCM; output length follows the rate ratio over time."""
        x = _as_int16(pcm)
        if self._up == self._down:
            return x.astype("<i2").tobytes()
        u = np.zeros(len(x) * self._up)
        u[:: self._up] = x
        buf = np.concatenate((self._history, u))
        y = np.convolve(buf, self._h, mode="valid")[self._phase :: self._down]
        self._phase = (self._phase - len(u)) % self._down
        self._history = buf[len(buf) - len(self._history) :]
        return np.clip(np.rint(y), -32768, 32767).astype("<i2").tobytes()


def resample(pcm: bytes | Int16Array, src_rate: int, dst_rate: int) -> bytes:
    """One-shot resampling of a whole buffer (no state kept between calls)."""
    return Resampler(src_rate, dst_rate).process(pcm)


# --- Opus (RFC 6716) through libopus -----------------------------------------------------

_INSTALL_HINT = (
    "libopus is not available: install Debian's libopus0 (deploy/setup.sh does) "
    "and the Python binding opuslib (pip install opuslib)"
)


def _opuslib() -> ModuleType:
    try:  # a ctypes binding: importing it loads libopus.so.0
        import opuslib
        import opuslib.api.ctl
        import opuslib.api.encoder
    except Exception as exc:  # opuslib raises a bare Exception when the library is missing
        raise OpusUnavailableError(_INSTALL_HINT) from exc
    module: ModuleType = opuslib
    return module


def _check_rate(rate: int) -> None:
    if rate not in OPUS_RATES:
        raise ValueError(f"Opus sample rate must be one of {OPUS_RATES}")


class OpusEncoder:
    """Mono Opus encoder, VoIP application, 20 ms frames, in-band FEC on by default."""

    def __init__(
        self,
        rate: int,
        bitrate: int = 24000,
        fec: bool = True,
        expected_loss_pct: int = 10,
        complexity: int = 5,
    ) -> None:
        _check_rate(rate)
        if not 0 <= expected_loss_pct <= 100:
            raise ValueError("expected_loss_pct must be in 0..100")
        opuslib = _opuslib()
        self.rate = rate
        self.frame_samples = frame_samples(rate)
        self._enc: Any = opuslib.Encoder(rate, 1, opuslib.APPLICATION_VOIP)
        # Set through the ctl layer: opuslib 3.0.1's ``inband_fec`` property drops its value.
        ctl, state = opuslib.api.ctl, self._enc.encoder_state
        for request, value in (
            (ctl.set_bitrate, bitrate),
            (ctl.set_complexity, complexity),
            (ctl.set_inband_fec, int(fec)),
            (ctl.set_packet_loss_perc, expected_loss_pct),
        ):
            opuslib.api.encoder.encoder_ctl(state, request, value)
        self._error: type[Exception] = opuslib.OpusError

    def encode(self, pcm: bytes) -> bytes:
        """Encode one 20 ms frame of PCM at the encoder's rate into one Opus packet."""
        if len(pcm) != 2 * self.frame_samples:
            raise CodecError(f"Opus encoder takes {FRAME_MS} ms frames")
        try:
            return bytes(self._enc.encode(bytes(pcm), self.frame_samples))
        except self._error as exc:
            raise CodecError(f"opus_encode failed: {exc}") from None


class OpusDecoder:
    """Mono Opus decoder with in-band FEC recovery and packet loss concealment."""

    def __init__(self, rate: int) -> None:
        _check_rate(rate)
        opuslib = _opuslib()
        self.rate = rate
        self._dec: Any = opuslib.Decoder(rate, 1)
        self._error: type[Exception] = opuslib.OpusError
        self._max_samples = frame_samples(rate, _OPUS_MAX_FRAME_MS)

    def _run(self, packet: bytes, samples: int, fec: bool) -> bytes:
        try:
            return bytes(self._dec.decode(bytes(packet), samples, fec))
        except self._error as exc:
            raise CodecError(f"opus_decode failed: {exc}") from None

    def decode(self, packet: bytes) -> bytes:
        """Decode one Opus packet (2.5–120 ms) to PCM at the decoder's rate."""
        if not packet:
            raise CodecError("empty Opus packet; use conceal() for a lost frame")
        return self._run(packet, self._max_samples, False)

    def decode_fec(self, next_packet: bytes, frame_ms: int = FRAME_MS) -> bytes:
        """Rebuild the lost frame *before* ``next_packet`` from its in-band FEC data.

        Without FEC data in ``next_packet`` libopus falls back to concealment. Decode
        ``next_packet`` itself normally afterwards.
        """
        if not next_packet:
            raise CodecError("empty Opus packet")
        return self._run(next_packet, frame_samples(self.rate, frame_ms), True)

    def conceal(self, frame_ms: int = FRAME_MS) -> bytes:
        """Packet loss concealment for one lost frame (libopus decode with no data)."""
        return self._run(b"", frame_samples(self.rate, frame_ms), False)
