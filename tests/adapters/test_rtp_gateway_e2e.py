"""RTP radio → US gateway → real relay process → Canadian gateway → RTP radio, end to end.

A separate process sends real RTP (PCMU, PCMA, L16, Opus) into gateway A; gateway B's RTP
output is recorded on a UDP socket. L16 in the ``codec: l16`` passthrough mode must come out
bit-identical; through Opus the output must match the input with a normalised
cross-correlation ≥ 0.9 after alignment. One Opus generation keeps about 0.98 on this
signal (measured offline); a wrong resampling, a dropped or repeated frame or a byte-order
slip all decorrelate far below 0.9. Each further Opus generation costs correlation, so the
Opus-in case compares the radio's *decoded* Opus stream (what gateway A hears) with B's L16
output: exactly one generation, the bridge's.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adapters.codecs.opus import OpusDecoder, OpusEncoder
from adapters.rtp.adapter import RtpAdapter
from adapters.rtp.codec import alaw_decode, alaw_encode, resample, ulaw_decode, ulaw_encode
from tests.adapters.gateway_rig import (
    CH,
    align,
    bursts_of,
    close_rig,
    decode_packets,
    input_address,
    open_collector,
    open_rig,
    pcm_array,
    rtp_gateway,
    run_sender,
    speech_like,
    wait_process,
)

pytestmark = pytest.mark.slow

RETIMER_TAIL = 3  # frames of fading concealment after the last packet (adapters.rtp.retimer)


def late_frames(rt: Any) -> int:
    """Frames the input re-timer concealed before the last packet: a packet of the sender
    process came late on this loaded machine (it stalled), its slot was concealed, and the
    packet played after (a stretch) or was dropped (beyond the stretch limit). Each such
    frame is counted by the re-timer; a systematic fault would conceal far more."""
    late = rt.concealed - RETIMER_TAIL
    assert 0 <= late <= 10, f"the re-timer concealed {rt.concealed} frames ({rt})"
    return late


CASES: dict[str, dict[str, Any]] = {
    # payload: RTP payload spec on both sides, the radio's PCM rate, the channel codec
    "pcmu": {"payload": {"name": "pcmu"}, "pt": None, "rate": 8000, "codec": "opus"},
    "pcma": {"payload": {"name": "pcma"}, "pt": None, "rate": 8000, "codec": "opus"},
    "l16": {
        "payload": {"name": "l16", "pt": 97, "clock_rate": 16000},
        "pt": 97,
        "rate": 16000,
        "codec": "l16",
    },
    "l16-opus": {  # wideband radio audio through the normal Opus channel
        "payload": {"name": "l16", "pt": 97, "clock_rate": 16000},
        "pt": 97,
        "rate": 16000,
        "codec": "opus",
    },
    # G.711 channel codecs: narrowband gateways on both sides, G.711 end to end (issue 8)
    "pcmu-g711": {"payload": {"name": "pcmu"}, "pt": None, "rate": 8000, "codec": "pcmu"},
    "pcma-g711": {"payload": {"name": "pcma"}, "pt": None, "rate": 8000, "codec": "pcma"},
    "opus": {
        "payload": {"name": "opus", "pt": 111},
        "out": {"name": "l16", "pt": 97, "clock_rate": 16000},
        "pt": 111,
        "rate": 16000,
        "codec": "opus",
    },
}


def mapping(
    codec: str, payload: dict[str, Any], *, port: int, out_port: int | None, rate: int = 16000
) -> dict[str, Any]:
    channel: dict[str, Any] = {"channel": CH, "codec": codec}
    if out_port is None:
        channel["input"] = {"port": port, "payload": payload, "hang_time": 0.25}
    else:
        channel["output"] = {"port": out_port, "payload": payload, "rtcp_interval": None}
    return {"rate": rate, "channels": [channel]}


async def bridge_once(tmp: Path, name: str, pcm: bytes, rate: int) -> tuple[list[bytes], Any]:
    """Send ``pcm`` as one RTP burst of payload ``name`` through A → relay → B; PCM out."""
    case = CASES[name]
    ch_rate = 8000 if case["codec"] in ("pcmu", "pcma") else 16000
    rig = await open_rig(tmp)
    collector = await open_collector()
    gw_a = rtp_gateway(
        rig.a, mapping(case["codec"], case["payload"], port=0, out_port=None, rate=ch_rate)
    )
    out_payload = case.get("out", case["payload"])
    gw_b = rtp_gateway(
        rig.b,
        mapping(case["codec"], out_payload, port=0, out_port=collector.port, rate=ch_rate),
    )
    try:
        await gw_a.start()
        await gw_b.start()
        (tmp / "in.s16").write_bytes(pcm)
        proc = run_sender(
            input_address(gw_a, CH)[1],
            case["payload"]["name"],
            tmp / "in.s16",
            rate=rate,
            pt=case["pt"],
        )
        await wait_process(proc, 30)
        await collector.wait_quiet(0.6, timeout=30)
        bursts = bursts_of(collector.packets)
        assert len(bursts) == 1, f"expected one RTP burst, got {len(bursts)}"
        packets = [p for _t, p in bursts[0]]
        seqs = [p.sequence_number for p in packets]
        assert all((b - a) % 65536 == 1 for a, b in zip(seqs, seqs[1:]))
        assert packets[0].marker
        stats = gw_b.channels[CH].mixer.stats  # type: ignore[union-attr]
        sender = gw_a.channels[CH].sender.stats  # type: ignore[union-attr]
        out_name = case.get("out", case["payload"])["name"]
        adapter_a = gw_a.adapter(CH)
        assert isinstance(adapter_a, RtpAdapter) and adapter_a.rx is not None
        retimer = adapter_a.rx.receiver.retimer  # type: ignore[attr-defined]
        return decode_packets(packets, out_name, 16000), (stats, sender, retimer.stats)
    finally:
        await gw_a.stop()
        await gw_b.stop()
        collector.close()
        await close_rig(rig)


def assert_exact(ref: bytes, got: bytes, frame: int, rt: Any) -> None:
    """``got`` starts with ``ref`` unchanged. If the input re-timer had to stretch (a packet
    of the sender process came late on this loaded machine, its slot was concealed and it
    played one frame later, cross-faded), every other frame must still be there, in order."""
    if late_frames(rt) == 0:
        assert got[: len(ref)] == ref, "passthrough changed the samples"
        return
    want = [ref[i : i + frame] for i in range(0, len(ref), frame)]
    have = [got[i : i + frame] for i in range(0, len(got), frame)]
    found, j = 0, 0
    for f in want:
        while j < len(have) and have[j] != f:
            j += 1
        if j < len(have):
            found += 1
            j += 1
    # each late frame changes at most the real frame after its concealment (cross-faded in),
    # or is the dropped one
    changed = len(want) - found
    assert changed <= late_frames(rt) + rt.dropped_owed, f"{changed} frames changed ({rt})"


@pytest.mark.parametrize("name", ["pcmu", "pcma", "opus", "l16-opus"])
async def test_codec_path_matches_input(tmp_path: Path, name: str) -> None:
    rate = CASES[name]["rate"]
    pcm = speech_like(rate, 2.0, seed=3)
    out, (mix, snd, rt) = await bridge_once(tmp_path, name, pcm, rate)
    frames = len(pcm) // (rate // 25)
    # All but the tail a hang-time end drops (adapters.rtp.receiver): what the resampler holds
    # back (30 ms from 8 to 16 kHz) and a partial frame; nothing is dropped without resampling.
    # After the last packet the re-timer (adapters.rtp.retimer) conceals up to 3 frames
    # (60 ms, faded out) before it knows the talker stopped.
    tail = 0 if rate == 16000 else 2
    # What the re-timer put out, gateway A sent: every real frame once, and concealment
    # (the tail, and a frame per late packet of the sender process: late_frames)
    assert snd.granted == 1 and snd.sent == rt.frames_out
    real = snd.sent - rt.concealed
    assert frames - tail - rt.dropped_owed <= real <= frames, (real, frames, rt)
    if name == "opus":  # the reference is what the radio's Opus stream carries
        enc, dec = OpusEncoder(rate), OpusDecoder(rate)
        pcm = b"".join(dec.decode(enc.encode(pcm[i : i + 640])) for i in range(0, len(pcm), 640))
    ref, got = pcm_array(pcm), pcm_array(b"".join(out))
    lag, corr = align(ref, got, max_lag=rate // 10)
    assert corr >= 0.9, f"{name}: correlation {corr:.3f} at lag {lag}"
    # Nothing is cut off; the tail is at most the concealment the receiver plays while it
    # waits for more (the jitter buffer's max delay, 200 ms) before it keys down.
    assert 0 <= len(got) - len(ref) <= rate * (220 + 20 * late_frames(rt)) // 1000
    assert mix.decode_errors == 0


async def test_l16_passthrough_is_bit_exact(tmp_path: Path) -> None:
    pcm = speech_like(16000, 2.0, seed=4)
    out, (mix, snd, rt) = await bridge_once(tmp_path, "l16", pcm, 16000)
    # gateway A sent what its re-timer put out: the frames, plus concealment where a packet of
    # the sender process came late (assert_exact then finds every other frame unchanged)
    assert snd.sent == rt.frames_out
    got = b"".join(out)
    assert_exact(pcm, got, 640, rt)
    # then the re-timer's 60 ms of fading concealment (and the far side's, while it waits
    # for the release), then silence until key-down
    assert not any(got[len(pcm) + (2 * RETIMER_TAIL + late_frames(rt)) * 640 :])
    assert mix.played == snd.sent and mix.fec == 0


async def test_espeak_speech_through_opus(tmp_path: Path) -> None:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng is not installed (the synthetic-signal cases still ran)")
    wav = tmp_path / "speech.wav"
    subprocess.run(
        [espeak, "-w", str(wav), "Vessel seven holding position two miles north of the line."],
        check=True,
        timeout=30,
    )
    with wave.open(str(wav), "rb") as w:
        raw, src_rate = w.readframes(w.getnframes()), w.getframerate()
    pcm16 = resample(np.frombuffer(raw, "<i2"), src_rate, 16000)  # 22050 Hz → 16 kHz
    pcm16 = pcm16[: len(pcm16) - len(pcm16) % 640]
    out, (mix, _snd, _rt) = await bridge_once(tmp_path, "l16-opus", pcm16, 16000)
    lag, corr = align(pcm_array(pcm16), pcm_array(b"".join(out)), max_lag=1600)
    assert corr >= 0.9, f"espeak speech: correlation {corr:.3f} at lag {lag}"


@pytest.mark.parametrize("name", ["pcmu-g711", "pcma-g711"])
async def test_g711_channel_codec_is_bit_exact(tmp_path: Path, name: str) -> None:
    pcm = speech_like(8000, 2.0, seed=5)
    encode, decode = (
        (ulaw_encode, ulaw_decode) if name == "pcmu-g711" else (alaw_encode, alaw_decode)
    )
    sent = decode(encode(pcm))  # what the radio's G.711 stream carries
    out, (mix, snd, rt) = await bridge_once(tmp_path, name, pcm, 8000)
    assert snd.sent == rt.frames_out
    got = b"".join(out)
    # Every sample the radio sent comes out as it went in: no Opus, no resampling.
    assert_exact(sent, got, 320, rt)
    assert mix.played == snd.sent and mix.decode_errors == 0
