"""Responses to our requests (the UAC half of :class:`adapters.sip.ua.UserAgent`), no I/O.

A response is matched to its client transaction by the top Via's branch (RFC 3261
§17.1.3); one matching none is dropped. For our INVITE: a 2xx sets up the dialog (§12.1.2:
remote tag, remote target from Contact, the route set from Record-Route reversed), is ACKed
— and every retransmission of it gets the same ACK (§13.2.2.4) — and its SDP answer gives the
media (:func:`adapters.sip.sdp.answer` applied to the answer picks the codec it chose and
mirrors its direction); a final ≥300 is ACKed on the INVITE's branch (§17.1.1.3) and ends
the call.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from adapters.sip.dialog import (
    Call,
    in_dialog_request,
    new_tag,
    out_of_dialog_request,
    uri_address,
    uri_of,
    uri_user,
)
from adapters.sip.events import CallAnswered, CallEnded
from adapters.sip.message import SipRequest, SipResponse, header_params, parse_message
from adapters.sip.sdp import SdpError, answer, build_sdp, offer_formats, parse_sdp

if TYPE_CHECKING:
    from adapters.sip.ua import UserAgent

__all__ = ["hangup", "invite", "on_response"]


def _error_ack(invite_data: bytes, resp: SipResponse) -> SipRequest:
    """The ACK of a non-2xx final response (§17.1.1.3): the INVITE's Request-URI, top Via,
    From, Call-ID, Route and CSeq number, the response's To."""
    invite = parse_message(invite_data)
    assert isinstance(invite, SipRequest)
    ack = SipRequest(method="ACK", uri=invite.uri)
    ack.add("Via", invite.values("Via")[0])
    for route in invite.values("Route"):
        ack.add("Route", route)
    ack.add("Max-Forwards", "70")
    ack.add("From", invite.get("From") or "")
    ack.add("To", resp.get("To") or "")
    ack.add("Call-ID", invite.call_id)
    ack.add("CSeq", f"{invite.cseq[0]} ACK")
    return ack


def invite(
    ua: UserAgent, target: str, dest: tuple[str, int], rtp: tuple[str, int], now: float
) -> str:
    """Send an INVITE with our offer (see :meth:`UserAgent.invite`)."""
    call_id = secrets.token_hex(12)
    local_uri = f"sip:{ua.config.user}@{ua.config.host}"
    call = Call(call_id, new_tag(), local_uri, target, target, dest, outgoing=True,
                state="calling", local_rtp=rtp, user=uri_user(target))  # fmt: skip
    req = out_of_dialog_request("INVITE", target, local_uri, target, ua.local,
                                call_id=call_id, cseq=1, from_tag=call.local_tag)  # fmt: skip
    req.add("Contact", ua.contact)
    req.add("Content-Type", "application/sdp")
    req.body = build_sdp(rtp[0], rtp[1], offer_formats(ua.config.codecs),
                         session_id=call.session_id)  # fmt: skip
    call.invite = req
    ua.calls[call_id] = call
    ua._client(req, dest, now, call_id)  # noqa: SLF001
    return call_id


def hangup(ua: UserAgent, call: Call, now: float) -> None:
    """BYE (Timer E/F), or CANCEL while our INVITE has no final response (§9.1)."""
    if call.state == "calling" and call.invite is not None:
        cancel = in_dialog_request(call, "CANCEL", ua.local, cseq=1)
        cancel.uri = call.invite.uri
        cancel.set("Via", call.invite.values("Via")[0])  # the INVITE's branch (§9.1)
        cancel.set("To", f"<{call.remote_uri}>")
        ua._client(cancel, call.peer, now, call.call_id)  # noqa: SLF001
    elif call.state in ("confirmed", "answered"):
        ua._client(in_dialog_request(call, "BYE", ua.local), call.peer, now, call.call_id)  # noqa: SLF001
    ua._end(call, "local")  # noqa: SLF001


def on_response(ua: UserAgent, resp: SipResponse, now: float) -> None:
    branch = header_params(resp.values("Via")[0])[1].get("branch", "")
    tx = ua.client_tx.get((branch, resp.cseq[1]))
    if tx is None:
        ua.stats["dropped"] += 1
        return
    first = tx.on_response(resp.status, now)
    reg = ua.registration
    if tx.method == "REGISTER" and first and reg is not None and reg.owns(branch):
        reg.on_response(resp, now)
    if tx.method != "INVITE" or resp.status < 200:
        return
    call_id = ua._tx_call.get(branch, "")  # noqa: SLF001 - one object split in two modules
    call = ua.calls.get(call_id)
    acks = ua.acks
    if not first:
        if call_id in acks:  # a retransmitted final response: the same ACK again
            ua._send(*acks[call_id])  # noqa: SLF001
        return
    if resp.status >= 300:  # ACKed even if we hung up meanwhile (the 487 to our CANCEL)
        acks[call_id] = (_error_ack(tx.data, resp).serialize(), tx.dest)
        ua._send(*acks[call_id])  # noqa: SLF001
        if call is not None and call.state == "calling":
            call.state = "ended"
            ua.calls.pop(call_id, None)
            ua._events.append(CallEnded(call_id, "rejected", resp.status))  # noqa: SLF001
        return
    if call is None or call.state != "calling":
        return
    call.remote_tag = header_params(resp.get("To") or "")[1].get("tag", "")
    contact = resp.get("Contact")
    if contact:
        call.remote_target = uri_of(contact)
        call.peer = uri_address(call.remote_target) or call.peer
    call.route = list(reversed(resp.values("Record-Route")))
    ack = in_dialog_request(call, "ACK", ua.local, cseq=1)
    acks[call_id] = (ack.serialize(), call.peer)
    ua._send(*acks[call_id])  # noqa: SLF001
    try:
        call.negotiated = answer(parse_sdp(resp.body), ua.config.codecs)
    except SdpError:
        call.state = "confirmed"
        ua.hangup(call_id, now)  # an answer we cannot use: hang up (RFC 3261 §13.2.2.4)
        return
    call.state = "confirmed"
    ua._events.append(CallAnswered(call_id, call.negotiated))  # noqa: SLF001
