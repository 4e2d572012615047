"""The SIP adapter against sipp in dialog-level scenarios: sipp as a registrar with digest
authentication (``verifyauth``), and hold/resume by re-INVITE."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adapters.sip.adapter import sip_adapters
from adapters.sip.config import load_sip_config
from tests.adapters.sip.peers import run_sipp, sipp_uas
from tests.adapters.sip.test_baresip_live import until
from tests.adapters.sip.test_sipp_live import (
    HEAD,
    PCMU,
    invite,
    make_adapter,
    recv,
    request,
    scenario,
    target,
)
from tests.rigs.tools import skip_unavailable

pytestmark = pytest.mark.slow


CHALLENGE = (
    'Digest realm="crossband.test", nonce="47364c23432d2e131a5fb210812c", algorithm=MD5, qop="auth"'
)
REGISTRAR = (
    HEAD
    + """<recv request="REGISTER"/>
<send><![CDATA[
SIP/2.0 401 Unauthorized
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
WWW-Authenticate: CHALLENGE
Content-Length: 0

]]></send>
<recv request="REGISTER">
  <action><verifyauth assign_to="authvalid" username="gw" password="PASSWORD"/></action>
</recv>
<nop hide="true" test="authvalid" next="good"/>
<send next="done"><![CDATA[
SIP/2.0 403 Forbidden
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
<label id="good"/>
<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Contact:];expires=60
Content-Length: 0

]]></send>
<label id="done"/>
</scenario>
"""
)


@pytest.mark.parametrize(("password", "registered"), [("s3cret", True), ("wrong", False)])
async def test_digest_registration_at_sipp(tmp_path: Path, password: str, registered: bool) -> None:
    """sipp as a registrar: 401 with an MD5 digest challenge, then its ``verifyauth`` checks
    our answer — 200 for the right password, 403 (no retry loop) for a
    wrong one."""
    registrar = REGISTRAR.replace("PASSWORD", "s3cret").replace("CHALLENGE", CHALLENGE)
    (tmp_path / "registrar.xml").write_text(registrar)
    pw = tmp_path / "sip.pass"
    pw.write_text(password + "\n")
    pw.chmod(0o600)
    with skip_unavailable():
        async with sipp_uas(tmp_path, tmp_path / "registrar.xml") as port:
            cfg = load_sip_config({
                "listen": "127.0.0.1:0", "lines": [{"extension": "7001", "channel": "ch"}],
                "register": {"registrar": f"127.0.0.1:{port}", "user": "gw",
                             "password_file": str(pw), "expires": 60},
            })  # fmt: skip
            ((_, adapter),) = sip_adapters(cfg)
            await adapter.start(lambda e: None)
            try:
                reg = adapter.endpoint.ua.registration
                assert reg is not None

                def answered() -> bool:
                    return reg.registered or (reg.cseq >= 2 and reg.next_at is not None)

                await until(answered, what="registrar's answer")
                assert reg.registered is registered and adapter.endpoint.registered is registered
                if registered:
                    assert reg.expires == 60
            finally:
                await adapter.stop()


def reinvite(branch: str, cseq: int, direction: str) -> str:
    return (
        invite(branch, *PCMU, cseq=cseq)
        .replace("To: <sip:[service]@[remote_ip]:[remote_port]>",
                 "To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]")
        .replace("a=rtpmap:0 PCMU/8000", f"a=rtpmap:0 PCMU/8000\na={direction}")
    )  # fmt: skip


def expect_200_with(text: str) -> str:
    return (
        '<recv response="200"><action>'
        f'<ereg regexp="{text}" search_in="body" check_it="true" assign_to="found"/>'
        "</action></recv>\n"
    )


async def test_hold_and_resume_by_reinvite(tmp_path: Path) -> None:
    """sipp puts the call on hold (re-INVITE ``sendonly``) and takes it back (``sendrecv``):
    our answers say ``recvonly`` then ``sendrecv`` (RFC 3264 §8.4; sipp's ``check_it`` fails
    the call otherwise), and while held, channel audio is not sent."""
    adapter = make_adapter()
    await adapter.start(lambda e: None)
    body = invite("z9hG4bK-h1-[call_number]", *PCMU) + recv(100, True) + recv(200)
    body += request("ACK", "z9hG4bK-h1a-[call_number]", 1)
    body += reinvite("z9hG4bK-h2-[call_number]", 2, "sendonly") + recv(100, True)
    body += expect_200_with("a=recvonly") + request("ACK", "z9hG4bK-h2a-[call_number]", 2)
    body += '<pause milliseconds="600"/>\n'
    body += reinvite("z9hG4bK-h3-[call_number]", 3, "sendrecv") + recv(100, True)
    body += expect_200_with("a=sendrecv") + request("ACK", "z9hG4bK-h3a-[call_number]", 3)
    body += '<pause milliseconds="300"/>\n'
    body += request("BYE", "z9hG4bK-h4-[call_number]", 4) + recv(200)
    held_seen = []
    try:
        with skip_unavailable():
            run = asyncio.ensure_future(run_sipp(scenario(tmp_path, body), target(adapter),
                                                 tmp_path, extra=("-s", "7001")))  # fmt: skip
            await until(lambda: any(c.on_hold for c in adapter.callers.values()) or run.done(),
                        what="hold")  # fmt: skip
            adapter.talk_started("x")
            for caller in adapter.callers.values():
                assert caller.media is not None
                held_seen.append(caller.media.sending)  # held: the burst did not start
            adapter.talk_ended("x", True)
            result = await run
        assert result.returncode == 0, result.log[-3000:]
        assert held_seen == [False]
    finally:
        await adapter.stop()
