"""Sessions: connection caps, mutual authentication, the backlog, the directory, revocations.

Authentication (DESIGN §5): the relay sends a random challenge; the device answers with its
credential and an Ed25519 signature over (challenge, relay id, device, its own nonce). The
credential must verify against the relay's trust bundle and the agencies' revocation lists.
A connection over ``max_connections`` or ``max_unauthenticated`` is refused (``overloaded``);
one that has not authenticated within ``auth_timeout`` is closed (``auth-timeout``, by the
core's timer).

After ``welcome`` the device's stored items are read a page at a time (a
:class:`~bridge.relay.jobs.Backlog` job); live deliveries reach it only once it is caught up.
If the store refuses, the page is retried from the timer, and the device is told.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from bridge.errors import RemoteProtocolError
from bridge.relay.base import CoreBase, deliver_msg, safe_rid
from bridge.relay.jobs import Backlog, GetStates, Job, PutStates
from bridge.relay.ratelimit import TokenBucket
from bridge.relay.state import Outcome, Session
from bridge.relay.store import StoredItem
from bridge.wire import control as p
from bridge.wire.auth import AUTH_DOMAIN, relay_proof
from crypto.agreement import RevocationList, verify_revocation_list
from crypto.encoding import signing_input
from crypto.errors import Refusal, VerificationError
from crypto.identity import Credential, verify_credential

BACKLOG_PAGE = 200
BACKLOG_RETRY = 1.0  # seconds before a backlog page the store refused is asked again
MAX_LOOKUP = 1000


class SessionsMixin(CoreBase):
    invalidate_targets: Callable[[], None]  # MediaMixin: who is online changed
    forget_udp: Callable[[Session], None]  # MediaMixin: the session's UDP binding goes

    def connect(self, now: float) -> tuple[int, str]:
        """A new connection: its session id and the challenge, or ``overloaded``."""
        cfg = self.config
        if (
            len(self.sessions) >= cfg.max_connections
            or len(self.unauthenticated) >= cfg.max_unauthenticated
        ):
            self.metrics.c["connections_refused"] += 1
            raise RemoteProtocolError(p.Codes.OVERLOADED, "too many connections")
        sid = self._next_sid
        self._next_sid = sid + 1
        s = Session(
            sid,
            os.urandom(32),
            now,
            TokenBucket(cfg.control_rate, cfg.control_burst, now),
            TokenBucket(cfg.media_rate, cfg.media_burst, now),
        )
        self.sessions[sid] = s
        self.unauthenticated[sid] = s
        return sid, p.control("challenge", nonce=p.b64(s.nonce), relay=cfg.relay_id)

    def disconnect(self, sid: int, now: float, wall: float | None = None) -> Outcome:
        wall = self._wall(now, wall)
        s = self.sessions.pop(sid, None)
        self.unauthenticated.pop(sid, None)
        self.backlog_due.pop(sid, None)
        out = Outcome()
        if s is None or s.device is None:
            return out
        if self.by_device.get(s.device) is s:
            del self.by_device[s.device]
            self.invalidate_targets()
        self.by_token.pop(s.token, None)
        self.forget_udp(s)
        for chan in self.channels.values():
            if s.device in chan.members:
                out.extend(self._floor_events(chan, chan.floor.cancel(s.device, now), wall))
        self._audit("disconnect", wall, device=s.device, session=sid)
        return out

    def authenticate(self, sid: int, msg: dict[str, Any], now: float, wall: float) -> Outcome:
        s = self.sessions[sid]
        if sid not in self.unauthenticated:  # its deadline passed; the close is on its way
            raise RemoteProtocolError(p.Codes.AUTH_TIMEOUT)
        self._require_audit()
        try:
            cred = Credential.decode(msg["credential"])
            verify_credential(cred, self.trust, wall, self.revocations)
            nonce = msg["nonce"]
            proof = signing_input(
                AUTH_DOMAIN,
                {
                    "challenge": p.b64(s.nonce),
                    "relay": self.config.relay_id,
                    "device": cred.device,
                    "nonce": nonce,
                },
            )
            cred.sign_key.verify(p.unb64(msg["sig"]), proof)
        except VerificationError as exc:
            self.metrics.c["auth_refused"] += 1
            code = {
                Refusal.REVOKED: p.Codes.REVOKED,
                Refusal.UNPINNED_ROOT: p.Codes.UNKNOWN_DEVICE,
            }.get(exc.code, p.Codes.AUTH_FAILED)
            self._audit("auth-refused", wall, session=sid, reason=exc.code.value)
            raise RemoteProtocolError(code, exc.code.value)
        until = self.penalized.get(cred.device)
        if until is not None and now >= until:
            del self.penalized[cred.device]
        elif until is not None:
            self.metrics.c["auth_refused"] += 1
            detail = f"sent a message too large for its role; log in again in {until - now:.0f} s"
            raise RemoteProtocolError(p.Codes.TOO_LARGE, detail)
        old = self.by_device.get(cred.device)
        out = Outcome()
        if old is not None:  # a reconnect supersedes the stale connection
            out.close.append((old.id, p.Codes.DUPLICATE_SESSION))
            out.extend(self.disconnect(old.id, now, wall))
        relay_sig = None
        if self.config.signing_key is not None:
            # Mutual authentication: the relay proves its identity key over the device's own
            # fresh nonce, so a device that pins the relay's key detects an impostor.
            relay_sig = p.b64(
                self.config.signing_key.sign(
                    relay_proof(p.b64(s.nonce), self.config.relay_id, cred.device, nonce)
                )
            )
        del self.unauthenticated[sid]
        s.device, s.cred = cred.device, cred
        blob = cred.encode()
        self.directory[cred.device] = blob  # persisted by the backlog job below
        s.token, s.udp_key = os.urandom(p.TOKEN_LEN), os.urandom(32)
        self.by_device[cred.device] = s
        self.by_token[s.token] = s
        self.invalidate_targets()
        self._audit("auth", wall, device=cred.device, session=sid, serial=cred.serial)
        mine = [c for c in self.channels.values() if cred.device in c.members]
        welcome = p.control(
            "welcome",
            session=sid,
            device=cred.device,
            udp_token=p.b64(s.token),
            udp_key=p.b64(s.udp_key),
            udp_port=self.config.udp_port,
            relay_sig=relay_sig,
            channels=[{"ch": c.id, "no": c.no, "epoch": c.head.epoch} for c in mine],
        )
        out.sends.append((sid, welcome))
        out.sends += [(sid, self._floor_state(c)) for c in mine]
        out.sends += [(sid, revocation_list_msg(rl)) for rl in self.revocations.values()]
        out.jobs.append(self._backlog_job(s, wall, blob))
        return out

    def _backlog_job(self, s: Session, wall: float, credential: bytes | None = None) -> Job:
        assert s.device is not None
        op = Backlog(s.device, wall, s.delivered, BACKLOG_PAGE, credential)

        def failed(now: float) -> Outcome:
            if self.sessions.get(s.id) is not s:
                return Outcome()
            s.backlog_retry = now + BACKLOG_RETRY
            self.backlog_due[s.id] = s
            message = p.error(p.Codes.STORE_FAILED, "stored items unavailable; retrying")
            return Outcome([(s.id, message)])

        return Job(op, lambda items, _now: self._flush_backlog(s, items, wall), failed)

    def _retry_backlogs(self, now: float, wall: float) -> Outcome:
        out = Outcome()
        for sid, s in list(self.backlog_due.items()):
            if s.backlog_retry is not None and now >= s.backlog_retry and s.device is not None:
                del self.backlog_due[sid]
                s.backlog_retry = None
                out.jobs.append(self._backlog_job(s, wall, self.directory.get(s.device)))
        return out

    def _flush_backlog(self, s: Session, items: list[StoredItem], wall: float) -> Outcome:
        out = Outcome()
        if self.sessions.get(s.id) is not s:
            return out
        for item in items:
            if item.seq > s.delivered:
                message = deliver_msg(item.seq, item.kind, item.channel, item.msg_id, item.body)
                out.sends.append((s.id, message))
                s.delivered = item.seq
        if len(items) >= BACKLOG_PAGE:
            out.jobs.append(self._backlog_job(s, wall))
        else:
            s.synced = True
        return out

    # -- the directory -------------------------------------------------------------------------

    def _on_lookup(self, s: Session, msg: dict[str, Any], now: float, wall: float) -> Outcome:
        rid = safe_rid(msg)
        wanted = [d for d in msg["devices"][:MAX_LOOKUP] if isinstance(d, str)]
        known = {d: self.directory[d] for d in wanted if d in self.directory}
        missing = tuple(f"cred:{d}" for d in wanted if d not in known)

        def answer(stored: dict[str, bytes], _now: float) -> Outcome:
            found = [
                json.loads(blob)
                for d in wanted
                if (blob := known.get(d) or stored.get(f"cred:{d}")) is not None
            ]
            return Outcome([(s.id, p.control("directory", credentials=found, rid=rid))])

        if not missing:
            return answer({}, now)

        def failed(_now: float) -> Outcome:
            return Outcome([(s.id, p.error(p.Codes.STORE_FAILED, "directory", rid=rid))])

        return Outcome(jobs=[Job(GetStates(missing), answer, failed)])

    # -- revocations ---------------------------------------------------------------------------

    def _on_revocation(self, s: Session, msg: dict[str, Any], now: float, wall: float) -> Outcome:
        self._require_audit()
        try:
            rl = verify_revocation_list(RevocationList.decode(msg["list"]), self.trust)
        except VerificationError as exc:
            raise RemoteProtocolError(
                p.Codes.MALFORMED, f"revocation list refused: {exc.code.value}"
            )
        return self.apply_revocation(rl, now, reply_to=s.id, wall=wall)

    def apply_revocation(
        self,
        rl: RevocationList,
        now: float,
        reply_to: int | None = None,
        *,
        wall: float | None = None,
    ) -> Outcome:
        """Adopt a newer revocation list once it is on disk; close the sessions it revokes."""
        wall = self._wall(now, wall)
        current = self.revocations.get(rl.agency)

        def reply(number: int) -> Outcome:
            if reply_to is None:
                return Outcome()
            ok = p.control("revocation-ok", agency=rl.agency, number=number)
            return Outcome([(reply_to, ok)])

        if current is not None and rl.number <= current.number:
            return reply(current.number)

        def adopt(_: object, now: float) -> Outcome:
            now_current = self.revocations.get(rl.agency)
            if now_current is not None and rl.number <= now_current.number:
                return reply(now_current.number)
            self.revocations[rl.agency] = rl
            self._audit(
                "revocation", wall, agency=rl.agency, number=rl.number, serials=len(rl.serials)
            )
            out = reply(rl.number)
            push = revocation_list_msg(rl)
            for other in list(self.sessions.values()):
                if other.cred is not None and rl.revokes(other.cred):
                    out.close.append((other.id, p.Codes.REVOKED))
                    out.extend(self.disconnect(other.id, now, wall))
                elif other.device is not None and other.id != reply_to:
                    out.sends.append((other.id, push))  # every member learns it at once
            return out

        def failed(_now: float) -> Outcome:
            if reply_to is None:
                return Outcome()
            return Outcome([(reply_to, p.error(p.Codes.STORE_FAILED, "revocation list"))])

        return Outcome(jobs=[Job(PutStates(((f"crl:{rl.agency}", rl.encode()),)), adopt, failed)])


def revocation_list_msg(rl: RevocationList) -> str:
    """The relay passes every revocation list it adopted to every member (at once, and to a
    device at login), so that a dispatcher can cut a revoked device out of its channels
    without waiting for an operator (issue 10). Members verify it against the agency root."""
    body = json.loads(rl.encode())
    return p.control("revocation-list", agency=rl.agency, number=rl.number, list=body)
