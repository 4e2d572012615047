"""SIP message parsing: RFC 4475 torture messages (written out here from the RFC's text, §3.1)
and the errors a malformed message must give — a coded SipError, never content echoed."""

from __future__ import annotations

import pytest

from adapters.sip.message import (
    MAX_MESSAGE,
    SipError,
    SipRequest,
    SipResponse,
    canonical_name,
    header_params,
    parse_message,
    split_list,
)


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


# RFC 4475 §3.1.1.1 "A Short Tortuous INVITE" (wsinv): the body is exactly 150 bytes.
WSINV = crlf(
    "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\n"
    "TO :\n"
    " sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\n"
    'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\n'
    "  ;\n"
    "  tag = 98asjd8\n"
    "MaX-fOrWaRdS: 0068\n"
    "Call-ID: wsinv.ndaksdj@192.0.2.1\n"
    "Content-Length   : 150\n"
    "cseq: 0009\n"
    "  INVITE\n"
    "Via  : SIP  /   2.0\n"
    " /UDP\n"
    "    192.0.2.2;branch=390skdjuw\n"
    "s :\n"
    "NewFangledHeader:   newfangled value\n"
    " continued newfangled value\n"
    "UnknownHeaderWithUnusualValue: ;;,,;;,;\n"
    "Content-Type: application/sdp\n"
    "Route:\n"
    " <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\n"
    "v:  SIP  / 2.0  / TCP     spindle.example.com   ;\n"
    "  branch  =   z9hG4bK9ikj8  ,\n"
    " SIP  /    2.0   / UDP  192.168.255.111   ; branch=\n"
    " z9hG4bK30239\n"
    'm:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =\n'
    "      newvalue ;\n"
    "  secondparam ; q = 0.33\n"
    "\n"
    "v=0\n"
    "o=mhandley 29739 7272939 IN IP4 192.0.2.3\n"
    "s=-\n"
    "c=IN IP4 192.0.2.4\n"
    "t=0 0\n"
    "m=audio 49217 RTP/AVP 0 12\n"
    "m=video 3227 RTP/AVP 31\n"
    "a=rtpmap:31 LPC\n"
)


def test_short_tortuous_invite():
    msg = parse_message(WSINV)
    assert isinstance(msg, SipRequest)
    assert msg.method == "INVITE"
    assert msg.uri == "sip:vivekg@chair-dnrc.example.com;unknownparam"
    assert len(msg.body) == 150 and msg.body.endswith(b"a=rtpmap:31 LPC\r\n")
    assert msg.cseq == (9, "INVITE")  # folded, leading zeros
    assert msg.get("max-forwards") == "0068"
    assert header_params(msg.get("To") or "")[1]["tag"] == "1918181833n"
    assert header_params(msg.get("From") or "")[1]["tag"] == "98asjd8"  # escaped quote
    vias = msg.values("Via")  # "v" is Via; one Via header and a two-valued compact one
    assert len(vias) == 3
    assert header_params(vias[0])[1]["branch"] == "390skdjuw"
    assert header_params(vias[2])[1]["branch"] == "z9hG4bK30239"
    assert msg.get("Subject") == ""
    assert msg.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"  # not a list header
    assert header_params(msg.get("Contact") or "")[1] == {
        "newparam": "newvalue",
        "secondparam": "",
        "q": "0.33",
    }


# RFC 4475 §3.1.1.2 (intmeth), shortened: every token character in a method name.
def test_unusual_method_token():
    msg = parse_message(crlf(
        "!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI@example.com SIP/2.0\n"
        "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~\n"
        "To: <sip:1_unusual.URI@example.com>\nFrom: <sip:mundane@example.com>;tag=_i_\n"
        "Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\n"
        "CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~\n"
        "Max-Forwards: 255\nContent-Length: 0\n\n"
    ))  # fmt: skip
    assert isinstance(msg, SipRequest)
    assert msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.cseq[0] == 139122385


# RFC 4475 §3.1.1.11 spirit: extra octets after Content-Length in a datagram are ignored.
def test_datagram_longer_than_content_length_is_truncated():
    msg = parse_message(crlf(
        "OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nTo: <sip:a@b>\n"
        "From: <sip:c@d>;tag=1\nCall-ID: x\nCSeq: 1 OPTIONS\nContent-Length: 3\n\n"
    ) + b"abcdef")  # fmt: skip
    assert msg.body == b"abc"


def test_response_and_bare_lf():
    msg = parse_message(
        b"SIP/2.0 180 Ringing\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nTo: <sip:a@b>;tag=9\n"
        b"From: <sip:c@d>;tag=1\nCall-ID: x\nCSeq: 1 INVITE\nl: 0\n\n"
    )
    assert isinstance(msg, SipResponse) and msg.status == 180 and msg.reason == "Ringing"


def _base(method: str = "INVITE", extra: str = "", cseq: str = "1 INVITE") -> bytes:
    return crlf(
        f"{method} sip:7001@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKx\n"
        f"To: <sip:7001@127.0.0.1>\nFrom: <sip:c@d>;tag=1\nCall-ID: secret-call-id\n"
        f"CSeq: {cseq}\nMax-Forwards: 70\n{extra}\n"
    )


BAD = [
    # RFC 4475 §3.1.2.2 clerr: Content-Length larger than the message
    (_base(extra="Content-Length: 9999\n") + b"v=0\r\n", "body_shorter_than_content_length", 400),
    # §3.1.2.3 ncl: negative Content-Length
    (_base(extra="Content-Length: -999\n"), "bad_content_length", 400),
    # §3.1.2.4 scalar02 style: overlarge CSeq and Max-Forwards
    (_base(cseq="36893488147419103232 INVITE"), "bad_cseq", 400),
    (_base().replace(b"Max-Forwards: 70", b"Max-Forwards: 300"), "bad_max_forwards", 400),
    (_base(extra="Max-Forwards: 69\n"), "duplicate_max_forwards", 400),
    # §3.1.2.17 unknown protocol version
    (b"INVITE sip:t.watson@example.org SIP/7.0\r\n\r\n", "bad_start_line", 505),
    # §3.1.2.18 start line and CSeq method mismatch
    (_base("OPTIONS"), "cseq_method_mismatch", 400),
    # §3.1.2.8/9: LWS in the Request-URI, several SP between elements
    (b"INVITE sip:user@example.com; lr SIP/2.0\r\n\r\n", "bad_start_line", 400),
    (b"INVITE  sip:user@example.com  SIP/2.0\r\n\r\n", "bad_start_line", 400),
    (b"INVITE example.com SIP/2.0\r\n\r\n", "bad_request_uri", 400),
    # §3.1.2.16 overlarge status code
    (b"SIP/2.0 4294967301 better not break the receiver\r\n\r\n", "bad_status_code", 400),
    # mcl01 style: two Call-IDs
    (_base(extra="Call-ID: another\n"), "duplicate_call_id", 400),
    (_base(extra="Bad Header Name: x\n"), "bad_header", 400),
    (b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n", "no_header_end", 400),
    (b"\xff\xfe INVITE\r\n\r\n", "not_utf8", 400),
    (b"x" * (MAX_MESSAGE + 1), "too_large", 513),
]


@pytest.mark.parametrize(("data", "code", "status"), BAD)
def test_malformed_gives_coded_error_without_content(data, code, status):
    with pytest.raises(SipError) as info:
        parse_message(data)
    assert info.value.code == code and info.value.status == status
    assert "secret" not in str(info.value) and "example" not in str(info.value)


def test_partial_message_lets_a_400_be_sent():
    with pytest.raises(SipError) as info:
        parse_message(_base(extra="Content-Length: -1\n"))
    partial = info.value.partial
    assert isinstance(partial, SipRequest) and partial.call_id == "secret-call-id"
    with pytest.raises(SipError) as info:
        parse_message(b"INVITE sip:a@b SIP/2.0\r\nTo: <sip:a@b>\r\n\r\n")
    assert info.value.code == "missing_via" and info.value.partial is None


def test_stream_needs_content_length():
    with pytest.raises(SipError) as info:
        parse_message(_base(), stream=True)
    assert info.value.code == "no_content_length"


def test_serialize_round_trip_and_compact_names():
    msg = parse_message(_base())
    assert isinstance(msg, SipRequest)
    msg.body = b"hello"
    again = parse_message(msg.serialize())
    assert isinstance(again, SipRequest)
    assert again.body == b"hello" and again.get("Content-Length") == "5"
    assert [canonical_name(c) for c in "vifmtlc"] == [
        "Via", "Call-ID", "From", "Contact", "To", "Content-Length", "Content-Type"]  # fmt: skip
    assert canonical_name("www-authenticate") == "WWW-Authenticate"


def test_split_list_respects_quotes_and_brackets():
    assert split_list('"a, b" <sip:x,y@z>;p=1, <sip:w>') == ['"a, b" <sip:x,y@z>;p=1', "<sip:w>"]
