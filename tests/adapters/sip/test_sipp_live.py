"""The SIP adapter against Debian's sipp (sip-tester) on loopback: built-in and custom XML
scenarios (written here into tmp_path) as the caller, sipp's ``uas`` as the callee. sipp
exits 0 only if every message its scenario expects came, in order."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from pathlib import Path

import numpy as np
import pytest

from adapters.base import AdapterEvent, Pcm, TalkEnd, TalkStart
from adapters.codecs.g711 import alaw_decode
from adapters.sip.adapter import SipAdapter, sip_adapters
from adapters.sip.config import load_sip_config
from tests.adapters.sip.peers import SIPP_DATA, noise_signal, run_sipp, sipp_uas, windowed_match
from tests.adapters.sip.test_baresip_live import play_paced, until
from tests.rigs.tools import skip_unavailable

pytestmark = pytest.mark.slow
RATE = 8000

HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="crossband">
"""
FROM = "From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]"


def invite(branch: str, formats: str, rtpmaps: str, cseq: int = 1, length: str = "[len]") -> str:
    return f"""<send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={branch}
{FROM}
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: {cseq} INVITE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: {length}

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP {formats}
{rtpmaps}
]]></send>
"""


def request(method: str, branch: str, cseq: int, to_tag: bool = True) -> str:
    tag = "[peer_tag_param]" if to_tag else ""
    return f"""<send><![CDATA[
{method} sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={branch}
{FROM}
To: <sip:[service]@[remote_ip]:[remote_port]>{tag}
Call-ID: [call_id]
CSeq: {cseq} {method}
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0

]]></send>
"""


def recv(status: int, optional: bool = False) -> str:
    flag = ' optional="true"' if optional else ""
    return f'<recv response="{status}"{flag}/>\n'


def play(pcap: str, ms: int) -> str:
    return (
        f'<nop><action><exec play_pcap_audio="{SIPP_DATA / pcap}"/></action></nop>\n'
        f'<pause milliseconds="{ms}"/>\n'
    )


def scenario(tmp: Path, body: str) -> Path:
    path = tmp / "scenario.xml"
    path.write_text(HEAD + body + "</scenario>\n")
    return path


PCMA_DTMF = ("8 101", "a=rtpmap:8 PCMA/8000\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-15")
PCMU = ("0", "a=rtpmap:0 PCMU/8000")


def make_adapter(**line: object) -> SipAdapter:
    cfg = load_sip_config({"listen": "127.0.0.1:0", "rate": RATE,
                           "lines": [{"extension": "7001", "channel": "ch", **line}]})  # fmt: skip
    ((_, adapter),) = sip_adapters(cfg)
    return adapter


def target(adapter: SipAdapter) -> str:
    host, port = adapter.endpoint.address
    return f"{host}:{port}"


async def test_builtin_uac_with_rtp_echo_hears_the_channel(tmp_path: Path) -> None:
    """sipp's own ``uac`` scenario calls, echoes our RTP back (``-rtp_echo``) and hangs up:
    the channel audio we send comes back as the caller's burst (vad floor)."""
    adapter = make_adapter(floor="vad", vad_threshold_dbfs=-45, hang_time=0.3)
    events: list[AdapterEvent] = []
    await adapter.start(events.append)
    audio = noise_signal(1.0, RATE, seed=3)
    try:
        with skip_unavailable():
            echo = ("-s", "7001", "-rtp_echo", "-d", "3000")
            run = asyncio.ensure_future(run_sipp("uac", target(adapter), tmp_path, extra=echo))
            await until(lambda: any(c.answered for c in adapter.callers.values()) or run.done(),
                        what="answer")  # fmt: skip
            await play_paced(adapter, audio)
            result = await run
        assert result.returncode == 0, result.log[-3000:]
        await until(lambda: not adapter.callers, what="BYE")
    finally:
        await adapter.stop()
    assert [type(e) for e in events if not isinstance(e, Pcm)] == [TalkStart, TalkEnd]
    heard = np.concatenate([np.frombuffer(e.frame, "<i2").astype(float)
                            for e in events if isinstance(e, Pcm)])  # fmt: skip
    scores, _ = windowed_match(audio[RATE // 10 : RATE * 9 // 10], heard)
    assert np.median(scores) >= 0.9, scores


def pcap_alaw(path: Path) -> np.ndarray:
    """The A-law audio of a pcap's RTP packets (Ethernet/IPv4/UDP, 12-byte RTP header)."""
    data = path.read_bytes()
    pos, out = 24, []
    while pos + 16 <= len(data):
        incl = struct.unpack_from("<I", data, pos + 8)[0]
        packet = data[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
        ip = packet[14:]
        out.append(ip[(ip[0] & 15) * 4 + 8 + 12 :])
    return np.frombuffer(alaw_decode(b"".join(out)), "<i2").astype(float)


async def test_dtmf_push_to_talk_from_pcap(tmp_path: Path) -> None:
    """RFC 4733 '*' keys up, '#' keys down (sipp plays Debian's own DTMF and A-law pcaps);
    audio before '*' and after '#' is not passed; the burst is the pcap's audio."""
    adapter = make_adapter(floor="dtmf")
    events: list[AdapterEvent] = []
    await adapter.start(events.append)
    body = invite("z9hG4bK-ptt-[call_number]", *PCMA_DTMF) + recv(100, True) + recv(180, True)
    body += recv(200) + request("ACK", "z9hG4bK-ack-[call_number]", 1)
    body += play("g711a.pcap", 1000) + play("dtmf_2833_star.pcap", 800)
    body += play("g711a.pcap", 2000) + play("dtmf_2833_pound.pcap", 800)
    body += play("g711a.pcap", 500)
    body += request("BYE", "z9hG4bK-bye-[call_number]", 2) + recv(200)
    try:
        with skip_unavailable():
            result = await run_sipp(scenario(tmp_path, body), target(adapter), tmp_path,
                                    extra=("-s", "7001"))  # fmt: skip
        assert result.returncode == 0, result.log[-3000:]
        await until(lambda: not adapter.callers, what="BYE")
    finally:
        await adapter.stop()
    kinds = [type(e) for e in events if not isinstance(e, Pcm)]
    assert kinds == [TalkStart, TalkEnd]
    frames = [e for e in events if isinstance(e, Pcm)]
    assert 85 <= len(frames) <= 120, len(frames)  # 2 s of audio between the digits
    heard = np.concatenate([np.frombuffer(e.frame, "<i2").astype(float) for e in frames])
    reference = pcap_alaw(SIPP_DATA / "g711a.pcap")[RATE // 5 : RATE * 9 // 5]
    scores, _ = windowed_match(reference, heard)
    assert np.median(scores) >= 0.9, scores


async def test_malformed_and_unsupported_invites_are_refused(tmp_path: Path) -> None:
    """A malformed INVITE gets 400, one offering only G.729 gets 488 (both ACKed), and the
    adapter still answers OPTIONS; no call, no event, no crash."""
    adapter = make_adapter()
    events: list[AdapterEvent] = []
    await adapter.start(events.append)
    body = invite("z9hG4bK-bad-[call_number]", *PCMU, length="999") + recv(100, True)
    body += recv(400) + request("ACK", "z9hG4bK-bad-[call_number]", 1)
    body += invite("z9hG4bK-729-[call_number]", "18", "a=rtpmap:18 G729/8000", cseq=2)
    body += recv(100, True) + recv(488) + request("ACK", "z9hG4bK-729-[call_number]", 2)
    body += request("OPTIONS", "z9hG4bK-opt-[call_number]", 3, to_tag=False) + recv(200)
    try:
        with skip_unavailable():
            result = await run_sipp(scenario(tmp_path, body), target(adapter), tmp_path,
                                    extra=("-s", "7001"))  # fmt: skip
        assert result.returncode == 0, result.log[-3000:]
        stats = adapter.endpoint.ua.stats
        assert stats["malformed"] == 1 and stats["refused"] == 1
        assert not adapter.endpoint.ua.calls and not adapter.callers and events == []
    finally:
        await adapter.stop()


async def test_lost_ack_200_is_retransmitted_then_call_completes(tmp_path: Path) -> None:
    """sipp holds its ACK for 1.7 s (as if it had lost our 200 OK): the 200 is retransmitted
    at T1 and 3·T1, then the ACK and a BYE complete the call."""
    adapter = make_adapter()
    await adapter.start(lambda e: None)
    body = invite("z9hG4bK-l-[call_number]", *PCMU) + recv(100, True) + recv(200)
    body += '<pause milliseconds="1700"/>\n' + request("ACK", "z9hG4bK-la-[call_number]", 1)
    body += '<pause milliseconds="200"/>\n'
    body += request("BYE", "z9hG4bK-lb-[call_number]", 2) + recv(200)
    try:
        with skip_unavailable():
            result = await run_sipp(scenario(tmp_path, body), target(adapter), tmp_path,
                                    extra=("-s", "7001"))  # fmt: skip
        assert result.returncode == 0, result.log[-3000:]
        assert adapter.endpoint.ua.stats["resent"] == 2  # at 0.5 s and 1.5 s
        assert not adapter.endpoint.ua.calls
    finally:
        await adapter.stop()


async def test_cancel_while_ringing(tmp_path: Path) -> None:
    """A line that rings (answer_after) is cancelled: 180, then 200 to the CANCEL and 487 to
    the INVITE, ACKed; the call never joins the channel."""
    adapter = make_adapter(answer_after=5)
    events: list[AdapterEvent] = []
    await adapter.start(events.append)
    body = invite("z9hG4bK-c-[call_number]", *PCMU) + recv(100, True) + recv(180)
    body += request("CANCEL", "z9hG4bK-c-[call_number]", 1, to_tag=False)
    body += recv(200) + recv(487) + request("ACK", "z9hG4bK-c-[call_number]", 1)
    try:
        with skip_unavailable():
            result = await run_sipp(scenario(tmp_path, body), target(adapter), tmp_path,
                                    extra=("-s", "7001"))  # fmt: skip
        assert result.returncode == 0, result.log[-3000:]
        await until(lambda: not adapter.callers, what="cancelled call gone")
        assert events == [] and not adapter.endpoint.ua.calls
    finally:
        await adapter.stop()


async def test_call_out_to_sipp_uas(tmp_path: Path) -> None:
    """The user agent calls sipp's ``uas`` scenario: 180, 200 with SDP, our ACK; our BYE
    ends it and sipp (``-m 1``) exits having seen the whole call."""
    adapter = make_adapter()
    await adapter.start(lambda e: None)
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    try:
        with skip_unavailable():
            async with sipp_uas(tmp_path) as port:
                driver = adapter.endpoint.driver
                call_id = driver.invite(f"sip:service@127.0.0.1:{port}", ("127.0.0.1", port),
                                        rtp.getsockname())  # fmt: skip
                ua = adapter.endpoint.ua
                await until(lambda: call_id in ua.calls and ua.calls[call_id].state
                            == "confirmed", what="answer from sipp")  # fmt: skip
                negotiated = ua.calls[call_id].negotiated
                assert negotiated is not None and negotiated.payload.name == "pcmu"
                driver.hangup(call_id)
                await until(lambda: not ua.client_tx or all(t.linger_until is not None
                            for t in ua.client_tx.values()), what="200 to our BYE")  # fmt: skip
    finally:
        rtp.close()
        await adapter.stop()


async def test_fuzzed_datagrams_then_a_real_call(tmp_path: Path) -> None:
    """2000 mangled INVITEs on the wire: refused or dropped, never a crash; then sipp's
    built-in uac still completes a call."""
    adapter = make_adapter()
    await adapter.start(lambda e: None)
    seed = (
        b"INVITE sip:7001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKf\r\n"
        b"To: <sip:7001@127.0.0.1>\r\nFrom: <sip:f@z>;tag=1\r\nCall-ID: f\r\nCSeq: 1 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    rng = random.Random(3261)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        host, port = adapter.endpoint.address
        for i in range(2000):
            data = bytearray(seed.replace(b"Call-ID: f", f"Call-ID: f{i}".encode()))
            for _ in range(rng.randint(1, 6)):
                pos = rng.randrange(len(data))
                data[pos] = rng.randrange(256)
            sock.sendto(bytes(data), (host, port))
            if i % 100 == 0:
                await asyncio.sleep(0.01)
        await until(lambda: adapter.endpoint.ua.stats["malformed"] > 0, what="fuzz handled")
        with skip_unavailable():
            result = await run_sipp("uac", target(adapter), tmp_path, extra=("-s", "7001"))
        assert result.returncode == 0, result.log[-3000:]
        assert adapter.endpoint.driver.errors == 0
    finally:
        sock.close()
        await adapter.stop()
