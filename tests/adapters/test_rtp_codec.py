"""adapters.rtp.codec: G.711 tables against the reference, and the soxr resampler."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from adapters.codecs.pcm import CodecError
from adapters.rtp import codec

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # reference G.711 (Sun g711.c); deprecated, removed in 3.13: tests only

ALL_PCM = np.arange(65536, dtype=np.uint16).view(np.int16).astype("<i2").tobytes()
ALL_CODES = bytes(range(256))


# --- G.711 (ITU-T G.711) -----------------------------------------------------------------


def test_ulaw_encode_matches_reference_for_every_sample() -> None:
    assert codec.ulaw_encode(ALL_PCM) == audioop.lin2ulaw(ALL_PCM, 2)


def test_alaw_encode_matches_reference_for_every_sample() -> None:
    assert codec.alaw_encode(ALL_PCM) == audioop.lin2alaw(ALL_PCM, 2)


def test_ulaw_decode_matches_reference_for_every_code() -> None:
    assert codec.ulaw_decode(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)


def test_alaw_decode_matches_reference_for_every_code() -> None:
    assert codec.alaw_decode(ALL_CODES) == audioop.alaw2lin(ALL_CODES, 2)


def test_g711_known_values() -> None:
    # G.711 Table 1/2: zero is 0xFF in μ-law and 0xD5 in A-law; full scale saturates.
    pcm = np.array([0, 32767, -32768], dtype="<i2").tobytes()
    assert codec.ulaw_encode(pcm) == bytes([0xFF, 0x80, 0x00])
    assert codec.alaw_encode(pcm) == bytes([0xD5, 0xAA, 0x2A])
    assert np.frombuffer(codec.ulaw_decode(b"\x80\x00"), "<i2").tolist() == [32124, -32124]
    assert np.frombuffer(codec.alaw_decode(b"\xaa\x2a"), "<i2").tolist() == [32256, -32256]


def test_g711_accepts_numpy_and_rejects_odd_bytes() -> None:
    x = np.array([1000, -1000], dtype=np.int16)
    assert codec.ulaw_encode(x) == codec.ulaw_encode(x.astype("<i2").tobytes())
    with pytest.raises(CodecError):
        codec.alaw_encode(b"\x00\x01\x02")


# --- resampler (libsoxr) -----------------------------------------------------------------


def tone(rate: int, freq: float, seconds: float = 1.0, amp: float = 10000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def stream(x: np.ndarray, src: int, dst: int, *, flush: bool = True) -> np.ndarray:
    """``x`` through one :class:`Resampler` in 20 ms frames, as the RTP adapter feeds it."""
    r = codec.Resampler(src, dst)
    n = src // 50
    out = b"".join(r.process(x[i : i + n]) for i in range(0, len(x), n))
    if flush:
        out += r.flush()
    return np.frombuffer(out, "<i2").astype(float)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=float) ** 2)))


def level_db(y: np.ndarray, x: np.ndarray) -> float:
    return 20 * np.log10(rms(y) / rms(x))


def residual_db(y: np.ndarray, freq: float, rate: int) -> float:
    """What is left of ``y`` after the best-fitting sine at ``freq`` (THD + noise), in dB."""
    t = np.arange(len(y)) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t), np.ones(len(t))])
    coef, *_ = np.linalg.lstsq(basis.T, y, rcond=None)
    return 20 * np.log10(rms(y - coef @ basis) / rms(y))


def peak_hz(y: np.ndarray, rate: int) -> float:
    """Frequency of the strongest component, to a fraction of a bin (parabolic peak)."""
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    k = int(np.argmax(spectrum[1:-1])) + 1
    a, b, c = np.log(spectrum[k - 1 : k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / len(y)


PAIRS = [(8000, 16000), (16000, 8000), (16000, 48000), (48000, 16000), (48000, 8000)]


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_streamed_frames_come_out_aligned_and_complete(src: int, dst: int) -> None:
    x = tone(src, 440.0, 0.5)
    y = stream(x, src, dst)
    assert len(y) == len(x) * dst // src  # with the flush, nothing is lost or added
    ideal = tone(dst, 440.0, 0.5).astype(float)
    edge = dst // 50  # the first and last frame see the stream's edges
    lags = range(-dst // 1000, dst // 1000 + 1)  # within 1 ms: soxr trims its own delay
    corr = max(np.corrcoef(ideal[edge:-edge], np.roll(y, -lag)[edge:-edge])[0, 1] for lag in lags)
    assert corr > 0.99  # (downsampling delays high frequencies a little more: the docstring)


def test_8k_16k_8k_keeps_frequency_and_level() -> None:
    x = tone(8000, 1000.0, 2.0)
    y = stream(stream(x, 8000, 16000).astype(np.int16), 16000, 8000)
    mid = slice(800, len(x) - 800)
    assert abs(peak_hz(y[mid], 8000) - 1000.0) < 0.5
    assert abs(level_db(y[mid], x[mid])) < 0.05
    assert residual_db(y[mid], 1000.0, 8000) < -70  # measured: -80 dB, the int16 floor


def test_pass_band_is_flat_up_to_3400_hz() -> None:
    # The old windowed-sinc resampler lost 2.7 dB at 3.4 kHz, the top of the telephone band.
    for freq in (300.0, 1000.0, 3000.0, 3400.0):
        x = tone(16000, freq)
        y = stream(x, 16000, 8000)
        assert abs(level_db(y[800:-800], x[1600:-1600])) < 0.1, freq


@pytest.mark.parametrize("freq", [4500.0, 5000.0, 6000.0, 7000.0])
def test_content_above_the_new_nyquist_does_not_alias(freq: float) -> None:
    # Measured: about -80 dB (the int16 rounding floor); the old resampler let 4.5 kHz
    # through at -31 dB.
    x = tone(16000, freq)
    y = stream(x, 16000, 8000)
    assert level_db(y[800:-800], x) < -60


def test_upsampling_leaves_no_images() -> None:
    x = tone(8000, 3000.0)
    y = stream(x, 8000, 16000)[1600:-1600]
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / 16000)
    assert 20 * np.log10(spectrum[freqs > 4200].max() / spectrum.max()) < -80


@pytest.mark.parametrize(("src", "dst", "held_ms"), [(8000, 16000, 30), (16000, 8000, 15)])
def test_every_frame_gets_its_share_with_a_fixed_delay(src: int, dst: int, held_ms: int) -> None:
    """A push-to-talk path cannot wait for 100 ms blocks: after the delay has filled, each
    20 ms in gives 20 ms out, and what soxr holds back is the documented figure."""
    r = codec.Resampler(src, dst)
    x = tone(src, 440.0, 0.4)
    n, m = src // 50, dst // 50
    sizes = [len(r.process(x[i : i + n])) // 2 for i in range(0, len(x), n)]
    held = len(x) * dst // src - sum(sizes)
    assert held == dst * held_ms // 1000
    assert all(s == m for s in sizes[held // m + 1 :])
    assert len(r.flush()) // 2 == held


def test_flush_starts_a_fresh_stream() -> None:
    r = codec.Resampler(16000, 8000)
    x = tone(16000, 440.0, 0.2)
    first = b"".join(r.process(x[i : i + 320]) for i in range(0, len(x), 320)) + r.flush()
    second = b"".join(r.process(x[i : i + 320]) for i in range(0, len(x), 320)) + r.flush()
    assert first == second  # no state carried from one burst into the next


def test_equal_rates_pass_through_and_one_shot_keeps_length() -> None:
    x = tone(16000, 440.0, 0.1)
    r = codec.Resampler(16000, 16000)
    assert r.process(x) == x.tobytes() and r.flush() == b""
    assert len(codec.resample(x, 16000, 8000)) == len(x)  # half the samples, two bytes each
    assert len(codec.resample(x[:333], 8000, 16000)) == 4 * 333
    with pytest.raises(ValueError):
        codec.Resampler(0, 8000)
    with pytest.raises(CodecError):
        codec.Resampler(8000, 16000).process(b"\x00\x01\x02")
