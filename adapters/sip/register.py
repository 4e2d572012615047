"""Registration with a registrar (RFC 3261 §10), with digest authentication when it asks
(RFC 3261 §22.2, RFC 8760: SHA-256 or MD5, :mod:`adapters.sip.digest`), sans-IO.

:class:`Registration` belongs to a :class:`~adapters.sip.ua.UserAgent`: :meth:`start`
sends a REGISTER (a non-INVITE client transaction, Timer E/F); a 401/407 is answered once
per nonce with the credentials (a new CSeq, same Call-ID, §10.2.4) — a second challenge with
the same nonce, unless ``stale=true``, means the password is wrong and registration fails;
a 2xx is :class:`~adapters.sip.events.Registered` with the expiry the registrar granted
(the Contact's ``expires`` or the Expires header), refreshed at 80 % of it; anything else,
or no answer in 64·T1, is :class:`~adapters.sip.events.RegistrationFailed` and a retry
after ``retry_after`` seconds. The password is never logged or put in an event.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from adapters.sip.dialog import new_tag, out_of_dialog_request
from adapters.sip.digest import DigestError, authorization, parse_challenge
from adapters.sip.events import Registered, RegistrationFailed
from adapters.sip.message import SipResponse, header_params

if TYPE_CHECKING:
    from adapters.sip.ua import UserAgent

__all__ = ["Registration", "RegistrationConfig"]


@dataclass(frozen=True)
class RegistrationConfig:
    registrar: tuple[str, int]
    user: str
    password: str = field(repr=False)
    domain: str = ""  # the AOR's host; the registrar's address if empty
    expires: int = 300
    retry_after: float = 30.0


class Registration:
    """One binding of our Contact at a registrar (module docstring)."""

    def __init__(self, ua: UserAgent, config: RegistrationConfig) -> None:
        self.ua = ua
        self.config = config
        self.call_id = secrets.token_hex(12)
        self.tag = new_tag()
        self.cseq = 0
        self.registered = False
        self.expires = 0
        self.next_at: float | None = None
        self._nonces: set[str] = set()
        self._branch = ""

    @property
    def aor(self) -> str:
        host = self.config.domain or self.config.registrar[0]
        return f"sip:{self.config.user}@{host}"

    def start(self, now: float, auth: tuple[str, str] | None = None) -> None:
        """Send a REGISTER (with an ``(header, value)`` authorization, if answering one)."""
        self.cseq += 1
        self.next_at = None
        cfg = self.config
        uri = f"sip:{cfg.domain or cfg.registrar[0]}"
        req = out_of_dialog_request("REGISTER", uri, self.aor, self.aor, self.ua.local,
                                    call_id=self.call_id, cseq=self.cseq,
                                    from_tag=self.tag)  # fmt: skip
        req.add("Contact", self.ua.contact)
        req.add("Expires", str(cfg.expires))
        if auth is not None:
            req.add(*auth)
        self._branch = header_params(req.values("Via")[0])[1]["branch"]
        self.ua._client(req, cfg.registrar, now, "")  # noqa: SLF001

    def owns(self, branch: str) -> bool:
        return branch == self._branch

    def on_response(self, resp: SipResponse, now: float) -> None:
        if resp.status < 200:
            return
        if resp.status in (401, 407):
            self._challenged(resp, now)
        elif resp.status < 300:
            self._nonces.clear()
            self.registered = True
            self.expires = self._granted(resp)
            self.next_at = now + max(self.expires * 0.8, 1.0)
            self.ua._events.append(Registered(self.expires))  # noqa: SLF001
        else:
            self._fail(resp.status, "refused", now)

    def on_timeout(self, now: float) -> None:
        self._fail(408, "no answer", now)

    def _challenged(self, resp: SipResponse, now: float) -> None:
        name = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
        answer = "Authorization" if resp.status == 401 else "Proxy-Authorization"
        try:
            challenge = parse_challenge(resp.get(name) or "")
        except DigestError as exc:
            return self._fail(resp.status, str(exc), now)
        if challenge.nonce in self._nonces and not challenge.stale:
            return self._fail(resp.status, "credentials refused", now)
        self._nonces.add(challenge.nonce)
        cfg = self.config
        uri = f"sip:{cfg.domain or cfg.registrar[0]}"
        value = authorization(challenge, cfg.user, cfg.password, "REGISTER", uri)
        self.start(now, (answer, value))

    def _granted(self, resp: SipResponse) -> int:
        for contact in resp.values("Contact"):
            main, params = header_params(contact)
            if self.ua.contact.strip("<>") in main and params.get("expires", "").isdigit():
                return int(params["expires"])
        expires = resp.get("Expires") or ""
        return int(expires) if expires.isdigit() else self.config.expires

    def _fail(self, status: int, reason: str, now: float) -> None:
        self.registered = False
        self._nonces.clear()
        self.next_at = now + self.config.retry_after
        self.ua._events.append(RegistrationFailed(status, reason))  # noqa: SLF001

    def get_timer(self) -> float | None:
        return self.next_at

    def handle_timer(self, now: float) -> None:
        if self.next_at is not None and now >= self.next_at:
            self.start(now)
