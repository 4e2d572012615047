"""Requests the user agent serves (the UAS half of :class:`adapters.sip.ua.UserAgent`, see
its docstring), no I/O: INVITE, re-INVITE (hold), BYE, CANCEL, OPTIONS and INFO
(``application/dtmf-relay``)."""
# ruff: noqa: SLF001 - one object split across modules

from __future__ import annotations

from typing import TYPE_CHECKING

from adapters.sip.dialog import Call, new_tag, uri_address, uri_of, uri_user
from adapters.sip.events import CallUpdated, DtmfInfo, IncomingCall
from adapters.sip.message import SipRequest, header_params
from adapters.sip.sdp import SdpError, answer, parse_sdp
from adapters.sip.transaction import ServerTransaction

if TYPE_CHECKING:
    from adapters.sip.ua import UserAgent

__all__ = ["on_invite", "on_bye", "on_cancel", "on_info", "on_options", "on_reinvite"]

DIGITS = set("0123456789*#ABCD")


def on_invite(ua: UserAgent, tx: ServerTransaction, req: SipRequest, now: float) -> None:
    if header_params(req.get("To") or "")[1].get("tag"):
        on_reinvite(ua, tx, req, now)
        return
    user = uri_user(req.uri)
    if ua.config.extensions and user not in ua.config.extensions:
        return ua._refuse(tx, req, 404, "unknown_extension", now)
    if req.call_id in ua.calls:
        return ua._refuse(tx, req, 482, "merged_request", now)
    try:
        negotiated = answer(parse_sdp(req.body), ua.config.codecs)
    except SdpError as exc:
        return ua._refuse(tx, req, exc.status, "sdp_" + exc.code, now)
    ua._respond(tx, req, 100, now)
    contact = req.get("Contact")
    target = uri_of(contact) if contact else uri_of(req.get("From") or "")
    call = Call(
        req.call_id, new_tag(), uri_of(req.get("To") or ""), uri_of(req.get("From") or ""),
        target, uri_address(target) or tx.dest, outgoing=False, state="offered",
        remote_tag=header_params(req.get("From") or "")[1].get("tag", ""),
        route=req.values("Record-Route"), remote_cseq=req.cseq[0], invite=req,
        negotiated=negotiated, user=user,
    )  # fmt: skip
    ua.calls[call.call_id] = call
    ua._events.append(IncomingCall(call.call_id, user, call.remote_uri, negotiated))


def on_reinvite(ua: UserAgent, tx: ServerTransaction, req: SipRequest, now: float) -> None:
    call = ua._dialog(req)
    if call is None or call.state != "confirmed":
        return ua._refuse(tx, req, 481, "no_dialog", now)
    try:
        offer = parse_sdp(req.body)
        call.negotiated = answer(offer, ua.config.codecs)
    except SdpError as exc:
        return ua._refuse(tx, req, exc.status, "sdp_" + exc.code, now, call.local_tag)
    call.remote_cseq, call.invite, call.on_hold = req.cseq[0], req, offer.on_hold
    ua._respond(tx, req, 200, now, tag=call.local_tag, body=ua._sdp(call))
    ua._events.append(CallUpdated(call.call_id, call.negotiated, offer.on_hold))


def on_bye(ua: UserAgent, tx: ServerTransaction, req: SipRequest, now: float) -> None:
    call = ua._dialog(req)
    if call is None or call.state == "ended":
        return ua._refuse(tx, req, 481, "no_dialog", now)
    ua._respond(tx, req, 200, now, tag=call.local_tag)
    ua._end(call, "bye")


def on_cancel(ua: UserAgent, tx: ServerTransaction, req: SipRequest, now: float) -> None:
    branch = tx.branch
    invite_tx = ua.server_tx.get((branch, "INVITE"))
    call = ua.calls.get(req.call_id)
    if invite_tx is None or invite_tx.final or call is None or call.invite is None:
        return ua._refuse(tx, req, 481, "no_transaction", now)
    ua._respond(tx, req, 200, now, tag=call.local_tag)
    ua._respond(invite_tx, call.invite, 487, now, tag=call.local_tag)
    ua._end(call, "cancel")


def on_options(ua: UserAgent, tx: ServerTransaction, req: SipRequest, now: float) -> None:
    ua._respond(tx, req, 200, now)


def on_info(ua: UserAgent, tx: ServerTransaction, req: SipRequest, now: float) -> None:
    call = ua._dialog(req)
    if call is None:
        return ua._refuse(tx, req, 481, "no_dialog", now)
    ua._respond(tx, req, 200, now, tag=call.local_tag)
    if (req.get("Content-Type") or "").lower().startswith("application/dtmf-relay"):
        for line in req.body.decode("utf-8", "replace").splitlines():
            name, _, value = line.partition("=")
            digit = value.strip()
            if name.strip().lower() == "signal" and digit in DIGITS:
                ua._events.append(DtmfInfo(call.call_id, digit))
