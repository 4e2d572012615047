"""libsoxr set up for a push-to-talk path: its C API, through ctypes, for what python-soxr hides.

python-soxr (``soxr``) offers five quality presets and a variable-rate switch; none of them
suits 20 ms frames. Its fixed-rate engines release output in blocks of up to ~100 ms (their
DFT stages process 2¹⁰-point blocks and more), and its variable-rate engine holds a constant
240 input samples (30 ms at 8 kHz). libsoxr itself can do better: a 2⁸-point DFT block
(``soxr_runtime_spec``) and a transition band fitted to speech (``passband_end`` 0.87,
``stopband_begin`` 1.05 of the lower rate's Nyquist: flat to 3.48 kHz at 8 kHz, images and
aliases stopped from 4.2 kHz, 16-bit precision), linear phase. Then it holds back at most
11.3 ms between 8 and 16 kHz and 8.3 ms between 16 and 48 kHz, less than a frame (20.7 ms
from 8 to 48 kHz, 16.6 ms back). (A minimum-phase filter would hold about 4 ms less, but its
group delay varies across the band: ffmpeg's tone sequence through G.711 → Opus → G.711
correlated 0.91 with what was sent instead of 0.99.)

The python-soxr wheel links libsoxr statically and exports libsoxr's public functions
(``soxr_create``, ``soxr_process``, …, libsoxr 0.1.3's ``soxr.h``); this module calls them
with :mod:`ctypes`. :func:`available` says whether they are there (a wheel built otherwise
would hide them); :class:`adapters.rtp.codec.Resampler` falls back to the variable-rate
engine then.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
from soxr import soxr_ext

from adapters.codecs.pcm import CodecError, Int16Array

__all__ = ["LowDelaySoxr", "available"]

_HQ = 4  # SOXR_HQ recipe
_INT16 = 3  # SOXR_INT16_I
_NO_DITHER = 8  # SOXR_NO_DITHER (io flags): deterministic, ±½ LSB
PRECISION = 16.0  # bits: the int16 floor
PHASE = 50.0  # linear phase: minimum phase would hold 4 ms less, but bends the waveform
PASSBAND_END = 0.87
STOPBAND_BEGIN = 1.05
LOG2_DFT = 8


class _Quality(ctypes.Structure):
    _fields_ = [
        ("precision", ctypes.c_double),
        ("phase_response", ctypes.c_double),
        ("passband_end", ctypes.c_double),
        ("stopband_begin", ctypes.c_double),
        ("e", ctypes.c_void_p),
        ("flags", ctypes.c_ulong),
    ]


class _Runtime(ctypes.Structure):
    _fields_ = [
        ("log2_min_dft_size", ctypes.c_uint),
        ("log2_large_dft_size", ctypes.c_uint),
        ("coef_size_kbytes", ctypes.c_uint),
        ("num_threads", ctypes.c_uint),
        ("e", ctypes.c_void_p),
        ("flags", ctypes.c_ulong),
    ]


class _IoSpec(ctypes.Structure):
    _fields_ = [
        ("itype", ctypes.c_int),
        ("otype", ctypes.c_int),
        ("scale", ctypes.c_double),
        ("e", ctypes.c_void_p),
        ("flags", ctypes.c_ulong),
    ]


def _load() -> Any:
    try:
        lib = ctypes.CDLL(soxr_ext.__file__)
        lib.soxr_quality_spec.restype = _Quality
        lib.soxr_quality_spec.argtypes = [ctypes.c_ulong, ctypes.c_ulong]
        lib.soxr_runtime_spec.restype = _Runtime
        lib.soxr_runtime_spec.argtypes = [ctypes.c_uint]
        lib.soxr_io_spec.restype = _IoSpec
        lib.soxr_io_spec.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.soxr_create.restype = ctypes.c_void_p
        lib.soxr_create.argtypes = [
            ctypes.c_double,
            ctypes.c_double,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.POINTER(_IoSpec),
            ctypes.POINTER(_Quality),
            ctypes.POINTER(_Runtime),
        ]
        lib.soxr_process.restype = ctypes.c_char_p
        lib.soxr_process.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.POINTER(ctypes.c_size_t),
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.POINTER(ctypes.c_size_t),
        ]
        lib.soxr_delete.restype = None
        lib.soxr_delete.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    return lib


_LIB = _load()


def available() -> bool:
    """libsoxr's C API can be reached (see the module docstring)."""
    return _LIB is not None


class LowDelaySoxr:
    """One libsoxr stream, 16-bit mono, in the low-delay setting of the module docstring."""

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        self._handle: int | None = None
        if _LIB is None:
            raise CodecError("libsoxr's C API is not reachable through python-soxr")
        self._ratio = dst_rate / src_rate
        q = _LIB.soxr_quality_spec(_HQ, 0)
        q.precision, q.phase_response = PRECISION, PHASE
        q.passband_end, q.stopband_begin = PASSBAND_END, STOPBAND_BEGIN
        rt = _LIB.soxr_runtime_spec(1)
        rt.log2_min_dft_size = rt.log2_large_dft_size = LOG2_DFT
        io = _LIB.soxr_io_spec(_INT16, _INT16)
        io.flags |= _NO_DITHER
        err = ctypes.c_char_p()
        handle = _LIB.soxr_create(
            float(src_rate),
            float(dst_rate),
            1,
            ctypes.byref(err),
            ctypes.byref(io),
            ctypes.byref(q),
            ctypes.byref(rt),
        )
        if err.value or not handle:
            raise CodecError(f"libsoxr refused the low-delay setting: {err.value!r}")
        self._handle = handle

    def process(self, x: Int16Array) -> Int16Array:
        """What libsoxr has ready after ``x`` (it is called until it has nothing more)."""
        x = np.ascontiguousarray(x, dtype=np.int16)
        out: list[Int16Array] = []
        done = 0
        while True:
            buf = np.empty(int((len(x) - done) * self._ratio) + 4096, dtype=np.int16)
            idone, odone = self._call(x[done:], buf)
            done += idone
            out.append(buf[:odone])
            if done >= len(x) and not odone:
                return np.concatenate(out)
            if not idone and not odone:
                raise CodecError("libsoxr made no progress")

    def flush(self) -> Int16Array:
        """Everything still held (the end of the stream); the stream is then closed."""
        out: list[Int16Array] = []
        while self._handle is not None:
            buf = np.empty(4096, dtype=np.int16)
            _idone, odone = self._call(None, buf)
            if not odone:
                self.close()
            out.append(buf[:odone])
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int16)

    def _call(self, x: Int16Array | None, buf: Int16Array) -> tuple[int, int]:
        if self._handle is None:
            raise CodecError("the resampler stream is closed")
        idone, odone = ctypes.c_size_t(), ctypes.c_size_t()
        src = None if x is None else x.ctypes.data
        n = 0 if x is None else len(x)
        err = _LIB.soxr_process(
            self._handle,
            src,
            n,
            ctypes.byref(idone),
            buf.ctypes.data,
            len(buf),
            ctypes.byref(odone),
        )
        if err:
            raise CodecError(f"libsoxr failed: {err!r}")
        return idone.value, odone.value

    def close(self) -> None:
        if self._handle is not None and _LIB is not None:
            _LIB.soxr_delete(self._handle)
        self._handle = None

    def __del__(self) -> None:
        self.close()
