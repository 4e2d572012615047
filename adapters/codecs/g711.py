"""G.711 (ITU-T G.711, 1988) μ-law and A-law: the RTP payloads PCMU/PCMA and a channel codec.

Lookup tables over all 65536 samples and all 256 codes, built once with numpy from the
segment/quantisation rule of the Recommendation (the same rule as the reference ``g711.c``
and CPython's ``audioop``; the tests compare every entry). Shared by the RTP adapter and the
endpoint's audio path (``bridge.audio``, the ``pcmu``/``pcma`` channel codecs). Decoding
then encoding gives back every code except μ-law 0x7F ("negative zero", which decodes to 0
like 0xFF): G.711 in, G.711 out is bit-exact up to the sign of silence.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from adapters.codecs.pcm import Int16Array, as_int16

__all__ = ["alaw_decode", "alaw_encode", "ulaw_decode", "ulaw_encode"]

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
    return _ULAW_ENC[as_int16(pcm).view(np.uint16)].tobytes()


def ulaw_decode(data: bytes) -> bytes:
    """G.711 μ-law octets → 16-bit PCM."""
    return _ULAW_DEC[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()


def alaw_encode(pcm: bytes | Int16Array) -> bytes:
    """16-bit PCM → G.711 A-law, one octet per sample."""
    return _ALAW_ENC[as_int16(pcm).view(np.uint16)].tobytes()


def alaw_decode(data: bytes) -> bytes:
    """G.711 A-law octets → 16-bit PCM."""
    return _ALAW_DEC[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()
