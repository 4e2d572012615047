"""The Mumble adapter's mapping, on a fake driver: voice → bursts (one talker, hang time,
denials told in chat), Crossband bursts → voice, text both ways; and its config loader."""

from __future__ import annotations

import asyncio
import math
import os
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.base import AdapterEvent, EmergencyState, Pcm, TalkEnd, TalkStart, Text
from adapters.codecs.opus import OpusDecoder, OpusEncoder
from adapters.errors import AdapterConfigError
from adapters.mumble.adapter import MumbleAdapter, html_to_text
from adapters.mumble.client import (
    ClientConfig,
    Closed,
    Joined,
    MumbleEvent,
    TextReceived,
    UserLeft,
    VoiceReceived,
)
from adapters.mumble.config import MumbleConfig, load_mumble_config
from adapters.mumble.driver import ServerConfig

RATE = 16000
FP = "ab" * 32


class FakeDriver:
    def __init__(self, server: ServerConfig, client: ClientConfig,
                 on_event: Callable[[MumbleEvent], None]) -> None:  # fmt: skip
        self.on_event = on_event
        self.texts: list[str] = []
        self.voice: list[tuple[bytes, bool]] = []
        self.comments: list[str] = []
        self.ready = True
        self.sessions = 1

    async def start(self, timeout: float) -> None:
        pass

    async def stop(self) -> None:
        self.ready = False

    def send_text(self, message: str) -> None:
        self.texts.append(message)

    def send_voice(self, opus: bytes, last: bool = False) -> bool:
        self.voice.append((opus, last))
        return True

    def set_comment(self, comment: str) -> None:
        self.comments.append(comment)


def config(hang_time: float) -> MumbleConfig:
    server = ServerConfig("127.0.0.1", 64738, fingerprint=FP)
    client = ClientConfig("bridge", "Dispatch")
    return MumbleConfig(server, client, rate=RATE, hang_time=hang_time)


async def started(hang_time: float = 0.3) -> tuple[MumbleAdapter, FakeDriver, list[AdapterEvent]]:
    adapter = MumbleAdapter(config(hang_time), driver=FakeDriver)
    got: list[AdapterEvent] = []
    await adapter.start(got.append)
    driver = adapter.driver
    assert isinstance(driver, FakeDriver)
    return adapter, driver, got


def tone(n: int, rate: int = 48000, ms: int = 20) -> bytes:
    count = rate * ms // 1000
    return struct.pack(
        f"<{count}h",
        *(int(6000 * math.sin(2 * math.pi * 440 * (n * count + i) / rate)) for i in range(count)),
    )


def talk(session: int, name: str, n: int, *, last: bool = False, ms: int = 20) -> VoiceReceived:
    opus = OpusEncoder(48000).encode(tone(n)) if ms == 20 else _encode40(n)
    return VoiceReceived(session, name, n * 2, opus, last)


def _encode40(n: int) -> bytes:
    import opuslib

    return bytes(opuslib.Encoder(48000, 1, opuslib.APPLICATION_VOIP).encode(tone(n, ms=40), 1920))


async def test_voice_becomes_one_burst_with_20_ms_frames() -> None:
    adapter, driver, got = await started()
    for n in range(5):
        driver.on_event(talk(2, "alice", n, last=n == 4))
    assert got[0] == TalkStart("mumble:alice", "normal") and got[-1] == TalkEnd("mumble:alice")
    frames = [e for e in got if isinstance(e, Pcm)]
    assert len(frames) == 5 and all(f.rate == RATE and len(f.frame) == 640 for f in frames)
    await adapter.stop()


async def test_40_ms_packets_are_cut_into_20_ms_frames_and_decoded_at_the_adapter_rate() -> None:
    adapter, driver, got = await started()
    driver.on_event(VoiceReceived(2, "alice", 0, _encode40(0), False))
    driver.on_event(VoiceReceived(2, "alice", 4, _encode40(1), True))
    expected = OpusDecoder(RATE)
    pcm = expected.decode(_encode40(0)) + expected.decode(_encode40(1))
    assert [e.frame for e in got if isinstance(e, Pcm)] == [
        pcm[i : i + 640] for i in (0, 640, 1280, 1920)
    ]
    await adapter.stop()


async def test_a_sequence_gap_is_concealed_to_keep_timing() -> None:
    adapter, driver, got = await started()
    driver.on_event(talk(2, "alice", 0))
    driver.on_event(talk(2, "alice", 3))  # sequence 6: frames 1 and 2 (seq 2, 4) are lost
    assert sum(isinstance(e, Pcm) for e in got) == 4
    await adapter.stop()


async def test_hang_time_ends_a_burst_whose_terminator_was_lost() -> None:
    adapter, driver, got = await started(hang_time=0.05)
    driver.on_event(talk(2, "alice", 0))
    async with asyncio.timeout(2):
        while not got or not isinstance(got[-1], TalkEnd):
            await asyncio.sleep(0.01)
    assert got[-1] == TalkEnd("mumble:alice")
    await adapter.stop()


async def test_second_mumble_talker_is_denied_and_told_once() -> None:
    adapter, driver, got = await started()
    driver.on_event(talk(2, "alice", 0))
    for n in range(3):
        driver.on_event(talk(7, "bob", n))
    assert not any(isinstance(e, TalkStart) and e.source == "mumble:bob" for e in got)
    assert driver.texts == ["bob: not relayed to Crossband, the floor is held by mumble:alice"]
    driver.on_event(UserLeft(2, "alice"))
    assert got[-1] == TalkEnd("mumble:alice")
    await adapter.stop()


async def test_a_floor_denial_is_told_to_the_mumble_talker_once() -> None:
    adapter, driver, got = await started()
    driver.on_event(talk(2, "alice", 0))
    adapter.floor_denied("mumble:alice", "ca-rcmp/ops-9")
    adapter.floor_denied("mumble:alice", "ca-rcmp/ops-9")
    adapter.floor_denied("mumble:bob", "ca-rcmp/ops-9")  # not the burst in progress
    assert driver.texts == ["alice: not relayed to Crossband, the floor is held by ca-rcmp/ops-9"]
    await adapter.stop()


async def test_connection_loss_ends_the_burst() -> None:
    adapter, driver, got = await started()
    driver.on_event(talk(2, "alice", 0))
    driver.on_event(Closed("eof"))
    assert got[-1] == TalkEnd("mumble:alice")
    await adapter.stop()


async def test_crossband_burst_into_mumble_with_comment_and_terminator() -> None:
    adapter, driver, got = await started()
    adapter.talk_started("us-cbp/ops-1")
    for n in range(3):
        adapter.play(tone(n, RATE), ("us-cbp/ops-1",))
    driver.on_event(talk(2, "alice", 0))  # a Mumble user talks over it: denied
    adapter.talk_ended("us-cbp/ops-1", verified=True)
    assert [last for _, last in driver.voice] == [False, False, False, True]
    assert driver.comments == ["Crossband: us-cbp/ops-1 speaking",
                               "Crossband: last us-cbp/ops-1 (seal verified)"]  # fmt: skip
    assert driver.texts == ["alice: not relayed to Crossband, the floor is held by us-cbp/ops-1"]
    assert got == []
    await adapter.stop()


async def test_chat_waits_while_the_bridge_is_away_and_goes_out_once_on_rejoin() -> None:
    adapter, driver, _ = await started()
    driver.ready = False
    adapter.post("one", "us-cbp/ops-1")
    adapter.post("two", "us-cbp/ops-1")
    assert driver.texts == []
    driver.ready = True
    driver.on_event(Joined(3, "Dispatch"))
    driver.on_event(Joined(3, "Dispatch"))  # a second join sends nothing again
    assert driver.texts == ["<b>us-cbp/ops-1</b>: one", "<b>us-cbp/ops-1</b>: two"]
    driver.ready = False
    for n in range(150):
        adapter.post(str(n), "x")
    assert adapter.stats["texts_dropped"] == 50
    await adapter.stop()


async def test_text_both_ways_and_emergencies() -> None:
    adapter, driver, got = await started()
    driver.on_event(TextReceived(2, "alice", "a &lt; b<br>c <i>d</i>", False))
    driver.on_event(TextReceived(2, "alice", "<img src=x>", False))  # nothing left: dropped
    assert got == [Text("mumble:alice", "a < b\nc d")]
    adapter.post("<script>", "us-cbp/ops-1")
    adapter.emergency(EmergencyState(True, "us-cbp/ops-2", verified=False))
    adapter.emergency(EmergencyState(False, "us-cbp/ops-2", verified=True))
    assert driver.texts == [
        "<b>us-cbp/ops-1</b>: &lt;script&gt;",
        "<b>EMERGENCY raised by us-cbp/ops-2</b> [relay's claim, unverified]",
        "<b>emergency cleared (us-cbp/ops-2)</b> [signed]",
    ]
    await adapter.stop()


def test_html_to_text() -> None:
    assert html_to_text("<p>one</p><p>two &amp; three</p>") == "one\ntwo & three"


def test_config_loader(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    os.chmod(pw, 0o600)
    north = {"mumble": "Dispatch/North", "channel": "shiprider-7", "username": "cb-north"}
    south = {"mumble": "Dispatch/South", "channel": "shiprider-8", "username": "cb-south",
             "priority": "high", "cert_file": "s.crt", "key_file": "s.key"}  # fmt: skip
    spec = {"host": "m.example", "fingerprint": "AB:" * 31 + "AB", "password_file": str(pw),
            "cert_file": "n.crt", "key_file": "n.key", "channels": [north, south]}  # fmt: skip
    a, b = load_mumble_config(spec)
    assert a.server.fingerprint == FP and a.client.password == "s3cret"
    assert (a.channel, a.client.channel, a.client.username) == ("shiprider-7", "Dispatch/North",
                                                                "cb-north")  # fmt: skip
    assert a.server.cert_file == "n.crt" and b.server.cert_file == "s.crt"
    assert b.priority == "high" and a.rate == 16000


CH = {"channel": "c", "username": "u"}


@pytest.mark.parametrize(("spec", "setting", "problem"), [
    ({"host": "h", "channels": [CH]}, "mumble", "fingerprint"),
    ({"host": "h", "fingerprint": "xx", "channels": [CH]}, "mumble.channels[0]", "SHA-256"),
    ({"fingerprint": FP, "channels": [CH]}, "mumble.host", "required"),
    ({"host": "h", "fingerprint": FP, "channels": []}, "mumble.channels", "non-empty"),
    ({"host": "h", "fingerprint": FP, "rate": 44100, "channels": [CH]}, "mumble.channels[0]",
     "rate"),
    ({"host": "h", "fingerprint": FP, "insecure": True, "channels": [CH]}, "mumble", "insecure"),
    ({"host": "h", "fingerprint": FP, "channels": [{"channel": "c"}]},
     "mumble.channels[0].username", "required"),
    ({"host": "h", "fingerprint": FP, "channels": [CH, CH]}, "mumble.channels", "username"),
    ({"host": "h", "fingerprint": FP, "cert_file": "x", "key_file": "y",
      "channels": [CH, CH | {"username": "v"}]}, "mumble.channels", "cert_file"),
])  # fmt: skip
def test_config_refusals(spec: dict[str, object], setting: str, problem: str) -> None:
    with pytest.raises(AdapterConfigError) as err:
        load_mumble_config(spec)
    assert err.value.setting == setting and problem in err.value.problem


def test_password_file_must_be_0600(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("s3cret")
    os.chmod(pw, 0o644)
    with pytest.raises(AdapterConfigError) as err:
        load_mumble_config({"host": "h", "fingerprint": FP, "password_file": str(pw),
                            "channels": [CH]})  # fmt: skip
    assert "0600" in str(err.value) and "s3cret" not in str(err.value)
