"""The relay's protocol core: sessions, channels, commits, floor, routing, store-and-forward.

Theory of operation
-------------------
:class:`RelayCore` touches no socket and reads no clock. The driver (``relay_server``) feeds it
connections, parsed control messages, media datagrams and timer ticks with ``now``; the core
answers with an :class:`Outcome`: control messages to send to sessions, sessions to close,
and at most one :class:`Job` — a call into the durable store that the driver runs on its single
store thread before handing the result back through ``job.then``. Running every store call on
one thread, in submission order, is what keeps deliveries in acceptance order.

Authentication (DESIGN §5): the relay sends a random challenge; the device answers with its
credential and an Ed25519 signature over (challenge, relay id, device, its own nonce). The
credential must verify against the relay's trust bundle and the agencies' revocation lists.

Commits: the first valid commit for epoch N+1 wins (it is verified exactly as a member would,
without any key); a later one for an epoch the relay already has is told to rebase. The
accepted bundle (sealed secrets included, each readable only by its member) is stored for every
member of the old and new rosters and delivered in order, so an offline member catches up.

Media: the relay knows from the verified commits which sender index belongs to which device,
so a voice frame is forwarded only if its KID names the sending session's own index, the
session's device holds the floor, and the channel exists; then it goes to every other online
member of the channel, nobody else. Observers have no index and never get the floor.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import struct
from collections.abc import Callable
from typing import Any

from bridge.errors import RemoteProtocolError
from bridge.floor.control import (
    Event,
    FloorControl,
    Priority,
)
from bridge.relay.ratelimit import TokenBucket
from bridge.relay.state import (
    Channel,
    FloorArbiter,
    Job,
    Metrics,
    NoRemoteFanout,
    Outcome,
    RelayConfig,
    RemoteFanout,
    Send,
    Session,
    render_metrics,
)
from bridge.wire import control as p
from bridge.wire.auth import AUTH_DOMAIN, relay_proof
from bridge.wire.floor import floor_event_fields, floor_state_message
from crypto.agreement import RevocationList, verify_revocation_list
from crypto.channel import Commit, CommitBundle, verify_commit
from crypto.encoding import signing_input
from crypto.errors import CrossbandError, DecryptError, Refusal, VerificationError
from crypto.group import CONTEXT_DATA, CONTEXT_VOICE, EPOCH_BITS, split_kid
from crypto.identity import Credential, TrustBundle, verify_credential
from crypto.sframe import decode_header

__all__ = ["Job", "Outcome", "RelayConfig", "RelayCore", "Send"]

log = logging.getLogger("crossband.relay")

BACKLOG_PAGE = 200
_EPOCH_MASK = (1 << EPOCH_BITS) - 1
_CH = struct.Struct(">I")
_PRIORITIES = {"normal": Priority.NORMAL, "high": Priority.HIGH, "emergency": Priority.EMERGENCY}


class RelayCore:
    def __init__(
        self,
        trust: TrustBundle,
        store: Any,
        audit: Any,
        config: RelayConfig | None = None,
        revocations: dict[str, RevocationList] | None = None,
        *,
        floor_factory: Callable[[RelayConfig], FloorArbiter] | None = None,
        remote: RemoteFanout | None = None,
    ) -> None:
        self.trust = trust
        self.store = store
        self.audit = audit
        self.config = config or RelayConfig()
        self._new_floor = floor_factory or (
            lambda c: FloorControl(c.max_talk_time, c.emergency_max_talk_time)
        )
        self.remote: RemoteFanout = remote or NoRemoteFanout()
        self.revocations: dict[str, RevocationList] = dict(revocations or {})
        self.sessions: dict[int, Session] = {}
        self.by_device: dict[str, Session] = {}
        self.by_token: dict[bytes, Session] = {}
        self.channels: dict[str, Channel] = {}
        self.by_no: dict[int, Channel] = {}
        self.metrics = Metrics()
        self.directory: dict[str, bytes] = {}  # credentials seen since start (public)
        self._next_sid = 1
        self._load_channels()

    # -- persistence of channel heads --------------------------------------------------------

    def _load_channels(self) -> None:
        for agency in self.trust.roots:
            blob = self.store.get_state(f"crl:{agency}")
            if blob is not None:
                rl = verify_revocation_list(RevocationList.decode(blob), self.trust)
                if rl.number > getattr(self.revocations.get(agency), "number", -1):
                    self.revocations[agency] = rl
        raw = self.store.get_state("channels")
        for ch in json.loads(raw) if raw else []:
            blob = self.store.get_state(f"channel:{ch}")
            if not blob:
                continue
            bundle = CommitBundle.decode(blob)
            self._install(bundle.commit)

    def _install(self, commit: Commit) -> Channel:
        chan = self.channels.get(commit.channel)
        if chan is None:
            no = int.from_bytes(os.urandom(4), "big") or 1
            while no in self.by_no:
                no = int.from_bytes(os.urandom(4), "big") or 1
            chan = Channel(commit.channel, no, commit, self._new_floor(self.config))
            self.channels[commit.channel] = chan
            self.by_no[no] = chan
        chan.install(commit)
        return chan

    def _audit(self, event: str, now: float, **fields: Any) -> None:
        try:
            self.audit.append(event, now, **fields)
        except CrossbandError:
            log.exception("event=audit-failed kind=%s", event)

    # -- connections -------------------------------------------------------------------------

    def connect(self, now: float) -> tuple[int, str]:
        sid = self._next_sid
        self._next_sid += 1
        s = Session(
            sid,
            os.urandom(32),
            now,
            TokenBucket(self.config.control_rate, self.config.control_burst, now),
            TokenBucket(self.config.media_rate, self.config.media_burst, now),
        )
        self.sessions[sid] = s
        return sid, p.control("challenge", nonce=p.b64(s.nonce), relay=self.config.relay_id)

    def disconnect(self, sid: int, now: float) -> Outcome:
        s = self.sessions.pop(sid, None)
        out = Outcome()
        if s is None or s.device is None:
            return out
        if self.by_device.get(s.device) is s:
            del self.by_device[s.device]
        self.by_token.pop(s.token, None)
        for chan in self.channels.values():
            if s.device in chan.members:
                out.extend(self._floor_events(chan, chan.floor.cancel(s.device, now), now))
        self._audit("disconnect", now, device=s.device, session=sid)
        return out

    def authenticate(self, sid: int, msg: dict[str, Any], now: float) -> Outcome:
        s = self.sessions[sid]
        try:
            cred = Credential.decode(msg["credential"])
            verify_credential(cred, self.trust, now, self.revocations)
            proof = signing_input(
                AUTH_DOMAIN,
                {
                    "challenge": p.b64(s.nonce),
                    "relay": self.config.relay_id,
                    "device": cred.device,
                    "nonce": msg["nonce"],
                },
            )
            cred.sign_key.verify(p.unb64(msg["sig"]), proof)
        except VerificationError as exc:
            self.metrics.c["auth_refused"] += 1
            code = {
                Refusal.REVOKED: p.Codes.REVOKED,
                Refusal.UNPINNED_ROOT: p.Codes.UNKNOWN_DEVICE,
            }.get(exc.code, p.Codes.AUTH_FAILED)
            self._audit("auth-refused", now, session=sid, reason=exc.code.value)
            raise RemoteProtocolError(code, exc.code.value)
        old = self.by_device.get(cred.device)
        out = Outcome()
        if old is not None:  # a reconnect supersedes the stale connection
            out.close.append((old.id, p.Codes.DUPLICATE_SESSION))
            out.extend(self.disconnect(old.id, now))
        relay_sig = None
        if self.config.signing_key is not None:
            # Mutual authentication: the relay proves its identity key over the device's own
            # fresh nonce, so a device that pins the relay's key detects an impostor.
            relay_sig = p.b64(
                self.config.signing_key.sign(
                    relay_proof(p.b64(s.nonce), self.config.relay_id, cred.device, msg["nonce"])
                )
            )
        s.device, s.cred = cred.device, cred
        self.directory[cred.device] = cred.encode()  # persisted by the job below
        s.token, s.udp_key = os.urandom(p.TOKEN_LEN), os.urandom(32)
        self.by_device[cred.device] = s
        self.by_token[s.token] = s
        self._audit("auth", now, device=cred.device, session=sid, serial=cred.serial)
        out.sends.append(
            (
                sid,
                p.control(
                    "welcome",
                    session=sid,
                    device=cred.device,
                    udp_token=p.b64(s.token),
                    udp_key=p.b64(s.udp_key),
                    udp_port=self.config.udp_port,
                    relay_sig=relay_sig,
                    channels=[
                        {"ch": c.id, "no": c.no, "epoch": c.head.epoch}
                        for c in self.channels.values()
                        if cred.device in c.members
                    ],
                ),
            )
        )
        for chan in self.channels.values():
            if cred.device in chan.members:
                out.sends.append((sid, self._floor_state(chan)))

        def backlog() -> Any:
            self.store.put_state(f"cred:{cred.device}", cred.encode())  # the directory
            return self.store.pending(cred.device, now, limit=BACKLOG_PAGE)

        out.job = Job(backlog, lambda items: self._flush_backlog(s, items, now))
        return out

    def _flush_backlog(self, s: Session, items: list[Any], now: float) -> Outcome:
        out = Outcome()
        if self.sessions.get(s.id) is not s:
            return out
        for item in items:
            if item.seq > s.delivered:
                out.sends.append(
                    (
                        s.id,
                        self._deliver_msg(
                            item.seq, item.kind, item.channel, item.msg_id, item.body
                        ),
                    )
                )
                s.delivered = item.seq
        if len(items) >= BACKLOG_PAGE and s.device is not None:
            device, after = s.device, s.delivered
            out.job = Job(
                lambda: self.store.pending(device, now, after_seq=after, limit=BACKLOG_PAGE),
                lambda more: self._flush_backlog(s, more, now),
            )
        else:
            s.synced = True
        return out

    @staticmethod
    def _deliver_msg(seq: int, kind: str, channel: str, msg_id: str, body: bytes) -> str:
        return p.control("deliver", seq=seq, kind=kind, ch=channel, id=msg_id, body=p.b64(body))

    # -- control -----------------------------------------------------------------------------

    def handle(self, sid: int, msg: dict[str, Any], now: float) -> Outcome:
        """Handle one validated control message from an authenticated session."""
        s = self.sessions[sid]
        if not s.control_rate.allow(now):
            raise RemoteProtocolError(p.Codes.RATE_LIMITED)
        t = msg["t"]
        if s.device is None:
            if t != "auth":
                raise RemoteProtocolError(p.Codes.AUTH_REQUIRED)
            return self.authenticate(sid, msg, now)
        handler = getattr(self, "_on_" + t.replace("-", "_"), None)
        if handler is None or t == "auth":
            raise RemoteProtocolError(p.Codes.UNKNOWN_TYPE)
        result: Outcome = handler(s, msg, now)
        return result

    def _on_ping(self, s: Session, msg: dict[str, Any], now: float) -> Outcome:
        return Outcome([(s.id, p.control("pong"))])

    def _on_lookup(self, s: Session, msg: dict[str, Any], now: float) -> Outcome:
        found = []
        for device in msg["devices"][:1000]:
            if isinstance(device, str):
                blob = self.directory.get(device) or self.store.get_state(f"cred:{device}")
                if blob is not None:
                    found.append(json.loads(blob))
        return Outcome([(s.id, p.control("directory", credentials=found, rid=msg.get("rid")))])

    def _on_revocation(self, s: Session, msg: dict[str, Any], now: float) -> Outcome:
        try:
            rl = verify_revocation_list(RevocationList.decode(msg["list"]), self.trust)
        except VerificationError as exc:
            raise RemoteProtocolError(
                p.Codes.MALFORMED, f"revocation list refused: {exc.code.value}"
            )
        return self.apply_revocation(rl, now, reply_to=s.id)

    def apply_revocation(
        self, rl: RevocationList, now: float, reply_to: int | None = None
    ) -> Outcome:
        out = Outcome()
        current = self.revocations.get(rl.agency)
        if current is None or rl.number > current.number:
            self.revocations[rl.agency] = rl
            self.store.put_state(f"crl:{rl.agency}", rl.encode())
            self._audit(
                "revocation", now, agency=rl.agency, number=rl.number, serials=len(rl.serials)
            )
            for other in list(self.sessions.values()):
                if other.cred is not None and rl.revokes(other.cred):
                    out.close.append((other.id, p.Codes.REVOKED))
                    out.extend(self.disconnect(other.id, now))
        if reply_to is not None:
            out.sends.append(
                (
                    reply_to,
                    p.control(
                        "revocation-ok", agency=rl.agency, number=self.revocations[rl.agency].number
                    ),
                )
            )
        return out

    def _on_commit(self, s: Session, msg: dict[str, Any], now: float) -> Outcome:
        try:
            bundle = CommitBundle.decode(p.unb64(msg["bundle"]))
        except VerificationError as exc:
            raise RemoteProtocolError(p.Codes.MALFORMED, f"commit: {exc.code.value}")
        c = bundle.commit
        chan = self.channels.get(c.channel)
        if c.issuer != s.device:
            raise RemoteProtocolError(p.Codes.NOT_PERMITTED, "commit issuer is not this device")
        if chan is not None and c.epoch <= chan.head.epoch:
            self._audit("commit-rebase", now, channel=c.channel, epoch=c.epoch, issuer=s.device)
            return Outcome(
                [
                    (
                        s.id,
                        p.error(
                            p.Codes.REBASE,
                            "epoch already taken",
                            ch=c.channel,
                            epoch=chan.head.epoch,
                        ),
                    )
                ]
            )
        try:
            verify_commit(
                bundle,
                self.trust,
                now,
                previous=chan.head if chan else None,
                revocations=self.revocations,
            )
        except VerificationError as exc:
            self._audit(
                "commit-refused",
                now,
                channel=c.channel,
                epoch=c.epoch,
                issuer=s.device,
                reason=exc.code.value,
            )
            return Outcome(
                [
                    (
                        s.id,
                        p.error(
                            p.Codes.COMMIT_REFUSED, exc.code.value, ch=c.channel, epoch=c.epoch
                        ),
                    )
                ]
            )
        if chan is None and c.epoch != 1:
            return Outcome(
                [
                    (
                        s.id,
                        p.error(
                            p.Codes.COMMIT_REFUSED,
                            "unknown channel must start at epoch 1",
                            ch=c.channel,
                            epoch=c.epoch,
                        ),
                    )
                ]
            )
        old_members = chan.members if chan else frozenset()
        chan = self._install(c)
        public = bundle.without_secrets().encode()
        self.store.put_state(f"channel:{c.channel}", public)
        self.store.put_state("channels", json.dumps(sorted(self.channels)).encode())
        self.metrics.c["commits_accepted"] += 1
        self._audit(
            "commit",
            now,
            channel=c.channel,
            epoch=c.epoch,
            issuer=s.device,
            members=len(c.roster),
            hash=c.hash,
        )
        out = Outcome()
        for gone in old_members - chan.members:
            out.extend(self._floor_events(chan, chan.floor.cancel(gone, now), now))
            # a removed observer/member that is online loses the channel at once
        announce = p.control("channel", ch=chan.id, no=chan.no, epoch=c.epoch)
        for device in chan.members:
            other = self.by_device.get(device)
            if other is not None:
                out.sends.append((other.id, announce))
                if device not in old_members:
                    out.sends.append((other.id, self._floor_state(chan)))
        recipients = sorted(old_members | chan.members)
        body = bundle.encode()
        ttl = max(60.0, c.expires - now)
        out.job = self._enqueue_job(
            recipients,
            c.channel,
            "commit",
            f"commit/{c.channel}/{c.epoch}",
            body,
            now,
            ttl,
            reply=(s.id, p.control("commit-ok", ch=c.channel, epoch=c.epoch)),
        )
        return out

    def _enqueue_job(
        self,
        recipients: list[str],
        channel: str,
        kind: str,
        msg_id: str,
        body: bytes,
        now: float,
        ttl: float,
        reply: Send,
    ) -> Job:
        def then(seq: int) -> Outcome:
            out = Outcome([reply])
            deliver = self._deliver_msg(seq, kind, channel, msg_id, body)
            for device in recipients:
                other = self.by_device.get(device)
                if other is not None and other.synced and seq > other.delivered:
                    out.sends.append((other.id, deliver))
                    other.delivered = seq
            return out

        return Job(
            lambda: self.store.enqueue(recipients, channel, kind, msg_id, body, now, ttl), then
        )

    def _member(self, s: Session, ch: str) -> Channel:
        chan = self.channels.get(ch)
        if chan is None:
            raise RemoteProtocolError(p.Codes.UNKNOWN_CHANNEL)
        if s.device not in chan.members:
            raise RemoteProtocolError(p.Codes.NOT_MEMBER)
        return chan

    def _sender_index_ok(self, chan: Channel, device: str, frame: bytes, context: int) -> bool:
        try:
            kid, _, _ = decode_header(frame)
        except DecryptError:
            return False
        ctx, index, ebits = split_kid(kid)
        table = chan.senders.get(ebits)
        return ctx == context and table is not None and table.get(index) == device

    def _on_msg(self, s: Session, msg: dict[str, Any], now: float) -> Outcome:
        chan = self._member(s, msg["ch"])
        assert s.device is not None
        if not chan.head.may_send(s.device):
            raise RemoteProtocolError(p.Codes.NOT_PERMITTED, "observers do not transmit")
        frame = p.unb64(msg["frame"])
        if len(frame) > p.MAX_SMALL_CONTROL or not self._sender_index_ok(
            chan, s.device, frame, CONTEXT_DATA
        ):
            raise RemoteProtocolError(
                p.Codes.MALFORMED, "frame does not carry this device's key id"
            )
        if not 1 <= len(msg["id"]) <= 128:
            raise RemoteProtocolError(p.Codes.MALFORMED, "message id")
        msg_id = f"{s.device}/{msg['id']}"
        recipients = sorted(chan.members - {s.device})
        self.metrics.c["messages_accepted"] += 1
        self._audit(
            "message",
            now,
            channel=chan.id,
            sender=s.device,
            msg=msg_id,
            size=len(frame),
            recipients=len(recipients),
        )
        reply = (s.id, p.control("accepted", ch=chan.id, id=msg["id"]))
        if not recipients:
            return Outcome([reply])
        return Outcome(
            job=self._enqueue_job(
                recipients, chan.id, "msg", msg_id, frame, now, self.config.message_ttl, reply
            )
        )

    def _on_ack(self, s: Session, msg: dict[str, Any], now: float) -> Outcome:
        device = s.device
        seq = msg["seq"]
        if seq > s.delivered:
            raise RemoteProtocolError(p.Codes.MALFORMED, "ack beyond delivery")
        return Outcome(job=Job(lambda: self.store.ack(device, seq), lambda _n: Outcome()))

    def _on_floor_request(self, s: Session, msg: dict[str, Any], now: float) -> Outcome:
        chan = self._member(s, msg["ch"])
        assert s.device is not None
        priority = _PRIORITIES.get(msg["priority"])
        if priority is None:
            raise RemoteProtocolError(p.Codes.MALFORMED, "priority")
        events = chan.floor.request(s.device, priority, now, may_talk=chan.head.may_send(s.device))
        return self._floor_events(chan, events, now)

    def _on_floor_release(self, s: Session, msg: dict[str, Any], now: float) -> Outcome:
        chan = self._member(s, msg["ch"])
        assert s.device is not None
        return self._floor_events(chan, chan.floor.release(s.device, now), now)

    def _on_emergency_clear(self, s: Session, msg: dict[str, Any], now: float) -> Outcome:
        chan = self._member(s, msg["ch"])
        assert s.device is not None and s.cred is not None
        if s.device != chan.floor.emergency_by and not s.cred.has_role("dispatcher"):
            raise RemoteProtocolError(p.Codes.NOT_PERMITTED, "only the declarer or a dispatcher")
        return self._floor_events(chan, chan.floor.clear_emergency(s.device, now), now)

    # -- floor -------------------------------------------------------------------------------

    def _floor_state(self, chan: Channel) -> str:
        return floor_state_message(chan.id, chan.floor.snapshot())

    def _floor_events(self, chan: Channel, events: list[Event], now: float) -> Outcome:
        out = Outcome()
        online = [self.by_device[d].id for d in chan.members if d in self.by_device]
        for event in events:
            fields, private = floor_event_fields(chan.id, event)
            if fields["event"] == "granted":
                self.metrics.c["floor_grants"] += 1
            self._audit(
                "floor",
                now,
                channel=chan.id,
                what=fields["event"],
                device=fields.get("device"),
                reason=fields.get("reason"),
            )
            message = p.control("floor", **fields)
            if private:
                target = self.by_device.get(fields["device"])
                if target is not None:
                    out.sends.append((target.id, message))
            else:
                out.sends += [(sid, message) for sid in online]
        return out

    def handle_timer(self, now: float) -> Outcome:
        out = Outcome()
        expired = []
        for chan in self.channels.values():
            if now >= chan.head.expires:
                expired.append(chan)
                continue
            t = chan.floor.get_timer()
            if t is not None and now >= t:
                out.extend(self._floor_events(chan, chan.floor.handle_timer(now), now))
        if expired:
            out.extend(self._tear_down(expired, now))
        return out

    def _tear_down(self, expired: list[Channel], now: float) -> Outcome:
        """Channels tear themselves down at their expiry: no more routing, members told."""
        out = Outcome()
        for chan in expired:
            del self.channels[chan.id]
            del self.by_no[chan.no]
            closed = p.control(
                "channel-closed", ch=chan.id, epoch=chan.head.epoch, reason="expired"
            )
            out.sends += [
                (self.by_device[d].id, closed) for d in chan.members if d in self.by_device
            ]
            self._audit("channel-expired", now, channel=chan.id, epoch=chan.head.epoch)
        remaining = json.dumps(sorted(self.channels)).encode()
        ids = [c.id for c in expired]

        def forget() -> None:
            self.store.put_state("channels", remaining)
            for ch in ids:
                self.store.put_state(f"channel:{ch}", b"")

        out.job = Job(forget, lambda _r: Outcome())
        return out

    def next_timer(self) -> float | None:
        times = [t for c in self.channels.values() if (t := c.floor.get_timer()) is not None]
        times += [float(c.head.expires) for c in self.channels.values()]
        return min(times) if times else None

    # -- media (the hot path) ------------------------------------------------------------------

    def route(
        self, s: Session, channel_no: int, frame: bytes, now: float
    ) -> tuple[list[tuple[str, int]], list[int]] | None:
        """Check one voice frame and return (udp addresses, websocket session ids) to send to."""
        self.metrics.c["frames_in"] += 1
        chan = self.by_no.get(channel_no)
        device = s.device
        if chan is None or device is None:
            self.metrics.drop("unknown-channel")
            return None
        if not chan.floor.may_send(device):
            self.metrics.drop("no-floor")
            return None
        if len(frame) > p.MAX_SFRAME or not self._sender_index_ok(
            chan, device, frame, CONTEXT_VOICE
        ):
            self.metrics.drop("bad-kid")
            return None
        if not s.media_rate.allow(now):
            self.metrics.drop("rate")
            return None
        self.remote.publish(chan.id, device, frame)
        return self._local_targets(chan, device)

    def _local_targets(self, chan: Channel, sender: str) -> tuple[list[tuple[str, int]], list[int]]:
        """The members of ``chan`` connected to this node, but the sender: (UDP, WebSocket)."""
        udp: list[tuple[str, int]] = []
        ws: list[int] = []
        by_device = self.by_device
        for member in chan.members:
            if member == sender:
                continue
            other = by_device.get(member)
            if other is None:
                continue
            if other.udp_addr is not None:
                udp.append(other.udp_addr)
            else:
                ws.append(other.id)
        self.metrics.c["frames_out"] += len(udp) + len(ws)
        return udp, ws

    def from_remote(
        self, channel: str, sender: str, frame: bytes
    ) -> tuple[int, list[tuple[str, int]], list[int]] | None:
        """A frame another node checked (floor, KID) and published: deliver it to our own
        members of the channel. Returns (channel number, UDP addresses, WebSocket ids)."""
        chan = self.channels.get(channel)
        if chan is None or sender not in chan.members or len(frame) > p.MAX_SFRAME:
            self.metrics.drop("remote-unknown")
            return None
        udp, ws = self._local_targets(chan, sender)
        return chan.no, udp, ws

    def udp_datagram(
        self, data: bytes, addr: tuple[str, int], now: float
    ) -> tuple[bytes, list[tuple[str, int]], list[int]] | None:
        """Authenticate one UDP datagram; returns (payload to send, udp addrs, ws ids)."""
        if len(data) < 2 + p.TOKEN_LEN + p.MAC_LEN or data[0] != p.UDP_MAGIC:
            self.metrics.drop("malformed")
            return None
        s = self.by_token.get(data[2 : 2 + p.TOKEN_LEN])
        if s is None or not hmac.compare_digest(
            p.udp_mac(s.udp_key, data[: -p.MAC_LEN]), data[-p.MAC_LEN :]
        ):
            self.metrics.drop("bad-mac")
            return None
        kind = data[1]
        if kind == p.UDP_REGISTER:
            s.udp_addr = addr
            return None
        if kind != p.UDP_MEDIA or len(data) < 2 + p.TOKEN_LEN + 4 + p.MAC_LEN + 2:
            self.metrics.drop("malformed")
            return None
        s.udp_addr = addr
        start = 2 + p.TOKEN_LEN
        channel_no = _CH.unpack_from(data, start)[0]
        frame = data[start + 4 : -p.MAC_LEN]
        targets = self.route(s, channel_no, frame, now)
        if targets is None:
            return None
        return frame, targets[0], targets[1]

    def metrics_text(self, depth: int) -> str:
        return render_metrics(
            self.metrics,
            len(self.sessions),
            len(self.by_device),
            list(self.channels.values()),
            depth,
        )
