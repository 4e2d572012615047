"""SIP dialogs (RFC 3261 §12) and the messages built from them, no I/O.

A :class:`Call` is one INVITE dialog, ours (UAC) or the peer's (UAS), with its tags, CSeq
counters, remote target and route set. The builders here make the messages the user agent
core (:mod:`adapters.sip.ua`) sends:

* :func:`build_response` — a response to a request (§8.2.6): every ``Via`` copied (the top one
  with ``received``/``rport`` filled in, RFC 3581), ``From``, ``Call-ID``, ``CSeq`` copied and
  ``To`` given our tag;
* :func:`in_dialog_request` — BYE, ACK, re-INVITE inside a dialog (§12.2.1.1): Request-URI
  the remote target, ``Route`` the route set, the dialog's tags and a fresh branch;
* :func:`out_of_dialog_request` — INVITE, REGISTER, OPTIONS outside a dialog (§8.1.1).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Literal

from adapters.sip.message import SipRequest, SipResponse, header_params
from adapters.sip.sdp import Negotiated

__all__ = [
    "ALLOW",
    "Call",
    "CallState",
    "build_response",
    "in_dialog_request",
    "new_branch",
    "new_tag",
    "out_of_dialog_request",
    "uri_address",
    "uri_of",
    "uri_user",
]

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO"
MAGIC = "z9hG4bK"  # RFC 3261 branch prefix (§8.1.1.7)
REASONS = {
    100: "Trying", 180: "Ringing", 200: "OK", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 413: "Request Entity Too Large",
    415: "Unsupported Media Type", 481: "Call/Transaction Does Not Exist", 482: "Loop Detected",
    483: "Too Many Hops", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 500: "Server Internal Error", 501: "Not Implemented",
    503: "Service Unavailable", 505: "Version Not Supported", 513: "Message Too Large",
}  # fmt: skip
CallState = Literal["offered", "answered", "confirmed", "calling", "ended"]
_URI = re.compile(r"<([^>]*)>")
_HOSTPORT = re.compile(r"^(?:\[([0-9A-Fa-f:.]+)\]|([^:;>]+))(?::(\d+))?")


def new_branch() -> str:
    return MAGIC + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(6)


def uri_of(name_addr: str) -> str:
    """The URI of a ``From``/``To``/``Contact`` value (``"A" <sip:a@b>;tag=x`` → ``sip:a@b``)."""
    m = _URI.search(name_addr)
    if m:
        return m.group(1).strip()
    return header_params(name_addr)[0].strip()


def uri_user(uri: str) -> str:
    """The user part of a SIP URI (``sip:1001@host;user=phone`` → ``1001``), or ``""``."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    user, at, _ = rest.partition("@")
    return user.partition(";")[0] if at else ""


def uri_address(uri: str, default_port: int = 5060) -> tuple[str, int] | None:
    """(host, port) of a SIP URI if its host is an IP literal, else None (no DNS here)."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    rest = rest.partition("@")[2] or rest
    m = _HOSTPORT.match(rest)
    if not m:
        return None
    host = m.group(1) or m.group(2) or ""
    if not re.fullmatch(r"[0-9.]+|[0-9A-Fa-f:]+", host) or ":" not in host and host.count(".") != 3:
        return None
    return host, int(m.group(3) or default_port)


@dataclass
class Call:
    """One INVITE dialog (module docstring)."""

    call_id: str
    local_tag: str
    local_uri: str
    remote_uri: str
    remote_target: str
    peer: tuple[str, int]  # where in-dialog requests go
    outgoing: bool
    state: CallState
    remote_tag: str = ""
    route: list[str] = field(default_factory=list)
    local_cseq: int = 1
    remote_cseq: int = 0
    invite: SipRequest | None = None  # the INVITE being answered (UAS) or sent (UAC)
    negotiated: Negotiated | None = None
    local_rtp: tuple[str, int] | None = None
    session_id: int = field(default_factory=lambda: secrets.randbelow(2**31))
    sdp_version: int = 1
    user: str = ""  # the dialled user part (UAS) or the callee's (UAC)
    on_hold: bool = False

    def next_cseq(self) -> int:
        self.local_cseq += 1
        return self.local_cseq


def _received(via: str, addr: tuple[str, int]) -> str:
    """The top Via with ``received`` and ``rport`` filled (RFC 3261 §18.2.1, RFC 3581)."""
    main, params = header_params(via)
    if "rport" not in params and main.rsplit(" ", 1)[-1].split(":")[0] == addr[0]:
        return via
    params["received"] = addr[0]
    if "rport" in params:
        params["rport"] = str(addr[1])
    return main + "".join(f";{k}={v}" if v else f";{k}" for k, v in params.items())


def build_response(
    req: SipRequest,
    status: int,
    addr: tuple[str, int],
    *,
    to_tag: str | None = None,
    contact: str | None = None,
    body: bytes = b"",
    server: str = "crossband-sip",
) -> SipResponse:
    """A response to ``req`` (module docstring)."""
    resp = SipResponse(status=status, reason=REASONS.get(status, "Unknown"))
    for i, via in enumerate(req.values("Via")):
        resp.add("Via", _received(via, addr) if i == 0 else via)
    resp.add("From", req.get("From") or "")
    to = req.get("To") or ""
    if to_tag and "tag" not in header_params(to)[1] and status > 100:
        to += f";tag={to_tag}"
    resp.add("To", to)
    resp.add("Call-ID", req.call_id)
    resp.add("CSeq", req.get("CSeq") or "")
    if 200 <= status < 300 and req.method == "INVITE":
        for rr in req.values("Record-Route"):
            resp.add("Record-Route", rr)  # §12.1.1
    if contact:
        resp.add("Contact", contact)
    if status == 405 or (req.method == "OPTIONS" and status == 200):
        resp.add("Allow", ALLOW)
    if req.method == "OPTIONS" and status == 200:
        resp.add("Accept", "application/sdp")
    resp.add("Server", server)
    if body:
        resp.add("Content-Type", "application/sdp")
    resp.body = body
    return resp


def _via(local: tuple[str, int], branch: str, transport: str = "UDP") -> str:
    return f"SIP/2.0/{transport} {local[0]}:{local[1]};branch={branch};rport"


def in_dialog_request(
    call: Call, method: str, local: tuple[str, int], *, cseq: int | None = None, branch: str = ""
) -> SipRequest:
    """A request inside ``call``'s dialog (module docstring); ``cseq`` defaults to the next."""
    req = SipRequest(method=method, uri=call.remote_target)
    req.add("Via", _via(local, branch or new_branch()))
    for route in call.route:
        req.add("Route", route)
    req.add("Max-Forwards", "70")
    req.add("From", f"<{call.local_uri}>;tag={call.local_tag}")
    req.add("To", f"<{call.remote_uri}>" + (f";tag={call.remote_tag}" if call.remote_tag else ""))
    req.add("Call-ID", call.call_id)
    number = call.next_cseq() if cseq is None else cseq
    req.add("CSeq", f"{number} {method}")  # ACK and CANCEL: the INVITE's number (§13.2.2.4)
    return req


def out_of_dialog_request(
    method: str,
    uri: str,
    from_uri: str,
    to_uri: str,
    local: tuple[str, int],
    *,
    call_id: str,
    cseq: int,
    from_tag: str,
    branch: str | None = None,
) -> SipRequest:
    """A request that starts a dialog or stands alone (module docstring)."""
    req = SipRequest(method=method, uri=uri)
    req.add("Via", _via(local, branch or new_branch()))
    req.add("Max-Forwards", "70")
    req.add("From", f"<{from_uri}>;tag={from_tag}")
    req.add("To", f"<{to_uri}>")
    req.add("Call-ID", call_id)
    req.add("CSeq", f"{cseq} {method}")
    return req
