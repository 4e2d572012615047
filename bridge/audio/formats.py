"""What a channel's audio is between endpoints: codec, rates, bit rate, frame period.

Adapters give and take 16-bit mono PCM (little-endian) in 20 ms frames at 8 or 16 kHz.

**Channel codecs.** ``"opus"`` (the default): Opus at the local rate with in-band FEC; the
rate is a local choice, since any Opus decoder plays any Opus stream. ``"l16"``:
*passthrough* — the payload is the frame itself as L16 (RFC 3551 §4.5.11, big-endian), still
SFrame-encrypted. Nothing is transcoded, so L16 in → L16 out at the same rate is bit-exact;
it costs 256 kbit/s at 16 kHz, and every endpoint of the channel must be configured for
``l16`` at the same rate (a payload of the wrong length is counted in ``decode_errors`` and
concealed). A lost frame is concealed by :class:`~adapters.codecs.plc.Concealer` (G.711
Appendix I style: the last pitch period repeated, fading out over 60 ms); a talker's first
burst starts the jitter buffer at 40 ms instead of Opus's 20 ms (nothing rebuilds a frame
that comes late), up to 400 ms; later bursts start at what the path needs
(:mod:`bridge.audio.mixer`, "Start delay"). ``"pcmu"`` / ``"pcma"``: G.711 passthrough
for narrowband channels (rate 8000 only) — the payload is the frame as G.711 (160 octets,
64 kbit/s), so a G.711 radio on one side and a G.711 radio on the other are bit-exact end
to end (no Opus, no resampling), with the same concealment and jitter defaults as
``l16``. Which to use when: ``docs/audio.md``.

**Bit rate.** The sender encodes Opus at 64 kbit/s, complexity 10, in-band FEC tuned for 5 %
loss (48 kbit/s until the loss target below was measured). Measured with PESQ-WB on
espeak-ng speech (``bench/audio_path_bench.py``): 24 kbit/s with FEC scores only 2.5 (the FEC
redundancy takes a large share of a small budget), 32 kbit/s 3.7, 48 kbit/s 4.25 clean and,
with 5 % of frames lost, 3.24–3.49 on the worst of seeds 0–4 (four runs): under 3.5 because
of double losses (FEC reaches one frame back, so the first of two lost frames is plain
concealment). No encoder setting moves that at 48 kbit/s (expected loss 1–30 %, CBR,
constrained VBR, signal type: the same or worse); 64 kbit/s scores 3.63–3.71 on the worst
seed (56 kbit/s 3.63), hence the default. It is small next to any IP link a gateway has; a
constrained link (a vessel's satellite) lowers it per channel (``bitrate:`` in the mapping).
"""

from __future__ import annotations

from typing import Literal

from adapters.codecs.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from adapters.codecs.pcm import CodecError, l16_to_pcm, pcm_to_l16

__all__ = [
    "AUDIO_RATES",
    "CHANNEL_CODECS",
    "DEFAULT_BITRATE",
    "FRAME",
    "PASSTHROUGH",
    "ChannelCodec",
    "check_format",
    "decode_passthrough",
    "encode_passthrough",
]

ChannelCodec = Literal["opus", "l16", "pcmu", "pcma"]
CHANNEL_CODECS: tuple[ChannelCodec, ...] = ("opus", "l16", "pcmu", "pcma")
PASSTHROUGH: tuple[ChannelCodec, ...] = ("l16", "pcmu", "pcma")  # no Opus: PCM as it is
AUDIO_RATES = (8000, 16000)
DEFAULT_BITRATE = 64000  # see "Bit rate" in the module docstring
FRAME = 0.020  # seconds


def check_format(rate: int, codec: str) -> None:
    """Refuse a rate or channel codec the audio path does not have (``ValueError``)."""
    if rate not in AUDIO_RATES:
        raise ValueError(f"audio rate must be one of {AUDIO_RATES}")
    if codec not in CHANNEL_CODECS:
        raise ValueError(f"channel codec must be one of {', '.join(CHANNEL_CODECS)}")
    if codec in ("pcmu", "pcma") and rate != 8000:
        raise ValueError(f"channel codec {codec} is narrowband: the audio rate must be 8000")


def encode_passthrough(codec: str, pcm: bytes) -> bytes:
    """A PCM frame as the payload of a passthrough channel codec (L16, PCMU, PCMA)."""
    if codec == "pcmu":
        return ulaw_encode(pcm)
    if codec == "pcma":
        return alaw_encode(pcm)
    return pcm_to_l16(pcm)


def decode_passthrough(codec: str, payload: bytes, frame_bytes: int) -> bytes:
    """The PCM frame of a passthrough payload; ``CodecError`` if it is not one frame long."""
    size = frame_bytes // 2 if codec in ("pcmu", "pcma") else frame_bytes
    if len(payload) != size:
        raise CodecError(f"{codec} passthrough payload of the wrong length")
    if codec == "pcmu":
        return ulaw_decode(payload)
    if codec == "pcma":
        return alaw_decode(payload)
    return l16_to_pcm(payload)
