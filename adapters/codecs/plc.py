"""Packet-loss concealment for PCM (G.711/L16) streams, after ITU-T G.711 Appendix I.

:class:`Concealer` sits on one stream of 16-bit mono PCM at any rate. Real audio goes through
:meth:`Concealer.audio` (kept as history, and cross-faded with the concealment after a gap);
a gap is filled with :meth:`Concealer.conceal`. The method is Appendix I's, simplified:

* the pitch period is found by normalised autocorrelation of the last 20 ms of history
  against lags of 5–15 ms (66–200 Hz), once per gap;
* the gap is filled by repeating the last pitch period, joined to the history by a
  quarter-period overlap-add so there is no click;
* the first 10 ms are played at full level, then the level falls linearly by 20 % per 10 ms
  and reaches silence 60 ms into the gap (a long gap must not buzz);
* the first real samples after a gap are cross-faded with the continued concealment over a
  quarter period (at least 1 ms), unless the concealment had already faded out.

No clock and no I/O: it transforms samples. Opus streams use libopus's own PLC instead.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from adapters.codecs.pcm import Int16Array, as_int16

__all__ = ["Concealer"]

F64 = npt.NDArray[np.float64]


class Concealer:
    """G.711 Appendix I style concealment for one PCM stream (see the module docstring)."""

    def __init__(self, rate: int) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._min_lag = rate // 200  # 5 ms
        self._max_lag = rate * 15 // 1000  # 15 ms
        self._corr = rate // 50  # 20 ms correlation window
        self._keep = self._max_lag + self._corr
        self._silent_after = rate * 60 // 1000  # the concealment has faded out by then
        self._history: F64 = np.zeros(0)
        self._erased = 0  # samples concealed in the current gap (0: no gap)
        self._cycle: F64 = np.zeros(0)  # one pitch period to repeat
        self._phase = 0
        self.concealed = 0  # samples concealed since construction

    def reset(self) -> None:
        """Forget the history (a new stream)."""
        self._history = np.zeros(0)
        self._erased = 0

    def audio(self, pcm: bytes | Int16Array) -> bytes:
        """Real audio: returned as it is, except just after a gap (cross-faded)."""
        x = as_int16(pcm).astype(np.float64)
        if 0 < self._erased < self._silent_after and len(x) and len(self._cycle):
            n = min(len(x), max(len(self._cycle) // 4, self.rate // 1000))
            tail = self._synth(n) * self._gain(n)
            ramp = np.arange(1, n + 1) / (n + 1)
            x[:n] = x[:n] * ramp + tail * (1 - ramp)
        self._erased = 0
        self._push(x)
        return _to_bytes(x)

    def conceal(self, samples: int) -> bytes:
        """``samples`` of concealment continuing the stream (silence if there is no history)."""
        if samples <= 0:
            return b""
        if self._erased == 0:
            self._start_gap()
        if not len(self._cycle):
            self._erased += samples
            self.concealed += samples
            return bytes(2 * samples)
        out = self._synth(samples) * self._gain(samples)
        self._erased += samples
        self.concealed += samples
        self._push(out)
        return _to_bytes(out)

    def _start_gap(self) -> None:
        h = self._history
        if len(h) < self._keep or not np.any(h):
            self._cycle = np.zeros(0)
            return
        lag = self._pitch(h)
        cycle = h[-lag:].copy()
        q = max(lag // 4, 1)  # overlap-add the period's start with what precedes it
        ramp = np.arange(1, q + 1) / (q + 1)
        cycle[:q] = cycle[:q] * ramp + h[-lag - q : -lag] * (1 - ramp)
        self._cycle = cycle
        self._phase = 0

    def _pitch(self, h: F64) -> int:
        ref = h[-self._corr :]
        best, best_lag = -np.inf, self._min_lag
        for lag in range(self._min_lag, self._max_lag + 1):
            seg = h[-self._corr - lag : -lag]
            energy = float(np.dot(seg, seg))
            if energy <= 0:
                continue
            score = float(np.dot(ref, seg)) / np.sqrt(energy)
            if score > best:
                best, best_lag = score, lag
        return best_lag

    def _synth(self, samples: int) -> F64:
        c = self._cycle
        idx = (self._phase + np.arange(samples)) % len(c)
        self._phase = int((self._phase + samples) % len(c))
        return c[idx]

    def _gain(self, samples: int) -> F64:
        t = (self._erased + np.arange(samples)) / self.rate  # seconds into the gap
        return np.clip(1.0 - (t - 0.010) * 20.0, 0.0, 1.0)  # 1 for 10 ms, 0 at 60 ms

    def _push(self, x: F64) -> None:
        self._history = np.concatenate([self._history, x])[-self._keep :]


def _to_bytes(x: F64) -> bytes:
    out: bytes = np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()
    return out
