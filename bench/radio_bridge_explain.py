"""Where the Opus channel codec's PESQ goes, for G.711 radios (``radio_bridge.py --explain``).

Offline, no network and no clock: the G.711 codes ffmpeg's sender makes of the speech file go
through the bridge's own conversions one stage at a time, 20 ms frame by frame, with the same
classes and settings as the gateways (``adapters.rtp.codec.Resampler`` as the RTP input and
output build it, ``OpusEncoder`` as :class:`bridge.audio.sender.TalkSender` builds it,
``OpusDecoder``), and each stage is scored like the ceiling:

1. the ceiling's own signal (G.711 codes decoded): what ffmpeg → ffmpeg hears;
2. resampled 8 → 16 → 8 kHz (A's input and B's output) and G.711-coded again, no Opus;
3. + Opus at 16 kHz between them (the bench's default channel);
4. Opus at 8 kHz, no resampling (the endpoints at 8 kHz);
5. as 3, without B's G.711 re-encoding (what B's resampler hands its RTP sender).

The differences between stages say what each conversion costs; the live bridge figure adds
only what the network path does (jitter-buffer concealment, re-timing), which the bench's
counters show.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from adapters.codecs.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from adapters.codecs.opus import OpusDecoder, OpusEncoder
from adapters.rtp.codec import Resampler
from bench.radio_ceiling import coded, score
from bridge.audio.formats import DEFAULT_BITRATE
from tests.rigs.signals import Samples, from_pcm16

Stage = Callable[[bytes], bytes]


def _resampler(src: int, dst: int) -> Resampler:
    try:  # the RTP input and output's setting, where the adapter has it
        return Resampler(src, dst, low_delay=True)  # type: ignore[call-arg, unused-ignore]
    except TypeError:
        return Resampler(src, dst)


def _pcm(x: Samples) -> bytes:
    """Samples read from a WAV back to its 16-bit codes (exactly: ``from_pcm16`` inverted)."""
    out: bytes = np.clip(np.round(x * 32768), -32768, 32767).astype("<i2").tobytes()
    return out


def _frames(pcm: bytes, rate: int) -> list[bytes]:
    size = rate // 50 * 2
    whole = len(pcm) - len(pcm) % size
    return [pcm[i : i + size] for i in range(0, whole, size)]


def _resample(src: int, dst: int) -> Stage:
    def run(pcm: bytes) -> bytes:
        r = _resampler(src, dst)
        return b"".join(r.process(f) for f in _frames(pcm, src)) + r.flush()

    return run


def _opus(rate: int) -> Stage:
    def run(pcm: bytes) -> bytes:
        enc = OpusEncoder(rate, DEFAULT_BITRATE, True, 5, 10)  # TalkSender's defaults
        dec = OpusDecoder(rate)
        return b"".join(dec.decode(enc.encode(f)) for f in _frames(pcm, rate))

    return run


def _g711(codec: str) -> Stage:
    if codec == "pcma":
        return lambda pcm: alaw_decode(alaw_encode(pcm))
    return lambda pcm: ulaw_decode(ulaw_encode(pcm))


def _chain(*stages: Stage) -> Stage:
    def run(pcm: bytes) -> bytes:
        for stage in stages:
            pcm = stage(pcm)
        return pcm

    return run


def opus_budget(codec: str, wav: Path, ref: Samples) -> list[tuple[str, float | None]]:
    """(stage, PESQ or correlation) for the stages of the module docstring."""
    g711 = _pcm(coded(codec, wav))
    up, down, back = _resample(8000, 16000), _resample(16000, 8000), _g711(codec)
    stages: list[tuple[str, Stage]] = [
        ("ceiling: G.711 once (ffmpeg -> ffmpeg)", lambda pcm: pcm),
        ("+ resample 8->16->8 kHz + G.711 again, no Opus", _chain(up, down, back)),
        ("+ Opus 16 kHz 48 kbit/s between (the bridge)", _chain(up, _opus(16000), down, back)),
        ("Opus 8 kHz 48 kbit/s, no resampling, + G.711", _chain(_opus(8000), back)),
        ("Opus 16 kHz, without B's G.711 re-encoding", _chain(up, _opus(16000), down)),
    ]
    out: list[tuple[str, float | None]] = []
    for name, stage in stages:
        mos, corr, _lag = score(ref, from_pcm16(stage(g711)), 8000)
        out.append((name, mos if mos is not None else corr))
    return out
