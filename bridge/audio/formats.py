"""What a channel's audio is between endpoints: codec, rates, bit rate, frame period.

Adapters give and take 16-bit mono PCM (little-endian) in 20 ms frames at 8 or 16 kHz.

**Channel codecs.** ``"opus"`` (the default): Opus at the local rate with in-band FEC; the
rate is a local choice, since any Opus decoder plays any Opus stream. ``"l16"``:
*passthrough* — the payload is the frame itself as L16 (RFC 3551 §4.5.11, big-endian), still
SFrame-encrypted. Nothing is transcoded, so L16 in → L16 out at the same rate is bit-exact;
it costs 256 kbit/s at 16 kHz, and every endpoint of the channel must be configured for
``l16`` at the same rate (a payload of the wrong length is counted in ``decode_errors`` and
concealed). A lost frame becomes silence (L16 has no FEC or PLC), and the jitter buffer
defaults to 40–400 ms instead of 20–200 ms so that loopback-class jitter never forces a
concealment.

**Bit rate.** The sender encodes Opus at 48 kbit/s, complexity 10, in-band FEC tuned for 5 %
loss. Measured with PESQ-WB on espeak-ng speech (``bench/audio_path_bench.py``), 24 kbit/s
with FEC scores only 2.5 (the FEC redundancy takes a large share of a small budget), 32
kbit/s 3.7, 48 kbit/s 4.2 clean and 3.6 with 5 % of frames lost. 48 kbit/s is small next to
any IP link a gateway has; a constrained link (a vessel's satellite) can lower it per channel.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["AUDIO_RATES", "DEFAULT_BITRATE", "FRAME", "ChannelCodec", "check_format"]

ChannelCodec = Literal["opus", "l16"]
AUDIO_RATES = (8000, 16000)
DEFAULT_BITRATE = 48000  # see "Bit rate" in the module docstring
FRAME = 0.020  # seconds


def check_format(rate: int, codec: str) -> None:
    """Refuse a rate or channel codec the audio path does not have (``ValueError``)."""
    if rate not in AUDIO_RATES:
        raise ValueError(f"audio rate must be one of {AUDIO_RATES}")
    if codec not in ("opus", "l16"):
        raise ValueError("channel codec must be 'opus' or 'l16'")
