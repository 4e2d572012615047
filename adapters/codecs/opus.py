"""Opus (RFC 6716) through libopus: the one Opus wrapper of the project.

``opuslib`` is a ctypes binding that loads Debian's ``libopus0``: nothing of the codec is
written here. Both users need the same things, so both use this module: the endpoint's audio
path (``bridge.audio``, Opus between endpoints) and the RTP adapter (RTP payload type Opus,
RFC 7587).

* :class:`OpusEncoder` runs in VoIP mode with in-band FEC (LBRR, RFC 6716 §2.1.7), so that a
  lost frame can be rebuilt from the next packet.
* :class:`OpusDecoder` decodes packets of 2.5–120 ms, rebuilds a lost frame from the next
  packet's FEC data (:meth:`~OpusDecoder.decode_fec`) and conceals one
  (:meth:`~OpusDecoder.conceal`, libopus decode with no data, RFC 6716 §4.4).

Every codec failure is a :class:`~adapters.codecs.pcm.CodecError`; a missing libopus is an
:class:`OpusUnavailableError` (also an ``ImportError``) that says what to install.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from adapters.codecs.pcm import FRAME_MS, CodecError, frame_samples

__all__ = ["OPUS_RATES", "OpusDecoder", "OpusEncoder", "OpusUnavailableError"]

OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
_OPUS_MAX_FRAME_MS = 120  # the longest Opus packet, RFC 6716 §3.2.5

_INSTALL_HINT = (
    "libopus is not available: install Debian's libopus0 (deploy/setup.sh does) "
    "and the Python binding opuslib (pip install opuslib)"
)


class OpusUnavailableError(CodecError, ImportError):
    """libopus could not be loaded."""


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
