"""adapters.rtp.driver: real UDP RTP between two drivers on loopback (unicast and multicast)."""

from __future__ import annotations

import asyncio
import random

import pytest

from adapters.codecs.pcm import pcm_to_l16
from adapters.errors import AdapterError
from adapters.rtp.driver import RtpReceiverDriver, RtpSenderDriver
from adapters.rtp.stream import (
    Audio,
    BurstEnd,
    BurstStart,
    PayloadFormat,
    RtpEvent,
    RtpReceiver,
    RtpReceiverConfig,
    RtpSender,
    RtpSenderConfig,
    RtpTransportConfig,
)

PCMA = PayloadFormat.of("pcma")
OPUS = PayloadFormat.of("opus", 111)
# 10 frames of PCMA come in at 8 kHz and go out at 16 kHz; the burst ends by hang time, which
# drops what the resampler holds back (up to 11.3 ms) and the partial frame after it.
PCMA_FRAMES = (10 * 320 - 180) // 320


async def exchange(
    fmt: PayloadFormat, rx_transport: RtpTransportConfig, tx_host: str | None = None
) -> tuple[list[RtpEvent], RtpReceiverDriver, RtpSenderDriver]:
    """Send one 200 ms burst and collect the receiver's events until the burst ends."""
    events: asyncio.Queue[RtpEvent] = asyncio.Queue()
    rx = RtpReceiverDriver(
        RtpReceiver(RtpReceiverConfig((fmt,), rate=16000, hang_time=0.15)),
        rx_transport,
        events.put_nowait,
    )
    await rx.start()
    tx: RtpSenderDriver | None = None
    try:
        port = rx.local_address[1]
        dest = RtpTransportConfig(
            port, host=tx_host or "127.0.0.1", group=rx_transport.group, interface="127.0.0.1"
        )
        tx = RtpSenderDriver(RtpSender(RtpSenderConfig(fmt, rate=16000)), dest)
        await tx.start()
        frame = pcm_to_l16(bytes(range(256)) * 2 + bytes(128))  # any 20 ms frame
        tx.start_burst()
        for _ in range(10):
            tx.send_audio(frame)
            await asyncio.sleep(0.005)
        tx.end_burst()
        got: list[RtpEvent] = []
        async with asyncio.timeout(5):
            while not got or not isinstance(got[-1], BurstEnd):
                got.append(await events.get())
        return got, rx, tx
    finally:
        rx.close()
        if tx is not None:
            tx.close()


async def test_unicast_rtp_between_two_drivers() -> None:
    events, rx, tx = await exchange(PCMA, RtpTransportConfig(0, host="127.0.0.1"))
    assert isinstance(events[0], BurstStart) and events[0].ssrc == tx.sender.ssrc
    assert [type(e) for e in events[1:-1]] == [Audio] * PCMA_FRAMES
    assert events[-1] == BurstEnd("hang_time")
    assert rx.receiver.stats.packets == 10
    assert rx.receiver.stats.rtcp == 0  # the SR went to port + 1, not to the RTP port
    assert rx.errors == 0 and tx.errors == 0


async def test_opus_over_udp() -> None:
    events, rx, _tx = await exchange(OPUS, RtpTransportConfig(0, host="127.0.0.1"))
    assert sum(isinstance(e, Audio) for e in events) == 10
    assert rx.receiver.stats.decode_errors == 0


async def test_multicast_on_loopback() -> None:
    # Checked on this host: IP_ADD_MEMBERSHIP on 127.0.0.1 with IP_MULTICAST_LOOP works.
    group = f"239.255.{random.randint(0, 255)}.{random.randint(1, 254)}"
    transport = RtpTransportConfig(0, group=group, interface="127.0.0.1")  # ephemeral port
    events, rx, _tx = await exchange(PCMA, transport)
    assert sum(isinstance(e, Audio) for e in events) == PCMA_FRAMES
    assert rx.receiver.stats.wrong_ssrc == 0


async def test_port_in_use_is_an_adapter_error() -> None:
    first = RtpReceiverDriver(
        RtpReceiver(RtpReceiverConfig((PCMA,))), RtpTransportConfig(0), lambda e: None
    )
    await first.start()
    try:
        second = RtpReceiverDriver(
            RtpReceiver(RtpReceiverConfig((PCMA,))),
            RtpTransportConfig(first.local_address[1]),
            lambda e: None,
        )
        with pytest.raises(AdapterError):
            await second.start()
    finally:
        first.close()


async def test_handler_errors_are_counted_not_fatal() -> None:
    def broken(event: RtpEvent) -> None:
        raise RuntimeError("consumer bug")

    rx = RtpReceiverDriver(
        RtpReceiver(RtpReceiverConfig((PCMA,), hang_time=0.05)), RtpTransportConfig(0), broken
    )
    await rx.start()
    tx = RtpSenderDriver(
        RtpSender(RtpSenderConfig(PCMA, rate=8000)), RtpTransportConfig(rx.local_address[1])
    )
    await tx.start()
    try:
        tx.start_burst()
        tx.send_audio(bytes(320))
        tx.end_burst()
        async with asyncio.timeout(5):
            while rx.errors < 3:  # BurstStart, Audio, BurstEnd
                await asyncio.sleep(0.01)
        assert rx.receiver.stats.packets == 1
    finally:
        rx.close()
        tx.close()


async def test_a_stalled_loop_reads_the_socket_before_it_conceals() -> None:
    """The loop is blocked for 120 ms while the radio goes on sending 20 ms packets (a busy
    host, a long collection): when the retimer's timer runs, late, the packets that came in
    the meantime are in the socket, not lost. Without the driver's drain the timer finds one
    of them read and conceals the rest (3 frames), then plays them as well: the transmission
    grows by the concealment."""
    import socket as _socket
    import time

    from adapters.rtp.packet import RtpPacket
    from adapters.rtp.retimer import RetimedReceiver

    l16 = PayloadFormat.of("l16", 97, 16000)
    got: list[RtpEvent] = []
    rx = RtpReceiverDriver(
        RetimedReceiver(RtpReceiverConfig((l16,), rate=16000, hang_time=0.3)),
        RtpTransportConfig(0),
        got.append,
    )
    await rx.start()
    out = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        dest = rx.local_address
        frame = bytes(640)

        def packet(i: int) -> bytes:
            return RtpPacket(97, i, i * 320, 7, frame, marker=i == 0).serialize()

        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(20):
            if i == 5:  # the loop stops here, the radio does not
                for j in range(5, 11):
                    out.sendto(packet(j), dest)
                    time.sleep(0.020)
                continue
            if 5 < i < 11:
                continue
            out.sendto(packet(i), dest)
            await asyncio.sleep(max(start + (i + 1) * 0.020 - loop.time(), 0))
        async with asyncio.timeout(5):
            while not got or not isinstance(got[-1], BurstEnd):
                await asyncio.sleep(0.02)
    finally:
        out.close()
        rx.close()
    stats = rx.receiver.retimer.stats  # type: ignore[attr-defined]
    frames = sum(isinstance(e, Audio) for e in got)
    assert rx.drained >= 1
    # 20 frames in, each out once; the only concealment is the tail after the last packet
    assert stats.frames_in == 20 and stats.concealed <= 3, stats
    assert frames == 20 + stats.concealed, (frames, stats)
