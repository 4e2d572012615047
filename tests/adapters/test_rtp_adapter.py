"""adapters.rtp.adapter: one RTP mapping behind the adapter interface, over real UDP on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import numpy as np

from adapters.base import AdapterEvent, Pcm, TalkEnd, TalkStart
from adapters.rtp.adapter import RtpAdapter
from adapters.rtp.codec import ulaw_encode
from adapters.rtp.mapping import load_gateway_config
from adapters.rtp.packet import RtpPacket
from tests.adapters.gateway_rig import open_collector


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(wait(), timeout)


def adapter(*, out_port: int | None = None) -> RtpAdapter:
    channel: dict[str, object] = {
        "channel": "c1",
        "priority": "high",
        "input": {"port": 0, "payload": "pcmu", "hang_time": 0.1},
    }
    if out_port is not None:
        channel["output"] = {"port": out_port, "payload": "pcmu", "rtcp_interval": None}
    (mapping,) = load_gateway_config({"rate": 16000, "channels": [channel]})
    return RtpAdapter(mapping)


async def test_an_rtp_burst_becomes_talk_start_pcm_frames_and_talk_end() -> None:
    got: list[AdapterEvent] = []
    ad = adapter()
    assert ad.yields_audio and not ad.plays_audio and ad.rate == 16000
    await ad.start(got.append)
    host, port = ad.input_address
    radio = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for seq in range(10):  # 200 ms of a PCMU tone, 20 ms packets
            t = np.arange(seq * 160, (seq + 1) * 160) / 8000
            payload = ulaw_encode((8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16))
            radio.sendto(RtpPacket(0, seq, seq * 160, 0xBEEF, payload).serialize(), (host, port))
            await asyncio.sleep(0.02)
        await until(lambda: any(isinstance(e, TalkEnd) for e in got))
    finally:
        radio.close()
        await ad.stop()
    source = f"rtp:{port}/0000beef"
    assert got[0] == TalkStart(source, "high")
    frames = [e for e in got if isinstance(e, Pcm)]
    assert all(f.source == source and f.rate == 16000 for f in frames)
    # 200 ms, less the tail a hang-time end drops, plus at most 60 ms of fading concealment
    # after the last packet (the re-timer, adapters.rtp.retimer)
    assert 8 <= len(frames) <= 13
    assert got[-1] == TalkEnd(source)


async def test_talkers_key_one_rtp_burst_until_the_last_one_ends() -> None:
    collector = await open_collector()
    ad = adapter(out_port=collector.port)
    await ad.start(lambda e: None)
    try:
        ad.play(bytes(640), ("ca/a",))  # before talk_started: nothing to key for
        ad.talk_started("ca/a")
        ad.talk_started("us/b")  # a preemption overlap: same burst
        for _ in range(3):
            ad.play(bytes(640), ("ca/a", "us/b"))
        ad.talk_ended("ca/a", True)
        assert ad.keyed
        ad.play(bytes(640), ("us/b",))
        ad.talk_ended("us/b", False)
        assert not ad.keyed
        await until(lambda: len(collector.packets) >= 4)
        ad.talk_started("ca/a")  # a new burst: a new marker, the same SSRC (continuous)
        ad.play(bytes(640), ("ca/a",))
        ad.talk_ended("ca/a", True)
        await until(lambda: len(collector.packets) >= 5)
    finally:
        await ad.stop()
        collector.close()
    packets = [p for _t, p in collector.packets]
    assert [p.marker for p in packets] == [True, False, False, False, True]
    assert len({p.ssrc for p in packets}) == 1  # continuous is the default (issue 8)
    assert [(p.sequence_number - packets[0].sequence_number) & 0xFFFF for p in packets] == [
        0,
        1,
        2,
        3,
        4,
    ]
    assert all(len(p.payload) == 160 for p in packets)  # 16 kHz in, 20 ms of PCMU out
