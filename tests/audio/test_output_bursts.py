"""Issue 8: output that receivers play — continuous SSRC by default, no stray tail packet."""

from __future__ import annotations

import numpy as np

from adapters.rtp.mapping import load_gateway_config
from adapters.rtp.packet import parse_rtp
from adapters.rtp.stream import PayloadFormat, RtpSender, RtpSenderConfig

PCMU = PayloadFormat.of("pcmu")
T0 = 1_700_000_000.0


def frame(i: int) -> bytes:
    t = (np.arange(320) + 320 * i) / 16000
    return (8000 * np.sin(2 * np.pi * 300 * t)).astype("<i2").tobytes()


def test_continuous_ssrc_is_the_default() -> None:
    assert RtpSenderConfig(PCMU).ssrc_mode == "continuous"
    cfg = {"channels": [{"channel": "c", "output": {"port": 5006, "payload": "pcmu"}}]}
    out = load_gateway_config(cfg)[0].output
    assert out is not None and out.sender.ssrc_mode == "continuous"
    tx = RtpSender(RtpSenderConfig(PCMU, rate=16000, rtcp_interval=None))
    now = T0
    for _burst in range(2):
        tx.start_burst(now)
        for i in range(5):
            tx.send_audio(frame(i), now)
            now += 0.02
        tx.end_burst(now)
        now += 1.0
    pk = [parse_rtp(d) for _k, d in tx.datagrams_to_send()]
    assert len({p.ssrc for p in pk}) == 1
    seqs = [(p.sequence_number - pk[0].sequence_number) & 0xFFFF for p in pk]
    assert seqs == list(range(len(pk)))


def run_burst(tx: RtpSender, key_down_after: float, use_timer: bool) -> list[tuple[float, bytes]]:
    sent: list[tuple[float, bytes]] = []
    now = T0
    tx.start_burst(now)
    for i in range(10):
        tx.send_audio(frame(i), now)
        sent += [(now, d) for k, d in tx.datagrams_to_send() if k == "rtp"]
        now += 0.02
    end = now - 0.02 + key_down_after
    while use_timer and (t := tx.get_timer()) is not None and t < end:
        tx.handle_timer(t)
        sent += [(t, d) for k, d in tx.datagrams_to_send() if k == "rtp"]
    tx.end_burst(end)
    sent += [(end, d) for k, d in tx.datagrams_to_send() if k == "rtp"]
    return sent


def test_no_stray_packet_when_key_down_comes_after_the_seal_wait() -> None:
    # 16 kHz in, PCMU out: the resampler holds ~15 ms back. The gateway keys down only once
    # the talker's seal is checked (here 0.4 s after the last frame).
    tx = RtpSender(RtpSenderConfig(PCMU, rate=16000, rtcp_interval=None))
    sent = run_burst(tx, 0.4, use_timer=True)
    last_audio = T0 + 9 * 0.02
    assert all(t - last_audio <= 0.041 for t, _d in sent), [t - last_audio for t, _ in sent]
    assert len(sent) == 10  # 200 ms in 20 ms packets, the held-back tail right after the audio
    # without the timer (a driver that does not call it) the tail is dropped, not sent late
    tx2 = RtpSender(RtpSenderConfig(PCMU, rate=16000, rtcp_interval=None))
    sent2 = run_burst(tx2, 0.4, use_timer=False)
    assert all(t - last_audio <= 0.001 for t, _d in sent2) and tx2.tails_dropped == 1


def test_audio_resuming_after_a_pause_keeps_its_timestamp_in_time() -> None:
    tx = RtpSender(RtpSenderConfig(PCMU, rate=8000, rtcp_interval=None))
    tx.start_burst(T0)
    tx.send_audio(bytes(320), T0)
    tx.send_audio(bytes(320), T0 + 0.3)  # 0.3 s later, same burst
    a, b = (parse_rtp(d) for _k, d in tx.datagrams_to_send())
    assert (b.timestamp - a.timestamp) & 0xFFFFFFFF == 2400  # 0.3 s at 8 kHz, not 160
