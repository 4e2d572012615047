"""The SIP adapter against a real Debian baresip on loopback: baresip calls the adapter's
extension with a WAV file as its microphone, and records what it hears."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import soxr

from adapters.base import AdapterEvent, Pcm, TalkEnd, TalkStart
from adapters.codecs.opus import OpusDecoder, OpusEncoder
from adapters.sip.adapter import SipAdapter, sip_adapters
from adapters.sip.config import load_sip_config
from tests.adapters.sip.peers import Baresip, noise_signal, read_wav, windowed_match, write_wav
from tests.rigs.tools import skip_unavailable

pytestmark = pytest.mark.slow
RATE = 8000
DEADLINE = 15.0
CODECS = {"PCMU": "PCMU", "PCMA": "PCMA", "opus": "opus/48000/2"}


def make_adapter(**line: object) -> SipAdapter:
    cfg = load_sip_config(
        {"listen": "127.0.0.1:0", "rate": RATE,
         "lines": [{"extension": "7001", "channel": "shiprider-7", **line}]}
    )  # fmt: skip
    ((channel, adapter),) = sip_adapters(cfg)
    assert channel == "shiprider-7"
    return adapter


async def until(predicate, timeout: float = DEADLINE, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def play_paced(adapter: SipAdapter, pcm: np.ndarray) -> None:
    """The channel's audio, one 20 ms frame per 20 ms of the loop clock (no drift)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    frame = RATE // 50
    adapter.talk_started("mx-semar/d2")
    for i in range(len(pcm) // frame):
        adapter.play(pcm[i * frame : (i + 1) * frame].astype("<i2").tobytes(), ("mx-semar/d2",))
        await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - loop.time()))
    adapter.talk_ended("mx-semar/d2", True)


@pytest.mark.parametrize("codec", ["PCMU", "PCMA", "opus"])
async def test_baresip_call_audio_both_ways_and_bye(tmp_path: Path, codec: str) -> None:
    mic = noise_signal(6.0, RATE, seed=1)
    channel_audio = noise_signal(2.0, RATE, seed=2)
    write_wav(tmp_path / "mic.wav", mic)
    with skip_unavailable():
        phone = Baresip(tmp_path / "baresip", tmp_path / "mic.wav", CODECS[codec])
    adapter = make_adapter(floor="vad", vad_threshold_dbfs=-45, hang_time=0.5)
    events: list[AdapterEvent] = []
    await adapter.start(events.append)
    try:
        await phone.start()
        host, port = adapter.endpoint.address
        await phone.command("dial", f"sip:7001@{host}:{port}")
        await until(lambda: any(isinstance(e, TalkStart) for e in events), what="TalkStart")
        await until(lambda: any(c.answered for c in adapter.callers.values()), what="answer")
        await play_paced(adapter, channel_audio)
        # baresip hangs up (BYE) when its WAV ends: the burst ends, the call is gone
        await until(lambda: isinstance(events[-1], TalkEnd) and not adapter.callers,
                    what="BYE")  # fmt: skip
        assert not adapter.endpoint.ua.calls
        await until(lambda: phone.recording() is not None, what="baresip's recording")
    finally:
        await phone.stop()
        await adapter.stop()
    assert [c for _, c in adapter.recent] == [codec.lower()]
    starts = [e for e in events if isinstance(e, TalkStart)]
    assert len(starts) == 1 and starts[0].source.startswith("sip:baresip/")
    heard = np.concatenate(
        [np.frombuffer(e.frame, "<i2").astype(np.float64) for e in events if isinstance(e, Pcm)]
    )
    assert len(heard) >= 4 * RATE  # most of the 6 s
    check_match("baresip -> adapter", mic[RATE // 2 : 5 * RATE], heard, 0.9)
    recording = phone.recording()
    assert recording is not None
    played = read_wav(recording)
    reference = channel_audio[RATE // 4 : RATE * 7 // 4]
    floor = 0.8 if codec != "opus" else opus_alone(channel_audio, reference) - 0.05
    check_match("adapter -> baresip", reference, played, floor)


def opus_alone(pcm: np.ndarray, reference: np.ndarray) -> float:
    """What Opus itself keeps of ``pcm``'s waveform (our encoder at the adapter's rate, a
    48 kHz decoder as baresip's): SILK codes noise and speech perceptually, not sample for
    sample, so a waveform correlation of ~0.7 is the codec's, not the path's."""
    enc, dec = OpusEncoder(RATE), OpusDecoder(48000)
    frame = RATE // 50
    out = b"".join(
        dec.decode(enc.encode(pcm[i : i + frame].astype("<i2").tobytes()))
        for i in range(0, len(pcm) - frame + 1, frame)
    )
    decoded = soxr.resample(np.frombuffer(out, "<i2").astype(np.float64), 48000, RATE)
    scores, _ = windowed_match(reference, decoded)
    return float(np.median(scores))


def check_match(what: str, reference: np.ndarray, heard: np.ndarray, floor: float) -> None:
    """Every 200 ms of ``reference`` is in ``heard`` (correlation ≥ ``floor`` for 90 % of the
    pieces, the rest straddle a re-timer stretch), in order, with the time shift (frames the
    re-timer inserted for late packets on this shared host) bounded."""
    scores, offsets = windowed_match(reference, heard)
    good = sum(s >= floor for s in scores) / len(scores)
    drift = offsets[-1] - offsets[0]
    print(f"{what}: median correlation {np.median(scores):.3f}, {good:.0%} of 200 ms pieces "
          f">= {floor}, {drift / (RATE // 50):.0f} frames inserted")  # fmt: skip
    assert np.median(scores) >= floor and good >= 0.9, (what, scores)
    assert all(b >= a - 2 for a, b in zip(offsets, offsets[1:], strict=False)), (what, offsets)
    assert 0 <= drift <= RATE // 2, (what, offsets)
