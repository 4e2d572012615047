"""16-bit PCM frames and L16, the same samples in network byte order.

PCM everywhere is 16-bit signed mono, little-endian ``bytes``, in 20 ms frames, at 8000 Hz
(narrowband) or 16000 Hz (wideband); Opus also takes 48000 Hz. L16 (RFC 3551 §4.5.11) is the
same PCM big-endian: the RTP payload format, and the payload of a channel in ``l16``
passthrough mode.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from crypto.errors import CrossbandError

__all__ = [
    "FRAME_MS",
    "CodecError",
    "Int16Array",
    "as_int16",
    "frame_samples",
    "l16_to_pcm",
    "pcm_to_l16",
]

FRAME_MS = 20

Int16Array = npt.NDArray[np.int16]


class CodecError(CrossbandError):
    """Audio could not be encoded or decoded (malformed packet, wrong frame size, …)."""


def frame_samples(rate: int, frame_ms: int = FRAME_MS) -> int:
    """Samples in one frame of ``frame_ms`` at ``rate`` Hz."""
    return rate * frame_ms // 1000


def as_int16(pcm: bytes | Int16Array) -> Int16Array:
    """Little-endian PCM bytes (or an array) as an int16 array, without copying bytes."""
    if isinstance(pcm, np.ndarray):
        return pcm.astype(np.int16, copy=False)
    if len(pcm) % 2:
        raise CodecError("16-bit PCM must have an even number of bytes")
    return np.frombuffer(pcm, dtype="<i2").astype(np.int16, copy=False)


def pcm_to_l16(pcm: bytes | Int16Array) -> bytes:
    """Little-endian PCM → L16 payload (big-endian)."""
    return as_int16(pcm).astype(">i2").tobytes()


def l16_to_pcm(payload: bytes) -> bytes:
    """L16 payload (big-endian) → little-endian PCM."""
    if len(payload) % 2:
        raise CodecError("L16 payload must have an even number of bytes")
    return np.frombuffer(payload, dtype=">i2").astype("<i2").tobytes()
