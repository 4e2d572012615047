"""The sans-IO SIP user agent core (RFC 3261): UAS and UAC over UDP.

Driven by ``receive_datagram(data, addr, now)``, ``handle_timer(now)`` and :meth:`answer`,
:meth:`ring`, :meth:`reject`, :meth:`hangup`, :meth:`invite`, :meth:`register`; read with
``datagrams_to_send()``, ``events_received()``, ``get_timer()``; ``now``: monotonic seconds.

How a call in goes: an INVITE (no To tag) to a configured extension (``extensions``; any user
if empty, else 404) with an SDP offer we can answer (else 488, :mod:`adapters.sip.sdp`) gets
100 Trying and becomes :class:`IncomingCall`; the application opens its RTP socket and calls
:meth:`answer`, which sends 200 OK with our SDP, retransmitted (T1 doubling to T2) until the
ACK — or, after 64·T1 without one, BYE and ``CallEnded("no_ack")`` (§13.3.1.4). CANCEL before
the answer: 200 to the CANCEL, 487 to the INVITE (§9.2). BYE: 200 and ``CallEnded("bye")``.
A re-INVITE is answered with our SDP again (hold: ``CallUpdated``); a request for no known
dialog gets 481 (§12.2.2); OPTIONS 200; other methods 405; a malformed request with readable
headers 400 (or its :class:`~adapters.sip.message.SipError` status), else it is dropped.
Retransmitted requests get the last response again; responses go to the source (RFC 3581).

Calls out: :mod:`adapters.sip.uac`; registration: :mod:`adapters.sip.register`.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.sip import uac, uas
from adapters.sip.dialog import (
    Call,
    build_response,
    in_dialog_request,
    new_tag,
)
from adapters.sip.events import (
    CallConfirmed,
    CallEnded,
    Refused,
    UaEvent,
)
from adapters.sip.message import (
    SipError,
    SipRequest,
    SipResponse,
    header_params,
    parse_message,
)
from adapters.sip.register import Registration, RegistrationConfig
from adapters.sip.sdp import Codec, build_sdp
from adapters.sip.transaction import ClientTransaction, ServerTransaction

__all__ = ["UaConfig", "UserAgent"]

Addr = tuple[str, int]


@dataclass(frozen=True)
class UaConfig:
    """Where we are (``host``:``port``, as put in Via/Contact), which user parts we answer,
    and the codecs we offer and accept, in order of preference."""

    host: str
    port: int
    extensions: tuple[str, ...] = ()
    codecs: tuple[Codec, ...] = ("pcmu", "pcma", "opus")
    user: str = "crossband"
    server: str = "crossband-sip"


class UserAgent:
    """The UAS + UAC core (module docstring)."""

    def __init__(self, config: UaConfig) -> None:
        self.config = config
        self.port = config.port  # the driver sets the bound one (``port: 0``)
        self.calls: dict[str, Call] = {}
        self.server_tx: dict[tuple[str, str], ServerTransaction] = {}
        self.client_tx: dict[tuple[str, str], ClientTransaction] = {}  # (branch, method)
        self.stats = {"malformed": 0, "dropped": 0, "refused": 0, "retransmits": 0, "resent": 0}
        self._out: list[tuple[bytes, Addr]] = []
        self._events: list[UaEvent] = []
        self._tx_call: dict[str, str] = {}  # client branch → call id (CANCEL shares it)
        self.acks: dict[str, tuple[bytes, Addr]] = {}
        self.registration: Registration | None = None  # call id → our ACK of its final response

    @property
    def local(self) -> Addr:
        return (self.config.host, self.port)

    @property
    def contact(self) -> str:
        return f"<sip:{self.config.user}@{self.config.host}:{self.port}>"

    def datagrams_to_send(self) -> list[tuple[bytes, Addr]]:
        out, self._out = self._out, []
        return out

    def events_received(self) -> list[UaEvent]:
        out, self._events = self._events, []
        return out

    def _send(self, data: bytes, addr: Addr) -> None:
        self._out.append((data, addr))

    def _respond(self, tx: ServerTransaction, req: SipRequest, status: int, now: float,
                 *, tag: str | None = None, body: bytes = b"") -> None:  # fmt: skip
        contact = self.contact if req.method in ("INVITE", "OPTIONS") and status < 300 else None
        resp = build_response(req, status, tx.dest, to_tag=tag or new_tag(), contact=contact,
                              body=body, server=self.config.server)  # fmt: skip
        data = resp.serialize()
        tx.respond(status, data, now)
        self._send(data, tx.dest)

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        """Handle one datagram from ``addr``; never raises for what the peer sent."""
        try:
            msg = parse_message(data)
        except SipError as exc:
            self.stats["malformed"] += 1
            req = exc.partial
            if isinstance(req, SipRequest) and req.method != "ACK":
                tx = ServerTransaction("", req.method, addr)
                self._respond(tx, req, exc.status, now)
                self._events.append(Refused(exc.status, exc.code))
            else:
                self._events.append(Refused(0, exc.code))
            return
        if isinstance(msg, SipResponse):
            self._on_response(msg, now)
        else:
            self._on_request(msg, addr, now)

    def _on_request(self, req: SipRequest, addr: Addr, now: float) -> None:
        branch = header_params(req.values("Via")[0])[1].get("branch") or (
            f"{req.call_id}/{req.cseq[0]}"  # RFC 2543 peer: no branch
        )
        if req.method == "ACK":
            self._on_ack(req, branch, now)
            return
        key = (branch, req.method)
        if (old := self.server_tx.get(key)) is not None:
            self.stats["retransmits"] += 1
            if (last := old.on_retransmission()) is not None:
                self._send(last, old.dest)
            return
        tx = self.server_tx[key] = ServerTransaction(branch, req.method, addr, cseq=req.cseq[0])
        handler = {
            "INVITE": uas.on_invite,
            "BYE": uas.on_bye,
            "CANCEL": uas.on_cancel,
            "OPTIONS": uas.on_options,
            "INFO": uas.on_info,
        }.get(req.method)
        if handler is None:
            self._refuse(tx, req, 405, "method_not_allowed", now)
        else:
            handler(self, tx, req, now)

    def _refuse(self, tx: ServerTransaction, req: SipRequest, status: int, code: str,
                now: float, tag: str | None = None) -> None:  # fmt: skip
        self.stats["refused"] += 1
        self._respond(tx, req, status, now, tag=tag)
        self._events.append(Refused(status, code))

    def _dialog(self, req: SipRequest) -> Call | None:
        call = self.calls.get(req.call_id)
        to_tag = header_params(req.get("To") or "")[1].get("tag", "")
        from_tag = header_params(req.get("From") or "")[1].get("tag", "")
        if call is None or to_tag != call.local_tag or from_tag != call.remote_tag:
            return None
        return call

    def _sdp(self, call: Call) -> bytes:
        assert call.local_rtp is not None and call.negotiated is not None
        n = call.negotiated
        call.sdp_version += 1
        return build_sdp(call.local_rtp[0], call.local_rtp[1], [n.payload],
                         session_id=call.session_id, version=call.sdp_version,
                         dtmf_pt=n.dtmf_pt, direction=n.direction, ptime=n.ptime)  # fmt: skip

    def answer(self, call_id: str, rtp: Addr, now: float) -> None:
        """Answer an :class:`IncomingCall` with our RTP address ``rtp`` (200 OK + SDP)."""
        call = self.calls.get(call_id)
        if call is None or call.state != "offered" or call.invite is None:
            return  # cancelled meanwhile
        call.local_rtp, call.state = rtp, "answered"
        tx = self._invite_tx(call)
        if tx is not None:
            self._respond(tx, call.invite, 200, now, tag=call.local_tag, body=self._sdp(call))

    def ring(self, call_id: str, now: float) -> None:
        """Tell the caller we are ringing (180, with our tag) before :meth:`answer`."""
        call = self.calls.get(call_id)
        if call is not None and call.state == "offered" and call.invite is not None:
            if (tx := self._invite_tx(call)) is not None:
                self._respond(tx, call.invite, 180, now, tag=call.local_tag)

    def reject(self, call_id: str, status: int, now: float) -> None:
        call = self.calls.get(call_id)
        if call is None or call.state != "offered" or call.invite is None:
            return
        tx = self._invite_tx(call)
        if tx is not None:
            self._respond(tx, call.invite, status, now, tag=call.local_tag)
        self._end(call, "local", status)

    def _invite_tx(self, call: Call) -> ServerTransaction | None:
        assert call.invite is not None
        branch = header_params(call.invite.values("Via")[0])[1].get("branch", "")
        return self.server_tx.get((branch or f"{call.call_id}/{call.remote_cseq}", "INVITE"))

    def _on_ack(self, req: SipRequest, branch: str, now: float) -> None:
        tx = self.server_tx.get((branch, "INVITE"))
        if tx is not None and tx.final >= 300:
            tx.on_ack(now)  # the ACK of a non-2xx final: its own transaction (§17.2.1)
            return
        call = self._dialog(req)
        if call is None or call.invite is None or req.cseq[0] != call.remote_cseq:
            self.stats["dropped"] += 1
            return
        if (tx := self._invite_tx(call)) is not None:
            tx.on_ack(now)
        if call.state == "answered":
            call.state = "confirmed"
            self._events.append(CallConfirmed(call.call_id))

    def _end(self, call: Call, reason: str, status: int = 0) -> None:
        if call.state != "ended":
            call.state = "ended"
            self._events.append(CallEnded(call.call_id, reason, status))
        self.calls.pop(call.call_id, None)

    # --- UAC (adapters.sip.uac) ----------------------------------------------------------
    def invite(self, target: str, dest: Addr, rtp: Addr, now: float) -> str:
        """Call ``target`` (a SIP URI) at ``dest``; our RTP at ``rtp``; returns the Call-ID."""
        return uac.invite(self, target, dest, rtp, now)

    def hangup(self, call_id: str, now: float) -> None:
        """End a call from our side: BYE, CANCEL (our INVITE unanswered) or 486 (theirs)."""
        call = self.calls.get(call_id)
        if call is not None and call.state == "offered":
            self.reject(call_id, 486, now)
        elif call is not None:
            uac.hangup(self, call, now)

    def _client(self, req: SipRequest, dest: Addr, now: float, call_id: str) -> None:
        branch = header_params(req.values("Via")[0])[1]["branch"]
        data = req.serialize()
        self.client_tx[(branch, req.method)] = ClientTransaction(
            branch, req.method, data, dest, now
        )
        self._tx_call[branch] = call_id
        self._send(data, dest)

    def register(self, config: RegistrationConfig, now: float) -> None:
        """Register our Contact with a registrar (:mod:`adapters.sip.register`)."""
        self.registration = Registration(self, config)
        self.registration.start(now)

    def _on_response(self, resp: SipResponse, now: float) -> None:
        uac.on_response(self, resp, now)

    # --- timers ----------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        times = [t.get_timer() for t in self.server_tx.values()]
        times += [t.get_timer() for t in self.client_tx.values()]
        times.append(self.registration.get_timer() if self.registration else None)
        live = [t for t in times if t is not None]
        return min(live) if live else None

    def handle_timer(self, now: float) -> None:
        for key, stx in list(self.server_tx.items()):
            result = stx.handle_timer(now)
            if result.resend is not None:
                self.stats["resent"] += 1
                self._send(result.resend, stx.dest)
            if result.timed_out and stx.final < 300:
                call = next((c for c in self.calls.values() if c.state == "answered"
                             and self._invite_tx(c) is stx), None)  # fmt: skip
                if call is not None:  # no ACK for our 200: hang up (§13.3.1.4)
                    self._client(in_dialog_request(call, "BYE", self.local), call.peer, now,
                                 call.call_id)  # fmt: skip
                    self._end(call, "no_ack")
            if result.finished:
                del self.server_tx[key]
        for key, ctx in list(self.client_tx.items()):
            result = ctx.handle_timer(now)
            if result.resend is not None:
                self.stats["resent"] += 1
                self._send(result.resend, ctx.dest)
            if result.finished:
                del self.client_tx[key]
                call_id = self._tx_call.get(key[0], "")
                if not any(k[0] == key[0] for k in self.client_tx):
                    self._tx_call.pop(key[0], None)
                call = self.calls.get(call_id)
                if result.timed_out and call is not None and call.state == "calling":
                    self._end(call, "timeout")
                reg = self.registration
                if result.timed_out and reg is not None and reg.owns(key[0]):
                    reg.on_timeout(now)
        if self.registration is not None:
            self.registration.handle_timer(now)
