"""adapters.codecs: L16 byte order, Opus round trip, FEC vs PLC, a missing libopus."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from adapters.codecs import opus as opus_module
from adapters.codecs.opus import OpusDecoder, OpusEncoder
from adapters.codecs.pcm import CodecError, l16_to_pcm, pcm_to_l16

ALL_PCM = np.arange(65536, dtype=np.uint16).view(np.int16).astype("<i2").tobytes()


# --- L16 (RFC 3551 §4.5.11) --------------------------------------------------------------


def test_l16_is_network_byte_order() -> None:
    pcm = np.array([0x0102, -2], dtype="<i2").tobytes()
    assert pcm == b"\x02\x01\xfe\xff"
    assert pcm_to_l16(pcm) == b"\x01\x02\xff\xfe"
    assert l16_to_pcm(b"\x01\x02\xff\xfe") == pcm
    assert l16_to_pcm(pcm_to_l16(ALL_PCM)) == ALL_PCM
    with pytest.raises(CodecError):
        l16_to_pcm(b"\x01")


def tone(rate: int, frames: int, freqs: tuple[float, ...] = (440.0, 1000.0)) -> np.ndarray:
    t = np.arange(frames * rate // 50) / rate
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)
    x = sum(np.sin(2 * np.pi * f * t) for f in freqs) * env
    return (x / len(freqs) * 12000).astype(np.int16)


def best_correlation(ref: np.ndarray, out: np.ndarray, max_lag: int) -> tuple[float, int]:
    """Highest correlation of ``out`` delayed by 0..max_lag against ``ref``."""
    n = min(len(ref), len(out)) - max_lag
    scores = [
        (float(np.corrcoef(ref[:n], out[lag : lag + n])[0, 1]), lag) for lag in range(max_lag)
    ]
    return max(scores)


# --- Opus (RFC 6716) ---------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 16000])
def test_opus_round_trip_of_a_tone_mix(rate: int) -> None:
    x = tone(rate, 50)
    n = rate // 50
    enc, dec = OpusEncoder(rate), OpusDecoder(rate)
    packets = [enc.encode(x[i : i + n].tobytes()) for i in range(0, len(x), n)]
    assert all(0 < len(p) < 200 for p in packets)  # ~24 kbit/s → ~60 bytes per 20 ms
    y = np.frombuffer(b"".join(dec.decode(p) for p in packets), "<i2").astype(float)
    assert len(y) == len(x)
    corr, _lag = best_correlation(x.astype(float), y, n)
    assert corr > 0.9  # measured: 0.99 at 8 kHz, 0.96 at 16 kHz


def voiced(rate: int, frames: int) -> np.ndarray:
    """Speech-like test signal: a gliding 120 Hz pulse-rich tone with syllable envelope.

    SILK codes LBRR (the FEC data) only for frames its VAD calls speech, so steady tones
    would not exercise FEC at all.
    """
    rng = np.random.default_rng(7)
    t = np.arange(frames * rate // 50) / rate
    phase = 2 * np.pi * np.cumsum(120 + 30 * np.sin(2 * np.pi * 1.5 * t)) / rate
    x: np.ndarray = sum(np.sin(k * phase) / k for k in range(1, 20))  # type: ignore[assignment]
    x = x * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2) + 0.05 * rng.standard_normal(len(t))
    out: np.ndarray = (x / np.abs(x).max() * 12000).astype(np.int16)
    return out


def recovery_errors(x: np.ndarray, rate: int) -> tuple[float, float]:
    """Summed squared error (vs. loss-free decoding) of FEC and of PLC over many single losses."""
    n = rate // 50
    enc = OpusEncoder(rate, fec=True, expected_loss_pct=10)
    packets = [enc.encode(x[i : i + n].tobytes()) for i in range(0, len(x) - n + 1, n)]
    ref = OpusDecoder(rate)
    clean = [np.frombuffer(ref.decode(p), "<i2").astype(float) for p in packets]
    fec_err = plc_err = 0.0
    for lost in range(10, len(packets) - 1, 7):
        fec_dec, plc_dec = OpusDecoder(rate), OpusDecoder(rate)
        for p in packets[:lost]:
            fec_dec.decode(p)
            plc_dec.decode(p)
        fec = np.frombuffer(fec_dec.decode_fec(packets[lost + 1]), "<i2").astype(float)
        plc = np.frombuffer(plc_dec.conceal(), "<i2").astype(float)
        fec_err += float(np.sum((fec - clean[lost]) ** 2))
        plc_err += float(np.sum((plc - clean[lost]) ** 2))
    return fec_err, plc_err


@pytest.mark.parametrize("rate", [8000, 16000])
def test_fec_recovers_a_lost_frame_better_than_plc(rate: int) -> None:
    fec_err, plc_err = recovery_errors(voiced(rate, 100), rate)
    assert fec_err < 0.7 * plc_err  # measured: 0.19 (8 kHz) and 0.47 (16 kHz)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_fec_beats_plc_on_synthesised_speech() -> None:
    wav = subprocess.run(
        ["espeak-ng", "--stdout", "Unit four to dispatch, requesting backup at the harbour."],
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout
    data = np.frombuffer(wav[44 : 44 + (len(wav) - 44) // 2 * 2], "<i2")  # 22050 Hz RIFF
    rate = 16000
    x = np.interp(np.arange(0, len(data), 22050 / rate), np.arange(len(data)), data)
    fec_err, plc_err = recovery_errors(x.astype(np.int16), rate)
    assert fec_err < 0.3 * plc_err  # measured: about 0.09


def test_opus_conceal_and_fec_give_one_frame() -> None:
    enc, dec = OpusEncoder(16000), OpusDecoder(16000)
    packet = enc.encode(bytes(640))
    assert len(dec.decode(packet)) == 640
    assert len(dec.conceal()) == 640
    assert len(dec.decode_fec(packet)) == 640


def test_opus_errors_are_codec_errors() -> None:
    enc, dec = OpusEncoder(8000), OpusDecoder(8000)
    with pytest.raises(CodecError):
        enc.encode(bytes(100))  # not 20 ms
    with pytest.raises(CodecError):
        dec.decode(b"")
    with pytest.raises(CodecError):
        dec.decode(b"\xff\xff\xff")  # code 3 packet with an impossible frame count
    with pytest.raises(ValueError):
        OpusDecoder(11025)


def test_missing_libopus_is_reported_with_instructions(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "opuslib", None)  # import now fails like a missing lib
    with pytest.raises(opus_module.OpusUnavailableError, match="libopus0") as info:
        OpusDecoder(16000)
    assert isinstance(info.value, ImportError)
