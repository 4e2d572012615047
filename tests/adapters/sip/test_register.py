"""Registration with digest authentication (RFC 3261 §10, §22; RFC 8760), sans-IO against a
registrar written here that checks the response with the RFC 7616 formula."""

from __future__ import annotations

import pytest

from adapters.errors import AdapterConfigError
from adapters.sip.config import load_sip_config
from adapters.sip.dialog import build_response
from adapters.sip.digest import parse_challenge, response
from adapters.sip.events import Registered, RegistrationFailed
from adapters.sip.message import SipRequest, parse_message
from adapters.sip.register import RegistrationConfig
from adapters.sip.transaction import T1
from adapters.sip.ua import UaConfig, UserAgent

REGISTRAR = ("127.0.0.1", 5090)
US = ("127.0.0.1", 5080)


class Registrar:
    """Challenges with ``algorithm``, accepts ``password`` for user ``gw``."""

    def __init__(self, algorithm: str = "SHA-256", password: str = "s3cret") -> None:
        self.algorithm, self.password = algorithm, password
        self.nonce = "n0nce-1"
        self.seen: list[SipRequest] = []

    def answer(self, data: bytes) -> bytes:
        req = parse_message(data)
        assert isinstance(req, SipRequest) and req.method == "REGISTER"
        self.seen.append(req)
        auth = req.get("Authorization")
        if auth is None:
            resp = build_response(req, 401, US, to_tag="r1")
            resp.add("WWW-Authenticate", f'Digest realm="crossband.test", nonce="{self.nonce}", '
                                         f'algorithm={self.algorithm}, qop="auth"')  # fmt: skip
            return resp.serialize()
        params = dict(p.strip().split("=", 1) for p in auth[len("Digest ") :].split(","))
        params = {k: v.strip('"') for k, v in params.items()}
        ch = parse_challenge(f'Digest realm="crossband.test", nonce="{self.nonce}", '
                             f'algorithm={self.algorithm}, qop="auth"')  # fmt: skip
        expected = response(ch, "gw", self.password, "REGISTER", params["uri"],
                            cnonce=params["cnonce"], nc=int(params["nc"], 16))  # fmt: skip
        if params["response"] != expected:
            resp = build_response(req, 401, US, to_tag="r1")  # the same nonce again
            resp.add("WWW-Authenticate", f'Digest realm="crossband.test", nonce="{self.nonce}", '
                                         f'algorithm={self.algorithm}, qop="auth"')  # fmt: skip
            return resp.serialize()
        resp = build_response(req, 200, US, to_tag="r1")
        resp.add("Contact", f"{req.get('Contact')};expires=120")
        return resp.serialize()


def run(ua: UserAgent, registrar: Registrar, now: float) -> list[object]:
    for _ in range(10):
        out = ua.datagrams_to_send()
        if not out:
            break
        for data, dest in out:
            assert dest == REGISTRAR
            ua.receive_datagram(registrar.answer(data), REGISTRAR, now)
    return list(ua.events_received())


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_register_with_digest_and_refresh(algorithm):
    ua = UserAgent(UaConfig(*US))
    registrar = Registrar(algorithm)
    ua.register(RegistrationConfig(REGISTRAR, "gw", "s3cret"), 0.0)
    assert run(ua, registrar, 0.0) == [Registered(120)]
    first, second = registrar.seen
    assert first.call_id == second.call_id and second.cseq[0] == first.cseq[0] + 1  # §10.2.4
    assert f"algorithm={algorithm}" in (second.get("Authorization") or "")
    assert "s3cret" not in (second.get("Authorization") or "")
    assert ua.registration is not None
    assert ua.registration.get_timer() == pytest.approx(96.0)  # at 80 % of the 120 s granted
    while (t := ua.get_timer()) is not None and t <= 96.0:
        ua.handle_timer(t)
    assert run(ua, registrar, 96.0) == [Registered(120)] and len(registrar.seen) == 4


def test_wrong_password_fails_once_not_forever():
    ua = UserAgent(UaConfig(*US))
    registrar = Registrar(password="other")
    ua.register(RegistrationConfig(REGISTRAR, "gw", "s3cret", retry_after=30.0), 0.0)
    events = run(ua, registrar, 0.0)
    assert events == [RegistrationFailed(401, "credentials refused")]
    assert len(registrar.seen) == 2  # one answer to the challenge, no loop
    assert ua.registration is not None and ua.registration.next_at == 30.0


def test_no_registrar_times_out_with_timer_f():
    ua = UserAgent(UaConfig(*US))
    ua.register(RegistrationConfig(REGISTRAR, "gw", "s3cret"), 0.0)
    ua.datagrams_to_send()
    now = 0.0
    while (t := ua.get_timer()) is not None and t <= 64 * T1 + 0.1:
        now = t
        ua.handle_timer(now)
    assert ua.events_received() == [RegistrationFailed(408, "no answer")]
    assert len(ua.datagrams_to_send()) == 10  # Timer E retransmissions before Timer F


def test_register_config_password_file(tmp_path):
    pw = tmp_path / "sip.pass"
    pw.write_text("s3cret\n")
    pw.chmod(0o644)
    raw = {
        "listen": "127.0.0.1:0",
        "lines": [{"extension": "1", "channel": "c"}],
        "register": {"registrar": "127.0.0.1:5090", "user": "gw", "password_file": str(pw)},
    }
    with pytest.raises(AdapterConfigError) as info:
        load_sip_config(raw)
    assert info.value.setting == "sip.register.password_file" and "0600" in info.value.problem
    pw.chmod(0o600)
    cfg = load_sip_config(raw)
    assert cfg.register is not None and cfg.register.password == "s3cret"
    assert "s3cret" not in repr(cfg)
