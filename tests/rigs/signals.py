"""Test signals and how a received one is compared with what was sent.

- :func:`tone_sequence`: a known signal (a few tones of different pitch with smooth edges),
  not periodic as a whole, so the best alignment against a copy is unique.
- :func:`noise`: seeded noise, for checks that must notice any shift in time.
- :func:`speech`: a sentence spoken by espeak-ng and resampled by sox (both Debian).
- :func:`align`: the lag and normalized correlation of the best alignment of ``out`` on
  ``ref`` (FFT cross-correlation; 1.0 is identical up to gain).
"""

from __future__ import annotations

import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tests.rigs.tools import require_tool

Samples = npt.NDArray[np.float64]
SENTENCE = (
    "Sarnia, this is Blaine. The vessel is holding position two miles north of the line. "
    "Request you keep channel seven clear until the boarding team reports back."
)


def tone_sequence(rate: int, seconds: float = 1.5, amplitude: float = 0.5) -> Samples:
    """Consecutive tones (440, 700, 1100, 1700 Hz, ...), each with a raised-cosine edge."""
    freqs = (440.0, 700.0, 1100.0, 1700.0, 550.0, 900.0)
    n = int(rate * seconds)
    seg = max(1, n // len(freqs))
    t = np.arange(seg) / rate
    edge = min(seg // 4, int(0.01 * rate))
    env = np.ones(seg)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, edge))
    env[:edge], env[seg - edge :] = ramp, ramp[::-1]
    parts = [amplitude * env * np.sin(2 * np.pi * f * t) for f in freqs]
    out = np.concatenate(parts)
    return np.pad(out, (0, max(0, n - out.size)))[:n]


def noise(rate: int, seconds: float, seed: int = 0, amplitude: float = 0.2) -> Samples:
    """Seeded Gaussian noise: any misalignment, even of one sample, decorrelates it."""
    rng = np.random.default_rng(seed)
    return np.clip(amplitude * rng.standard_normal(int(rate * seconds)), -0.99, 0.99)


def to_pcm16(samples: Samples) -> bytes:
    clipped = np.clip(np.round(samples * 32767.0), -32768, 32767)
    return clipped.astype("<i2").tobytes()


def from_pcm16(pcm: bytes) -> Samples:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0


def write_wav(path: Path, samples: Samples, rate: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(to_pcm16(samples))
    return path


def read_wav(path: Path) -> tuple[Samples, int]:
    """Mono 16-bit WAV → samples in [-1, 1) and the sample rate."""
    with wave.open(str(path), "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(
                f"{path}: want mono 16-bit, got {w.getnchannels()}ch/{w.getsampwidth()}B"
            )
        return from_pcm16(w.readframes(w.getnframes())), w.getframerate()


def speech(rate: int, text: str = SENTENCE) -> Samples:
    """``text`` spoken by espeak-ng, resampled by sox to ``rate`` Hz mono 16-bit."""
    espeak, sox = require_tool("espeak-ng"), require_tool("sox")
    with tempfile.TemporaryDirectory(prefix="cb-speech-") as tmp:
        raw, out = Path(tmp, "raw.wav"), Path(tmp, "speech.wav")
        subprocess.run([espeak, "-s", "150", "-w", str(raw), text], check=True, timeout=60)
        subprocess.run(
            [sox, str(raw), "-r", str(rate), "-b", "16", "-c", "1", str(out)],
            check=True,
            timeout=60,
        )
        samples, got = read_wav(out)
    assert got == rate, (got, rate)
    return samples


def align(ref: Samples, out: Samples, max_lag: int | None = None) -> tuple[int, float]:
    """``(lag, corr)``: ``out[lag:]`` matches ``ref`` best, with normalized correlation
    ``corr`` over the overlap (lag may be negative: ``out`` starts late). 0.0 if either is
    silent."""
    if ref.size == 0 or out.size == 0:
        return 0, 0.0
    size = 1 << int(np.ceil(np.log2(ref.size + out.size)))
    xc = np.fft.irfft(np.fft.rfft(out, size) * np.conj(np.fft.rfft(ref, size)), size)
    lags = np.concatenate([np.arange(0, out.size), np.arange(-ref.size + 1, 0)])
    values = np.concatenate([xc[: out.size], xc[size - ref.size + 1 :]])
    if max_lag is not None:
        keep = np.abs(lags) <= max_lag
        lags, values = lags[keep], values[keep]
    lag = int(lags[int(np.argmax(values))])
    return lag, correlation_at(ref, out, lag)


def correlation_at(ref: Samples, out: Samples, lag: int) -> float:
    """Normalized correlation of ``ref`` with ``out`` shifted by ``lag`` (see :func:`align`)."""
    a, b = (ref, out[lag:]) if lag >= 0 else (ref[-lag:], out)
    n = min(a.size, b.size)
    if n == 0:
        return 0.0
    a, b = a[:n], b[:n]
    denom = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    return float(np.dot(a, b) / denom) if denom > 0 else 0.0


def overlap(ref: Samples, out: Samples, lag: int) -> tuple[Samples, Samples]:
    """The aligned overlapping parts of ``ref`` and ``out`` (for PESQ), same length."""
    a, b = (ref, out[lag:]) if lag >= 0 else (ref[-lag:], out)
    n = min(a.size, b.size)
    return a[:n], b[:n]
