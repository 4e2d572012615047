"""The endpoint's protocol core: sans-IO, in the manner of aioquic's ``QuicConnection``.

Theory of operation
-------------------
:class:`EndpointCore` touches no socket, reads no clock and never sleeps. It is driven by

- the relay's words: :meth:`~EndpointCore.receive_welcome`, :meth:`~EndpointCore.receive_control`
  and :meth:`~EndpointCore.receive_media`, each with ``now``;
- API calls: commits, texts, talk bursts, floor requests, lookups, revocations;
- time: :meth:`~EndpointCore.handle_timer` when :meth:`~EndpointCore.get_timer` says (the UDP
  tail before a floor release, a burst seal's wait, old epoch keys to erase, forgetting the
  message ids the relay can no longer redeliver: :mod:`bridge.endpoint.seen`; our signed
  commit confirmations and the freshness alarms: :mod:`bridge.endpoint.confirmations`; a
  relay emergency nobody signed: :mod:`bridge.endpoint.emergency_watch`; a revoked member to
  commit out, a stale revocation list: :mod:`bridge.endpoint.revocation`);
- finished commit verifications: :meth:`~EndpointCore.job_done`.

What it wants done is read back: :meth:`~EndpointCore.data_to_send` (control messages, in
order), :meth:`~EndpointCore.media_to_send`, :meth:`~EndpointCore.events_received`
(:mod:`bridge.endpoint.events` for the application), :meth:`~EndpointCore.answers` (outcomes of
requests, for whoever awaits them) and :meth:`~EndpointCore.jobs` (commit verifications to run
off the event loop, one at a time). ``now`` is wall-clock seconds, as in every signed statement.

Relay deliveries are processed strictly in order: while a commit is being verified, the
deliveries behind it wait (a message of the new epoch needs its keys), and each is acknowledged
only once handled, so a crash before that means a redelivery, never a loss.

The relay is not trusted. :meth:`~EndpointCore.receive_control` never raises: whatever it is
given, a message that does not parse, does not fit :data:`~bridge.endpoint.inbound.RELAY_MESSAGES`
or refers to nothing is counted in ``stats["malformed_from_relay"]`` and reported as an
:class:`~bridge.endpoint.events.Error`; a message from a member whose content fails to parse
after decryption is counted in ``stats["malformed_content"]`` and dropped the same way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections import deque
from typing import Any

from bridge.endpoint import events as ev
from bridge.endpoint.commits import ChannelBook
from bridge.endpoint.confirmations import Confirmations
from bridge.endpoint.emergency import KIND as EMERGENCY
from bridge.endpoint.emergency import SignedEmergencies
from bridge.endpoint.emergency import body as emergency_body
from bridge.endpoint.emergency_watch import EmergencyWatch
from bridge.endpoint.floorview import FloorView
from bridge.endpoint.output import Answer, Output, VerifyJob
from bridge.endpoint.receive import MALFORMED_CONTENT, MALFORMED_FROM_RELAY, Delivery, RelayInput
from bridge.endpoint.revocation import Revocations
from bridge.endpoint.seen import SEEN_TTL, SeenIds
from bridge.endpoint.state import EndpointState
from bridge.endpoint.tails import Tail as _Tail
from bridge.endpoint.voice import VoicePath, due
from bridge.errors import LocalProtocolError, RemoteProtocolError
from bridge.wire import control as p
from bridge.wire.codes import Code
from crypto.agreement import Agreement, RevocationList
from crypto.channel import Commit, CommitBundle
from crypto.errors import CryptoError, Refusal, VerificationError
from crypto.group import CONTEXT_VOICE, ChannelMember, NotPermittedError, PreparedCommit
from crypto.identity import Credential, DeviceKeys, TrustBundle, verify_credential
from crypto.messages import BurstSeal

log = logging.getLogger("crossband.endpoint")
__all__ = ["MALFORMED_CONTENT", "MALFORMED_FROM_RELAY", "STATS", "EndpointCore"]
STATS = (
    "voice_sent",
    "voice_received",
    "voice_decrypted",
    "voice_undecryptable",
    "messages_sent",
    "messages_received",
    "messages_undecryptable",
    "malformed_from_relay",
    "malformed_content",
    "messages_replayed",  # a signed item handled before, back under a new id or frame
    "messages_misbound",  # a signed item bound to another channel or commit
    "clone_alarms",  # two generations of one sender heard at once
    "voice_verified",  # frames a checkpoint signed by their talker attributed
    "voice_unverifiable",  # frames whose checkpoint was lost on the way
    "voice_replayed",  # a frame heard again while it waited for its checkpoint
    "checkpoints",  # checkpoints accepted
    "checkpoints_refused",  # checkpoints that did not verify
    "checkpoints_misbound",  # checkpoints for another channel, commit or KID
    "forgery_alarms",  # frames under a KID whose talker did not sign them
    "confirmations",  # members' signed commit confirmations accepted
    "confirmations_refused",  # confirmations that did not verify or name no member we know
)


class EndpointCore(RelayInput):
    def __init__(
        self,
        cred: Credential,
        keys: DeviceKeys,
        trust: TrustBundle,
        state: EndpointState,
        *,
        now: float,
        transport: str = "udp",
        revocations: dict[str, RevocationList] | None = None,
        seen_ttl: float = SEEN_TTL,
    ) -> None:
        """``seen_ttl``: how long a handled message id is remembered; at least the relay's
        ``message_ttl``, or a redelivery after that long would be shown twice."""
        if transport not in ("udp", "ws"):
            raise LocalProtocolError(Code.MALFORMED, "transport must be 'udp' or 'ws'")
        self.device = cred.device
        self.out = Output()
        self.stats = dict.fromkeys(STATS, 0)
        self.book = ChannelBook(cred, keys, trust, state, dict(revocations or {}), self.out)
        self.voice = VoicePath(self.out, self.stats, udp=transport == "udp")
        self.floorview = FloorView(self.device, self.out)
        self.emergencies = SignedEmergencies(self.out)
        self.watch = EmergencyWatch(self.device, self.out, self.emergencies.declared)
        refresh = lambda ch, m, t, x=None, a=None: self.build_commit(ch, m, a, None, x, t)  # noqa
        self.confirms = Confirmations(keys.sign, self.book, self.out, self.stats, refresh)
        self.revoke = Revocations(self.book, self.out, refresh)  # issue 10: lists that act
        self.seen = SeenIds(state, seen_ttl)
        self.channel_no: dict[str, int] = {}
        self._by_no: dict[int, str] = {}
        self._outbox: dict[str, str] = {}  # msg id -> control message, until accepted
        self._texts: set[str] = set()  # ids of our texts awaiting acceptance
        self._lookups: set[str] = set()
        self._inbox: deque[Delivery] = deque()
        self._tails: dict[str, _Tail] = {}
        self.stalled = self._reconnect = False
        self.book.restore(now)
        self.confirms.sync(now)

    @property
    def floor(self) -> dict[str, str | None]:
        return self.floorview.floor

    @property
    def emergency(self) -> dict[str, bool]:
        """Each channel's emergency as the relay claims it (unverified)."""
        return self.floorview.emergency

    @property
    def signed_emergency(self) -> dict[str, str | None]:
        """Each channel's emergency as its members signed it: the declarer, None if cleared."""
        return self.emergencies.declared

    @property
    def revocations(self) -> dict[str, RevocationList]:
        return self.book.revocations

    # -- output --------------------------------------------------------------------------------

    def data_to_send(self) -> list[str]:
        """Control messages for the relay, in the order they must go."""
        out = list(self.out.controls)
        self.out.controls.clear()
        return out

    def next_control(self) -> str | None:
        """The next control message to send, one at a time (None: nothing to send)."""
        return self.out.controls.popleft() if self.out.controls else None

    def has_data_to_send(self) -> bool:
        return bool(self.out.controls)

    def media_to_send(self) -> list[tuple[int, bytes]]:
        out, self.out.media = self.out.media, []
        return out

    def events_received(self) -> list[ev.Event]:
        out, self.out.events = self.out.events, []
        return out

    def answers(self) -> list[Answer]:
        out, self.out.answers = self.out.answers, []
        return out

    def jobs(self) -> list[VerifyJob]:
        out, self.out.jobs = self.out.jobs, []
        return out

    # -- timers --------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` should next be called (None: no timer)."""
        times = [t.deadline for t in self._tails.values()]
        times += [t for m in self.channels.values() if (t := m.get_timer()) is not None]
        if (seal := self.voice.get_timer()) is not None:
            times.append(seal)
        for part in (self.seen, self.confirms, self.watch, self.revoke):
            if (t := part.get_timer()) is not None:
                times.append(t)
        return min(times, default=None)

    def handle_timer(self, now: float) -> None:
        for ch, tail in list(self._tails.items()):
            if due(tail.deadline, tail.armed, now):
                self._release(ch)
        self.voice.handle_timer(now)
        for member in self.channels.values():
            t = member.get_timer()
            if t is not None and now >= t:
                member.expire(now)
        self.seen.handle_timer(now)
        self.confirms.handle_timer(now)
        self.watch.handle_timer(now)
        self.revoke.handle_timer(now)

    # -- input the freshness rules see first (bridge.endpoint.receive does the rest) -----------

    def receive_control(self, data: str | bytes | dict[str, Any], now: float) -> None:
        """One control message from the relay (text, or already parsed). Never raises."""
        msg: Any = data
        if isinstance(data, str | bytes) and len(data) <= p.MAX_CONTROL:
            with contextlib.suppress(RemoteProtocolError):
                msg = p.parse_json(data)  # what does not parse: the receiver counts it
        early = {"confirm": self.confirms.on_relay, "revocation-list": self.revoke.on_relay}
        if (handle := early.get(str(msg.get("t"))) if isinstance(msg, dict) else None) is None:
            return super().receive_control(msg, now)
        try:
            handle(msg, now)
        except RemoteProtocolError:
            self._malformed()

    def _dispatch(self, msg: dict[str, Any], now: float) -> None:
        super()._dispatch(msg, now)
        if msg["t"] == "floor" and msg["event"] == "emergency" and msg["ch"] in self.channels:
            self.watch.on_relay(msg["ch"], bool(msg.get("active")), msg.get("device"), now)
        elif msg["t"] == "revocation-ok":  # ours: the relay pushes it to everyone but us
            self.revoke.on_ok(msg["agency"], msg["number"], now)

    def job_done(self, job: VerifyJob, result: PreparedCommit | CryptoError, now: float) -> None:
        super().job_done(job, self.confirms.check_join(job, result, now), now)
        self.confirms.sync(now)

    # -- API: commits, directory, revocations ---------------------------------------------------

    def build_commit(
        self,
        ch: str,
        members: list[tuple[Credential, str]],
        agreement: Agreement | None,
        name: str | None,
        expires: int | None,
        now: float,
    ) -> CommitBundle:
        """Our next commit for ``ch``, sent to the relay; the answer ``("commit", ch, epoch)``
        comes once the relay accepted it and we installed it."""
        bundle = self.book.build(ch, members, agreement, name, expires, now)
        # ch and epoch ride beside the bundle so the relay can refuse a stale or unpermitted
        # commit before it decodes megabytes (it checks them against the bundle after).
        c = bundle.commit
        self.out.send("commit", bundle=p.b64(bundle.encode()), ch=c.channel, epoch=c.epoch)
        return bundle

    def lookup(self, devices: list[str]) -> str:
        """Ask the relay's directory; the answer ``("rid", rid)`` carries what it found."""
        rid = uuid.uuid4().hex
        self._lookups.add(rid)
        self.out.send("lookup", devices=devices, rid=rid)
        return rid

    def verify_directory(self, found: Any, now: float) -> dict[str, Credential]:
        """The credentials of a directory answer that verify against our own trust."""
        out: dict[str, Credential] = {}
        for raw in found if isinstance(found, list) else []:
            try:
                if not isinstance(raw, dict):
                    raise VerificationError(Refusal.MALFORMED, "credential")
                cred = Credential.decode(raw)
                verify_credential(cred, self.book.trust, now, self.revocations)
            except (VerificationError, ValueError, TypeError):
                continue
            out[cred.device] = cred
        return out

    def publish_revocation(self, rl: RevocationList) -> None:
        self.revoke.published(rl)
        self.out.send("revocation", list=json.loads(rl.encode()))

    def send_raw(self, control: str) -> None:
        """A control message as given (tests of the relay's robustness)."""
        self.out.controls.append(control)

    # -- API: messages -------------------------------------------------------------------------

    def _member(self, ch: str) -> ChannelMember:
        member = self.channels.get(ch)
        if member is None:
            raise LocalProtocolError(Code.NOT_MEMBER, f"not a member of {ch}")
        return member

    def send_text(self, ch: str, body: bytes, kind: str, now: float) -> str:
        """Sign, encrypt and send a message; answered ``("msg", id)`` once the relay holds it
        durably. Kept and resent after every reconnect until then."""
        msg_id = uuid.uuid4().hex
        member = self._member(ch)
        self.confirms.check_send(ch, now)  # StaleEpochError: not on a stale or passed epoch
        _msg, frame = member.sign_message(msg_id, kind, body, int(now * 1000))
        self._texts.add(msg_id)
        self.post(ch, msg_id, frame)
        return msg_id

    def post(self, ch: str, msg_id: str, frame: bytes) -> None:
        control = p.control("msg", ch=ch, id=msg_id, frame=p.b64(frame), rid=msg_id)
        self._outbox[msg_id] = control
        self.out.controls.append(control)

    # -- API: floor and talk bursts ------------------------------------------------------------

    def request_floor(self, ch: str, priority: str = "normal", now: float | None = None) -> None:
        """Ask for the floor; answered ``("floor", ch)`` with granted / queued / denied.
        At ``emergency`` priority (``now`` required) the signed declaration goes first."""
        if priority == "emergency":
            if now is None:
                raise LocalProtocolError(Code.MALFORMED, "an emergency request needs now")
            self.signal_emergency(ch, True, now)
        if ch in self._tails:
            self._release(ch)  # the previous burst's release goes first
        self.out.send("floor-request", ch=ch, priority=priority, rid=f"floor:{ch}")

    def release_floor(self, ch: str) -> None:
        if ch in self._tails:
            self._release(ch)
        else:
            self.out.send("floor-release", ch=ch)
            self.out.answer(("released", ch))

    def clear_emergency(self, ch: str, now: float) -> None:
        """Clear the emergency: the signed clear to the members, then the relay's floor."""
        self.signal_emergency(ch, False, now)
        self.out.send("emergency-clear", ch=ch)

    def signal_emergency(self, ch: str, active: bool, now: float) -> str | None:
        """Send the signed declare (``active``) or clear (:mod:`bridge.endpoint.emergency`);
        its id, or None if we may not send here (an observer: the relay refuses it too)."""
        try:
            return self.send_text(ch, emergency_body(active), EMERGENCY, now)
        except NotPermittedError:
            return None

    def start_burst(self, ch: str, burst_id: str | None = None) -> None:
        """The floor is ours: frames sent from now on are hashed for the burst seal."""
        self.voice.begin(ch, burst_id or uuid.uuid4().hex[:16])

    def send_voice(self, ch: str, payload: bytes, now: float) -> int:
        """Encrypt one voice frame and queue it (:meth:`media_to_send`); returns its counter."""
        member = self._member(ch)
        self.confirms.check_send(ch, now)
        c = member.last_commit
        if c is not None and now >= c.expires:
            raise NotPermittedError(f"channel {ch} has expired")
        frame = member.protect(payload, CONTEXT_VOICE)
        ctr, checkpoint = self.voice.sent(ch, member, frame, now)
        no = self.channel_no.get(ch)
        if no is not None:
            self.out.media.append((no, frame))
            if checkpoint is not None:  # in band, right behind the frame that closed it
                self.out.media.append((no, checkpoint))
        return ctr

    def end_burst(self, ch: str, now: float) -> BurstSeal | None:
        """End our burst: release the floor — over UDP, :data:`~bridge.endpoint.voice.UDP_TAIL`
        after the last frame, by a timer — then send the signed seal over what we sent."""
        burst = self.voice.bursts.pop(ch, None)
        member = self.channels.get(ch)
        sealed = None
        if burst is not None and member is not None:
            try:
                last = self.voice.last_checkpoint(member, burst)
                no = self.channel_no.get(ch)
                if last is not None and no is not None:
                    self.out.media.append((no, last))  # before the floor release (tail)
                sealed = self.voice.seal_for(ch, member, self.device, burst)
            except NotPermittedError:  # removed mid-burst: nothing we may sign into it
                sealed = None
        if ch in self._tails:
            self._release(ch)
        self._tails[ch] = _Tail(self.voice.release_time(burst, now), now, sealed)
        if self._tails[ch].deadline <= now:
            self._release(ch)
        return sealed[0] if sealed else None

    def _release(self, ch: str) -> None:
        tail = self._tails.pop(ch)
        self.out.send("floor-release", ch=ch)
        self.out.answer(("released", ch))
        if tail.sealed is not None:
            seal, frame = tail.sealed
            self.post(ch, seal.burst, frame)

    def last_commit(self, ch: str) -> Commit | None:
        member = self.channels.get(ch)
        return member.last_commit if member else None
