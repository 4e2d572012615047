"""The sans-IO user agent: two cores wired back to back on a fake clock (no sockets, no
sleeping), each RFC 3261 rule checked where it is observable on the wire."""

from __future__ import annotations

import random

from adapters.sip.dialog import in_dialog_request
from adapters.sip.events import (
    CallAnswered,
    CallConfirmed,
    CallEnded,
    CallUpdated,
    DtmfInfo,
    IncomingCall,
    Refused,
)
from adapters.sip.message import SipError, SipRequest, SipResponse, parse_message
from adapters.sip.sdp import build_sdp, offer_formats
from adapters.sip.transaction import T1, T2
from adapters.sip.ua import UaConfig, UserAgent

UAS_ADDR = ("127.0.0.1", 5060)
UAC_ADDR = ("127.0.0.1", 5070)
RTP_UAS = ("127.0.0.1", 40000)
RTP_UAC = ("127.0.0.1", 41000)


class Net:
    """Two user agents and the datagrams between them; ``drop`` decides which are lost."""

    def __init__(self, uac_codecs=("pcmu", "pcma", "opus"), uas_codecs=("pcmu", "pcma")):
        self.uac = UserAgent(UaConfig(*UAC_ADDR, codecs=uac_codecs))
        self.uas = UserAgent(UaConfig(*UAS_ADDR, extensions=("7001",), codecs=uas_codecs))
        self.log: list[tuple[str, str]] = []  # (sender, first line)
        self.drop = lambda who, first: False
        self.now = 0.0

    def pump(self) -> None:
        for _ in range(50):
            moved = False
            for name, ua, peer, addr in (("uac", self.uac, self.uas, UAC_ADDR),
                                         ("uas", self.uas, self.uac, UAS_ADDR)):  # fmt: skip
                for data, dest in ua.datagrams_to_send():
                    first = data.split(b"\r\n", 1)[0].decode()
                    self.log.append((name, first))
                    moved = True
                    if not self.drop(name, first):
                        peer.receive_datagram(data, addr, self.now)
            if not moved:
                return
        raise AssertionError("message loop")

    def advance(self, to: float) -> None:
        """Run both cores' timers up to ``to``, in order."""
        while True:
            timers = [t for t in (self.uac.get_timer(), self.uas.get_timer()) if t is not None]
            if not timers or min(timers) > to:
                break
            self.now = max(self.now, min(timers))
            self.uac.handle_timer(self.now)
            self.uas.handle_timer(self.now)
            self.pump()
        self.now = to

    def sent(self, who: str, start: str) -> list[str]:
        return [f for w, f in self.log if w == who and f.startswith(start)]


def setup_call(net: Net) -> tuple[str, IncomingCall]:
    call_id = net.uac.invite("sip:7001@127.0.0.1:5060", UAS_ADDR, RTP_UAC, net.now)
    net.pump()
    (incoming,) = net.uas.events_received()
    assert isinstance(incoming, IncomingCall) and incoming.user == "7001"
    assert net.sent("uas", "SIP/2.0 100")
    net.uas.answer(incoming.call_id, RTP_UAS, net.now)
    net.pump()
    return call_id, incoming


def test_call_set_up_and_torn_down():
    net = Net()
    call_id, incoming = setup_call(net)
    assert incoming.call_id == call_id
    assert incoming.negotiated.payload.name == "pcmu" and incoming.negotiated.dtmf_pt == 101
    assert net.uas.events_received() == [CallConfirmed(call_id)]
    (answered,) = net.uac.events_received()
    assert isinstance(answered, CallAnswered) and answered.negotiated.remote == RTP_UAS
    net.uac.hangup(call_id, net.now)
    net.pump()
    assert net.uas.events_received() == [CallEnded(call_id, "bye")]
    assert net.sent("uas", "SIP/2.0 200") and len(net.sent("uac", "BYE")) == 1
    net.advance(100.0)  # nothing retransmitted, every transaction gone
    assert len(net.sent("uac", "BYE")) == 1 and len(net.sent("uas", "SIP/2.0 200")) == 2
    assert not net.uas.server_tx and not net.uac.client_tx and not net.uas.calls


def test_lost_200_is_retransmitted_until_ack():
    net = Net()
    lost = {"n": 0}

    def drop(who, first):
        if who == "uas" and first.startswith("SIP/2.0 200") and lost["n"] < 2:
            lost["n"] += 1
            return True
        return False

    net.drop = drop
    call_id, _ = setup_call(net)
    assert net.uas.events_received() == []  # no ACK yet
    net.advance(T1 + 0.01)  # first retransmission: T1 after
    assert len(net.sent("uas", "SIP/2.0 200")) == 2 and not net.sent("uac", "ACK")
    net.advance(T1 + 2 * T1 + 0.01)  # the second: 2·T1 later, and it gets through
    assert len(net.sent("uas", "SIP/2.0 200")) == 3 and len(net.sent("uac", "ACK")) == 1
    assert net.uas.events_received() == [CallConfirmed(call_id)]
    net.advance(40.0)
    assert len(net.sent("uas", "SIP/2.0 200")) == 3  # the ACK stopped it


def test_no_ack_ends_the_call_with_bye_after_64_t1():
    net = Net()
    net.drop = lambda who, first: who == "uac" and first.startswith("ACK")
    call_id, _ = setup_call(net)
    net.advance(64 * T1 - 0.01)
    times = len(net.sent("uas", "SIP/2.0 200"))
    # T1, 2T1, 4T1, then T2 each: 0.5 1.5 3.5 7.5 11.5 ... 31.5 → 1 + 10 retransmissions
    assert times == 1 + 3 + int((64 * T1 - 3.5) // T2)
    assert net.uas.events_received() == []
    net.advance(64 * T1 + 0.01)
    assert net.uas.events_received() == [CallEnded(call_id, "no_ack")]
    assert net.sent("uas", "BYE")


def test_lost_invite_timer_a_then_timer_b():
    net = Net()
    net.drop = lambda who, first: who == "uac"
    call_id = net.uac.invite("sip:7001@127.0.0.1", UAS_ADDR, RTP_UAC, 0.0)
    net.pump()
    net.advance(64 * T1 - 0.01)
    # Timer A doubles without a cap: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 → 6 retransmissions
    assert len(net.sent("uac", "INVITE")) == 7
    assert net.uac.events_received() == []
    net.advance(64 * T1 + 0.01)
    assert net.uac.events_received() == [CallEnded(call_id, "timeout")]


def test_retransmitted_invite_gets_the_same_answer():
    net = Net()
    call_id = net.uac.invite("sip:7001@127.0.0.1", UAS_ADDR, RTP_UAC, 0.0)
    (data, _), = net.uac.datagrams_to_send()  # fmt: skip
    net.uac._out.append((data, UAS_ADDR))  # noqa: SLF001 - the same datagram twice
    net.uac._out.append((data, UAS_ADDR))  # noqa: SLF001
    net.uac._out.insert(0, (data, UAS_ADDR))  # noqa: SLF001
    net.pump()
    assert len(net.uas.events_received()) == 1  # one IncomingCall for three copies
    assert len(net.sent("uas", "SIP/2.0 100")) == 3 and net.uas.stats["retransmits"] == 2
    assert call_id in net.uas.calls


def test_cancel_before_answer():
    net = Net()
    call_id = net.uac.invite("sip:7001@127.0.0.1", UAS_ADDR, RTP_UAC, 0.0)
    net.pump()
    assert isinstance(net.uas.events_received()[0], IncomingCall)
    net.uac.hangup(call_id, 0.1)
    net.pump()
    assert net.sent("uac", "CANCEL") and net.sent("uas", "SIP/2.0 487")
    assert len(net.sent("uas", "SIP/2.0 200")) == 1  # to the CANCEL
    assert net.uas.events_received() == [CallEnded(call_id, "cancel")]
    assert len(net.sent("uac", "ACK")) == 1  # the 487 is ACKed on its transaction
    net.uas.answer(call_id, RTP_UAS, 0.2)  # too late: nothing happens
    net.advance(60.0)
    assert len(net.sent("uas", "SIP/2.0 487")) == 1 and not net.uas.server_tx


def test_unknown_dialog_and_transaction_get_481():
    net = Net()
    call_id, _ = setup_call(net)
    call = net.uac.calls[call_id]
    call.remote_tag = "not-the-tag"
    net.uac._client(in_dialog_request(call, "BYE", UAC_ADDR), UAS_ADDR, 0.0, call_id)  # noqa: SLF001
    net.pump()
    assert net.sent("uas", "SIP/2.0 481")
    assert any(isinstance(e, Refused) and e.status == 481 for e in net.uas.events_received())


def test_lost_bye_timer_e_and_f():
    net = Net()
    call_id, _ = setup_call(net)
    net.drop = lambda who, first: first.startswith("BYE")
    net.uac.hangup(call_id, net.now)
    start = net.now
    net.pump()
    net.advance(start + 64 * T1 - 0.01)
    # E: T1, 2T1, 4T1, then T2: 0.5 1.5 3.5 7.5 ... 31.5 → 10 retransmissions
    assert len(net.sent("uac", "BYE")) == 1 + 3 + int((64 * T1 - 3.5) // T2)
    net.advance(start + 64 * T1 + 0.01)
    assert not net.uac.client_tx  # Timer F: given up


def test_unsupported_codec_488_is_acked():
    net = Net(uac_codecs=("opus",), uas_codecs=("pcmu",))
    call_id = net.uac.invite("sip:7001@127.0.0.1", UAS_ADDR, RTP_UAC, 0.0)
    net.pump()
    assert net.sent("uas", "SIP/2.0 488") and net.sent("uac", "ACK")
    assert net.uac.events_received() == [CallEnded(call_id, "rejected", 488)]
    assert net.uas.events_received() == [Refused(488, "sdp_no_common_codec")]
    tx = next(iter(net.uas.server_tx.values()))
    assert tx.acked
    net.advance(60.0)
    assert len(net.sent("uas", "SIP/2.0 488")) == 1  # the ACK stopped Timer G


def test_wrong_extension_404():
    net = Net()
    net.uac.invite("sip:9999@127.0.0.1", UAS_ADDR, RTP_UAC, 0.0)
    net.pump()
    assert net.sent("uas", "SIP/2.0 404") and isinstance(net.uac.events_received()[0], CallEnded)


def test_malformed_invite_gets_400_and_garbage_is_dropped():
    net = Net()
    bad = (
        b"INVITE sip:7001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKq\r\n"
        b"To: <sip:7001@127.0.0.1>\r\nFrom: <sip:x@y>;tag=1\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
        b"Content-Length: 500\r\n\r\nv=0\r\n"
    )
    net.uas.receive_datagram(bad, UAC_ADDR, 0.0)
    ((data, dest),) = net.uas.datagrams_to_send()
    resp = parse_message(data)
    assert isinstance(resp, SipResponse) and resp.status == 400 and dest == UAC_ADDR
    assert "received" not in (resp.get("Via") or "")  # same host: no received param needed
    assert net.uas.events_received() == [Refused(400, "body_shorter_than_content_length")]
    net.uas.receive_datagram(b"\x00\x01garbage", UAC_ADDR, 0.0)
    assert net.uas.datagrams_to_send() == [] and net.uas.stats["malformed"] == 2


def test_options_and_unknown_method():
    net = Net()
    for method, status in (("OPTIONS", 200), ("SUBSCRIBE", 405)):
        req = SipRequest(method=method, uri="sip:7001@127.0.0.1")
        for name, value in (("Via", f"SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{method}"),
                            ("To", "<sip:7001@127.0.0.1>"), ("From", "<sip:a@b>;tag=9"),
                            ("Call-ID", method), ("CSeq", f"1 {method}")):  # fmt: skip
            req.add(name, value)
        net.uas.receive_datagram(req.serialize(), UAC_ADDR, 0.0)
        ((data, _),) = net.uas.datagrams_to_send()
        resp = parse_message(data)
        assert isinstance(resp, SipResponse) and resp.status == status
        assert "BYE" in ",".join(resp.values("Allow"))


def test_reinvite_hold_and_info_dtmf():
    net = Net()
    call_id, _ = setup_call(net)
    net.uas.events_received()
    call = net.uac.calls[call_id]
    reinvite = in_dialog_request(call, "INVITE", UAC_ADDR)
    reinvite.add("Content-Type", "application/sdp")
    reinvite.body = build_sdp("127.0.0.1", RTP_UAC[1], offer_formats(("pcmu",)),
                              session_id=1, version=2, direction="sendonly")  # fmt: skip
    net.uac._client(reinvite, UAS_ADDR, net.now, call_id)  # noqa: SLF001
    net.pump()
    (updated,) = net.uas.events_received()
    assert isinstance(updated, CallUpdated) and updated.on_hold
    assert updated.negotiated.direction == "recvonly"
    assert len(net.sent("uas", "SIP/2.0 200")) == 2  # the first INVITE's and the re-INVITE's
    info = in_dialog_request(call, "INFO", UAC_ADDR)
    info.add("Content-Type", "application/dtmf-relay")
    info.body = b"Signal=*\r\nDuration=160\r\n"
    net.uac._client(info, UAS_ADDR, net.now, call_id)  # noqa: SLF001
    net.pump()
    assert net.uas.events_received() == [DtmfInfo(call_id, "*")]


def test_fuzzed_datagrams_never_raise():
    net = Net()
    net.uac.invite("sip:7001@127.0.0.1", UAS_ADDR, RTP_UAC, 0.0)
    ((seed, _),) = net.uac.datagrams_to_send()
    rng = random.Random(4475)
    for _ in range(3000):
        data = bytearray(seed)
        for _ in range(rng.randint(1, 8)):
            op = rng.random()
            pos = rng.randrange(len(data))
            if op < 0.4:
                data[pos] = rng.randrange(256)
            elif op < 0.7:
                del data[pos : pos + rng.randint(1, 40)]
            else:
                data[pos:pos] = rng.choice([b"\r\n", b":", b";", b",", b"<", b'"', b" ", b"\r\n "])
        try:
            parse_message(bytes(data))
        except SipError:
            pass
        net.uas.receive_datagram(bytes(data), UAC_ADDR, 0.0)  # must not raise
        net.uas.datagrams_to_send()
        net.uas.events_received()
        net.uas.calls.clear()
        net.uas.server_tx.clear()
