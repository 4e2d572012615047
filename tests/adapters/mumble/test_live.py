"""The Mumble client and adapter against a real murmurd (Debian's mumble-server, 1.3.4).

murmurd runs on 127.0.0.1 with our own certificate, pinned by fingerprint. SuperUser makes
the permanent channel ``Dispatch``; the bridge (the adapter) joins it; a second Mumble user,
``alice``, is a second connection of our own client (no Mumble client on PyPI works on
Python 3.11 with current protobuf: see the adapter's note). Every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import math
import os
import struct
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from adapters.base import AdapterEvent, Pcm, TalkEnd, TalkStart, Text
from adapters.codecs.opus import OpusDecoder, OpusEncoder
from adapters.mumble.adapter import MumbleAdapter
from adapters.mumble.client import (
    ClientConfig,
    Closed,
    MumbleEvent,
    TextReceived,
    VoiceReceived,
)
from adapters.mumble.config import MumbleConfig
from adapters.mumble.driver import MumbleCertificateError, MumbleDriver, ServerConfig
from tests.adapters.mumble.murmur import Murmur, Peer, make_channel, until
from tests.rigs.tcp_proxy import TcpProxy
from tests.rigs.tools import skip_unavailable

RATE = 48000
Bridge = tuple[MumbleAdapter, list[AdapterEvent]]
FRAME = 960  # samples in 20 ms


@pytest.fixture(scope="module")
def murmur() -> Iterator[Murmur]:
    with skip_unavailable():
        server = Murmur()
    try:
        server.start()
        asyncio.run(make_channel(server, "Dispatch"))
        yield server
    finally:
        server.close()


def _server(m: Murmur, cert_file: str | None = None, key_file: str | None = None) -> ServerConfig:
    return ServerConfig("127.0.0.1", m.port, fingerprint=m.fingerprint, min_delay=0.2,
                        cert_file=cert_file, key_file=key_file)  # fmt: skip


@pytest.fixture
async def bridge(murmur: Murmur, tmp_path: Path) -> AsyncIterator[Bridge]:
    server = _server(murmur, cert_file=str(tmp_path / "b.crt"), key_file=str(tmp_path / "b.key"))
    adapter = MumbleAdapter(MumbleConfig(server, ClientConfig("bridge", "Dispatch"), rate=RATE))
    got: list[AdapterEvent] = []
    await adapter.start(got.append)
    assert adapter.driver is not None
    await until(lambda: adapter.driver is not None and adapter.driver.ready, 5)
    yield adapter, got
    await adapter.stop()


def tone(n: int) -> bytes:
    """Frame ``n`` of a 1 s sweep 300 → 1300 Hz (each frame differs)."""
    freq = 300 + 1000 * n / 50
    samples = (
        int(8000 * math.sin(2 * math.pi * freq * (n * FRAME + i) / RATE)) for i in range(FRAME)
    )
    return struct.pack(f"<{FRAME}h", *samples)


OPUS_DELAY = 312  # samples: libopus' algorithmic delay at 48 kHz (6.5 ms)


def heard_vs_sent(heard: bytes, sent: bytes, skip: int = 10) -> float:
    """Correlation of decoded audio with the source, Opus delay removed, first frames skipped."""
    lag, start = 2 * OPUS_DELAY, 2 * FRAME * skip
    return correlation(heard[lag + start :], sent[start : len(sent) - lag])


def correlation(a: bytes, b: bytes) -> float:
    x, y = struct.unpack(f"<{len(a) // 2}h", a), struct.unpack(f"<{len(b) // 2}h", b)
    num = sum(p * q for p, q in zip(x, y, strict=True))
    den = math.sqrt(sum(p * p for p in x) * sum(q * q for q in y))
    return num / den if den else 0.0


async def test_bridge_client_certificate_is_made_once_mode_0600(
    bridge: Bridge,
    tmp_path: Path,
) -> None:
    key = tmp_path / "b.key"
    assert key.stat().st_mode & 0o777 == 0o600 and (tmp_path / "b.crt").exists()


async def test_text_both_ways(
    murmur: Murmur,
    bridge: Bridge,
) -> None:
    adapter, got = bridge
    async with Peer(murmur, "alice") as alice:
        alice.driver.send_text("ready &amp; <b>waiting</b><br/>over")
        await until(lambda: any(isinstance(e, Text) for e in got), 5)
        assert [e for e in got if isinstance(e, Text)] == [
            Text("mumble:alice", "ready & waiting\nover")
        ]
        adapter.post("copy <that>", "us-cbp/ops-1")
        await until(lambda: alice.of(TextReceived), 5)
        (line,) = alice.of(TextReceived)
        assert line.name == "bridge" and line.message == "<b>us-cbp/ops-1</b>: copy &lt;that&gt;"


async def test_one_second_of_opus_between_two_users_frames_intact_in_order(murmur: Murmur) -> None:
    encoder = OpusEncoder(RATE, 40000, fec=False)
    packets = [encoder.encode(tone(n)) for n in range(50)]
    async with Peer(murmur, "alice") as alice, Peer(murmur, "bob") as bob:
        for n, packet in enumerate(packets):
            assert alice.driver.send_voice(packet, last=n == 49)
            await asyncio.sleep(0.02)  # real-time pacing (murmurd polices bandwidth)
        await until(lambda: len(bob.of(VoiceReceived)) == 50, 5)
        voice = bob.of(VoiceReceived)
        assert [v.opus for v in voice] == packets
        assert [v.sequence for v in voice] == list(range(0, 100, 2))
        assert [v.last for v in voice] == [False] * 49 + [True]
        assert {v.name for v in voice} == {"alice"}


async def test_mumble_speech_becomes_a_talk_burst(
    murmur: Murmur,
    bridge: Bridge,
) -> None:
    adapter, got = bridge
    encoder = OpusEncoder(RATE, 40000, fec=False)
    packets = [encoder.encode(tone(n)) for n in range(50)]
    reference = OpusDecoder(RATE)
    expected = [reference.decode(p) for p in packets]
    async with Peer(murmur, "alice") as alice:
        for n, packet in enumerate(packets):
            alice.driver.send_voice(packet, last=n == 49)
            await asyncio.sleep(0.02)
        await until(lambda: any(isinstance(e, TalkEnd) for e in got), 5)
    assert got[0] == TalkStart("mumble:alice", "normal") and got[-1] == TalkEnd("mumble:alice")
    frames = [e.frame for e in got if isinstance(e, Pcm)]
    assert frames == expected  # decoded exactly as a fresh libopus decoder does
    assert heard_vs_sent(b"".join(frames), b"".join(tone(n) for n in range(50))) > 0.8


async def test_crossband_burst_is_spoken_into_mumble(
    murmur: Murmur,
    bridge: Bridge,
) -> None:
    adapter, _ = bridge
    async with Peer(murmur, "alice") as alice:
        adapter.talk_started("us-cbp/ops-1")
        for n in range(50):
            adapter.play(tone(n), ("us-cbp/ops-1",))
            await asyncio.sleep(0.02)
        adapter.talk_ended("us-cbp/ops-1", verified=True)
        await until(lambda: any(v.last for v in alice.of(VoiceReceived)), 5)
        voice = alice.of(VoiceReceived)
        assert len(voice) == 51 and [v.last for v in voice].index(True) == 50
        assert [v.sequence for v in voice] == sorted(v.sequence for v in voice)
        decoder = OpusDecoder(RATE)
        heard = b"".join(decoder.decode(v.opus) for v in voice[:50])
        sent = b"".join(tone(n) for n in range(50))
        assert heard_vs_sent(heard, sent) > 0.8


async def test_mumble_talker_denied_while_crossband_holds_the_floor(
    murmur: Murmur,
    bridge: Bridge,
) -> None:
    adapter, got = bridge
    encoder = OpusEncoder(RATE, 40000, fec=False)
    async with Peer(murmur, "alice") as alice:
        adapter.talk_started("us-cbp/ops-1")
        for n in range(5):
            alice.driver.send_voice(encoder.encode(tone(n)))
            await asyncio.sleep(0.02)
        await until(lambda: alice.of(TextReceived), 5)
        assert "floor is held by us-cbp/ops-1" in alice.of(TextReceived)[0].message
        assert not any(isinstance(e, TalkStart) for e in got) and adapter.stats["denied"] == 1
        adapter.talk_ended("us-cbp/ops-1", verified=False)


async def test_murmurd_killed_and_restarted_reconnects_and_traffic_resumes(
    murmur: Murmur,
    bridge: Bridge,
) -> None:
    adapter, got = bridge
    assert adapter.driver is not None
    before = adapter.driver.sessions
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await asyncio.to_thread(murmur.restart, True)  # SIGKILL, then start again
    listening = loop.time() - t0
    await until(lambda: adapter.driver is not None and adapter.driver.sessions > before
                 and adapter.driver.ready, 10)  # fmt: skip
    reconnect_s = loop.time() - t0
    print(f"murmurd killed: listening again after {listening:.2f} s, bridge back in its "
          f"channel after {reconnect_s:.2f} s")  # fmt: skip
    assert reconnect_s < 10
    async with Peer(murmur, "carol") as carol:
        carol.driver.send_text("back")
        await until(lambda: Text("mumble:carol", "back") in got, 5)


async def test_talker_leaving_mid_burst_ends_it(murmur: Murmur, bridge: Bridge) -> None:
    adapter, got = bridge
    encoder = OpusEncoder(RATE, 40000, fec=False)
    async with Peer(murmur, "dave") as dave:
        for n in range(5):
            dave.driver.send_voice(encoder.encode(tone(n)))  # never marked last
            await asyncio.sleep(0.02)
        await until(lambda: sum(isinstance(e, Pcm) for e in got) == 5, 5)
        assert adapter.driver is not None and adapter.driver.ready
    # dave disconnected mid-burst: the burst ends (UserRemove, or at worst the hang time)
    await until(lambda: isinstance(got[-1], TalkEnd), 5)
    assert got[0] == TalkStart("mumble:dave") and got[-1] == TalkEnd("mumble:dave")


async def test_chat_posted_while_the_link_is_down_arrives_once_after_reconnect(
    murmur: Murmur, tmp_path: Path
) -> None:
    async with (
        TcpProxy(("127.0.0.1", murmur.port), on_outage="reset") as proxy,
        Peer(murmur, "erin") as erin,
    ):
        host, port = proxy.address
        cert, key = str(tmp_path / "p.crt"), str(tmp_path / "p.key")
        server = ServerConfig(host, port, fingerprint=murmur.fingerprint, min_delay=0.1,
                              cert_file=cert, key_file=key)  # fmt: skip
        adapter = MumbleAdapter(MumbleConfig(server, ClientConfig("proxied", "Dispatch")))
        await adapter.start(lambda event: None)
        try:
            driver = adapter.driver
            assert driver is not None
            await until(lambda: driver.ready, 5)
            proxy.link.set_down()
            await until(lambda: not driver.ready, 5)
            adapter.post("one", "us-cbp/ops-1")
            adapter.post("two", "us-cbp/ops-1")
            proxy.link.set_up()
            await until(lambda: driver.ready and driver.sessions == 2, 10)
            adapter.post("after", "us-cbp/ops-1")  # TCP keeps order: a duplicate comes before
            await until(lambda: any("after" in t.message for t in erin.of(TextReceived)), 5)
        finally:
            await adapter.stop()
        assert [t.message.split(": ")[1] for t in erin.of(TextReceived)] == ["one", "two", "after"]


async def test_a_hung_server_is_a_dead_link_dropped_and_reconnected(murmur: Murmur) -> None:
    events: list[MumbleEvent] = []
    quick = ClientConfig("watcher", "Dispatch", ping_interval=0.5, timeout=2.0)
    server = ServerConfig("127.0.0.1", murmur.port, fingerprint=murmur.fingerprint,
                          connect_timeout=1.0, min_delay=0.1, max_delay=0.5)  # fmt: skip
    driver = MumbleDriver(server, quick, events.append)
    await driver.start()
    try:
        murmur.pause(True)
        try:
            await until(lambda: Closed("ping-timeout") in events, 5)
        finally:
            murmur.pause(False)
        await until(lambda: driver.ready and driver.sessions >= 2, 10)
    finally:
        await driver.stop()


async def test_server_verified_against_a_ca_file(murmur: Murmur, tmp_path: Path) -> None:
    good = ServerConfig("127.0.0.1", murmur.port, ca_file=str(murmur.dir / "cert.pem"))
    driver = MumbleDriver(good, ClientConfig("ca-user"), lambda event: None)
    await driver.start(5)
    await driver.stop()
    other = Murmur.self_signed_elsewhere(tmp_path)
    bad = ServerConfig("127.0.0.1", murmur.port, ca_file=other)
    driver = MumbleDriver(bad, ClientConfig("ca-user"), lambda event: None)
    with pytest.raises(MumbleCertificateError, match="does not verify"):
        await driver.start(5)


async def test_wrong_fingerprint_is_refused(murmur: Murmur) -> None:
    wrong = "00" * 32
    driver = MumbleDriver(
        ServerConfig("127.0.0.1", murmur.port, fingerprint=wrong), ClientConfig("x"), print
    )
    with pytest.raises(MumbleCertificateError, match="refusing") as err:
        await driver.start(5)
    assert murmur.fingerprint in str(err.value)


def test_ci_has_murmurd() -> None:
    if os.environ.get("CI"):
        assert os.path.exists("/usr/sbin/murmurd")
