"""Requests inside a dialog that the user agent serves (the UAS half of
:class:`adapters.sip.ua.UserAgent`, see its docstring), no I/O: re-INVITE (hold), BYE,
CANCEL, OPTIONS and INFO (``application/dtmf-relay``)."""
# ruff: noqa: SLF001 - one object split across modules

from __future__ import annotations

from typing import TYPE_CHECKING

from adapters.sip.events import CallUpdated, DtmfInfo
from adapters.sip.message import SipRequest
from adapters.sip.sdp import SdpError, answer, parse_sdp
from adapters.sip.transaction import ServerTransaction

if TYPE_CHECKING:
    from adapters.sip.ua import UserAgent

__all__ = ["on_bye", "on_cancel", "on_info", "on_options", "on_reinvite"]

DIGITS = set("0123456789*#ABCD")


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
