"""SDP offer/answer (RFC 3264, RFC 4566) and digest authentication (RFC 7616 vectors)."""

from __future__ import annotations

import pytest

from adapters.sip.digest import Challenge, DigestError, authorization, parse_challenge, response
from adapters.sip.sdp import SdpError, answer, build_sdp, offer_formats, parse_sdp

OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 111 8 0 101\r\na=rtpmap:111 opus/48000/2\r\n"
    b"a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\na=sendrecv\r\n"
)


def test_offerers_order_wins_and_dtmf_is_kept():
    offer = parse_sdp(OFFER)
    assert offer.formats == (111, 8, 0, 101) and offer.address == "192.0.2.5"
    n = answer(offer, ("pcmu", "pcma", "opus"))
    assert (n.payload.name, n.payload.pt, n.payload.clock_rate) == ("opus", 111, 48000)
    assert n.dtmf_pt == 101 and n.remote == ("192.0.2.5", 40000) and n.direction == "sendrecv"
    n = answer(offer, ("pcmu",))  # static PT 0 needs no rtpmap
    assert (n.payload.name, n.payload.pt) == ("pcmu", 0)


def test_no_common_codec_is_488():
    offer = parse_sdp(OFFER.replace(b"111 8 0 101", b"9 18 101"))  # G.722, G.729
    with pytest.raises(SdpError) as info:
        answer(offer, ("pcmu", "pcma", "opus"))
    assert info.value.status == 488 and info.value.code == "no_common_codec"
    with pytest.raises(SdpError) as info:
        answer(parse_sdp(OFFER.replace(b"m=audio 40000", b"m=audio 0")), ("pcmu",))
    assert info.value.status == 488


def test_hold_and_direction_mirror():
    held = parse_sdp(OFFER.replace(b"a=sendrecv", b"a=sendonly"))
    assert held.on_hold and answer(held, ("pcma",)).direction == "recvonly"
    old_style = parse_sdp(OFFER.replace(b"c=IN IP4 192.0.2.5", b"c=IN IP4 0.0.0.0"))
    assert old_style.on_hold
    assert answer(parse_sdp(OFFER.replace(b"a=sendrecv", b"a=inactive")), ("pcma",)).direction \
        == "inactive"  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [b"", b"x=1\r\n", b"v=0\r\nc=IN IP4\r\n", b"v=0\r\nm=audio x RTP/AVP 0\r\n",
     b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5 RTP/AVP 300\r\n", b"v=0\r\nm=audio 5 RTP/AVP 0\r\n",
     b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5 RTP/AVP 0\r\na=ptime:abc\r\n", b"\xff"],
)  # fmt: skip
def test_malformed_sdp(body):
    with pytest.raises(SdpError):
        parse_sdp(body)


def test_build_parses_back():
    body = build_sdp("127.0.0.1", 4000, offer_formats(("pcmu", "opus")), session_id=7)
    sd = parse_sdp(body)
    assert sd.formats == (0, 111, 101) and sd.codec_of(111) == ("opus", 48000)
    assert sd.codec_of(101) == ("telephone-event", 8000) and sd.ptime == 20


# RFC 7616 §3.9.1: Mufasa / "Circle of Life", GET /dir/index.html
CH = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)
CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


def test_rfc7616_vectors():
    ch = parse_challenge(CH)
    assert ch.algorithm == "SHA-256" and ch.qop == ("auth", "auth-int")
    assert response(ch, "Mufasa", "Circle of Life", "GET", "/dir/index.html", cnonce=CNONCE) == (
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    )
    md5 = parse_challenge(CH.replace("algorithm=SHA-256", "algorithm=MD5"))
    assert response(md5, "Mufasa", "Circle of Life", "GET", "/dir/index.html", cnonce=CNONCE) == (
        "8ca523f5e9506fed4657c9700eebdbec"
    )
    header = authorization(ch, "Mufasa", "Circle of Life", "GET", "/dir/index.html", cnonce=CNONCE)
    assert 'response="753927fa' in header and "nc=00000001" in header and "Circle" not in header


def test_refused_challenges():
    for bad in ('Basic realm="x"', 'Digest nonce="n"',
                'Digest realm="r", nonce="n", algorithm=SHA1',
                'Digest realm="r", nonce="n", qop="auth-int"'):  # fmt: skip
        with pytest.raises(DigestError) as info:
            parse_challenge(bad)
        assert "n" not in str(info.value).split()  # no challenge content in the message
    rfc2069 = Challenge("r", "n")
    assert len(response(rfc2069, "u", "p", "REGISTER", "sip:r", cnonce="c")) == 32
