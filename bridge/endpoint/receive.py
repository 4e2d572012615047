"""The relay's words to the endpoint, as :class:`~bridge.endpoint.core.EndpointCore` takes them.

:class:`RelayInput` is the receiving half of the core (a mixin, so that each module stays
short): the welcome, control messages checked against
:data:`~bridge.endpoint.inbound.RELAY_MESSAGES`, relay deliveries processed strictly in order
behind any commit being verified, and media frames. It does no I/O; see
:mod:`bridge.endpoint.core` for the theory of operation.

A signed message or seal is shown once: a delivery id handled before is dropped unopened, and
what decides is the item's own (sender, kind, inner id), kept in the state file
(:mod:`bridge.endpoint.seen`), so neither a relay replaying it under a new id nor an insider
re-encrypting it into a fresh frame gets it shown again, before or after a restart. An item
bound to another channel or commit (:func:`crypto.messages.check_binding`) is refused with
:class:`~bridge.endpoint.events.BindingRefused`.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

from bridge.endpoint import events as ev
from bridge.endpoint.commits import ChannelBook, decode_bundle
from bridge.endpoint.emergency import KIND as EMERGENCY
from bridge.endpoint.emergency import SignedEmergencies
from bridge.endpoint.floorview import FloorView
from bridge.endpoint.inbound import check_relay_message, parse_relay_message, welcome_channels
from bridge.endpoint.output import Output, VerifyJob
from bridge.endpoint.seen import SeenIds
from bridge.endpoint.voice import VoicePath
from bridge.errors import RelayError, RemoteProtocolError, StoreError
from bridge.wire import control as p
from bridge.wire.codes import Code
from crypto.channel import CommitBundle
from crypto.errors import CryptoError, DecryptError, Refusal, VerificationError
from crypto.group import ChannelMember, PreparedCommit
from crypto.messages import BINDING_FAULTS, SignedMessage, decode_signed

log = logging.getLogger("crossband.endpoint")
MALFORMED_FROM_RELAY = "malformed-from-relay"
MALFORMED_CONTENT = "malformed-content"


def _kind(payload: bytes) -> str:
    """message / seal: what a refused signed item was (it decoded before, so it decodes)."""
    return "message" if isinstance(decode_signed(payload), SignedMessage) else "seal"


@dataclass
class Delivery:
    seq: int | None  # None: our own commit, accepted by the relay
    kind: str  # commit / msg / own / skip
    ch: str
    id: str
    body: bytes
    bundle: CommitBundle | None = None
    answer: tuple[Any, ...] | None = None


class RelayInput:
    device: str
    out: Output
    stats: dict[str, int]
    book: ChannelBook
    voice: VoicePath
    seen: SeenIds
    floorview: FloorView
    emergencies: SignedEmergencies
    channel_no: dict[str, int]
    _by_no: dict[int, str]
    _outbox: dict[str, str]
    _texts: set[str]
    _lookups: set[str]
    _inbox: deque[Delivery]
    stalled: bool  # the state could not be written: deliveries wait for a reconnect
    _reconnect: bool

    @property
    def channels(self) -> dict[str, ChannelMember]:
        return self.book.channels

    def receive_welcome(self, welcome: Any, now: float) -> None:
        """A (re)connection is authenticated: channel numbers, then resend the outbox."""
        try:
            numbers = welcome_channels(welcome)
        except RemoteProtocolError:
            self._malformed()
            numbers = []
        for ch, no in numbers:
            self._set_channel_no(ch, no)
        self.out.emit(ev.Connected(self.device))
        self.out.controls.extend(self._outbox.values())
        self.stalled = False  # the relay redelivers what we did not acknowledge

    def receive_control(self, data: str | bytes | dict[str, Any], now: float) -> None:
        """One control message from the relay (text, or already parsed). Never raises."""
        try:
            if isinstance(data, str | bytes):
                msg = parse_relay_message(data)
            else:
                msg = check_relay_message(data)
            if msg is not None:
                self._dispatch(msg, now)
        except (RemoteProtocolError, CryptoError):
            self._malformed()
        except StoreError:
            self._stall()

    def _dispatch(self, msg: dict[str, Any], now: float) -> None:
        t = msg["t"]
        if t == "deliver":
            self._on_deliver(msg, now)
        elif t == "channel":
            self._set_channel_no(msg["ch"], msg["no"])
        elif t == "channel-closed":
            self.book.close(msg["ch"], now)
            if msg["ch"] not in self.channels:
                self.floorview.forget(msg["ch"])
                self.emergencies.forget(msg["ch"])
        elif t == "floor":
            if self.floorview.on_floor(msg):  # the relay took the floor from us
                self.voice.bursts.pop(msg["ch"], None)
        elif t == "floor-state":
            self.floorview.on_state(msg)
        elif t == "accepted":
            self._on_accepted(msg["id"])
        elif t == "commit-ok":
            self._on_commit_ok(msg["ch"], msg["epoch"], now)
        elif t == "directory":
            if msg.get("rid") in self._lookups:
                self._lookups.discard(msg["rid"])
                self.out.answer(("rid", msg["rid"]), msg["credentials"])
        elif t == "revocation-ok":
            self.out.answer(("revocation", msg["agency"]), msg["number"])
        elif t == "error":
            self._on_error(msg)

    def _malformed(self) -> None:
        self.stats["malformed_from_relay"] += 1
        log.warning("event=malformed-from-relay")
        self.out.emit(ev.Error(MALFORMED_FROM_RELAY, "a relay message was ignored"))

    def receive_media(self, channel_no: int, frame: bytes, now: float) -> None:
        ch = self._by_no.get(channel_no)
        member = self.channels.get(ch) if ch is not None else None
        if member is not None and ch is not None:
            self.voice.receive(ch, member, bytes(frame), now)

    def job_done(self, job: VerifyJob, result: PreparedCommit | CryptoError, now: float) -> None:
        """A verification handed out by :meth:`jobs` finished (on whatever thread)."""
        try:
            self._ack(self.book.done(job, result, now))
        except StoreError:
            self._stall()
        self._drain(now)

    def _stall(self) -> None:
        """Our state cannot be written: acknowledge nothing more on this connection (the
        relay keeps what is unacknowledged) and ask the driver for a new one."""
        self.stalled = self._reconnect = True
        self._inbox = deque(d for d in self._inbox if d.seq is None)  # keep our own commits
        log.error("event=state-write-failed")
        self.out.emit(ev.Error(Code.STORE_FAILED, "state not writable; deliveries will be retried"))

    def take_reconnect_request(self) -> bool:
        """True once after a stall: the driver should drop the connection and reconnect."""
        wanted, self._reconnect = self._reconnect, False
        return wanted

    def _set_channel_no(self, ch: str, no: int) -> None:
        old = self.channel_no.get(ch)
        if old is not None:
            self._by_no.pop(old, None)
        self.channel_no[ch] = no
        self._by_no[no] = ch

    def _on_deliver(self, msg: dict[str, Any], now: float) -> None:
        if self.stalled:
            return  # unacknowledged: redelivered after the reconnect
        try:
            body = p.unb64(msg["body"])
        except RemoteProtocolError:
            self._malformed()
            body = None
        if body is None or msg["kind"] not in ("commit", "msg"):
            self._inbox.append(Delivery(msg["seq"], "skip", msg["ch"], msg["id"], b""))
        else:
            self._inbox.append(Delivery(msg["seq"], msg["kind"], msg["ch"], msg["id"], body))
        self._drain(now)

    def _drain(self, now: float) -> None:
        while self._inbox and self.book.job is None and not self.stalled:
            d = self._inbox.popleft()
            try:
                if self._handle(d, now):
                    self._ack(d.seq)
            except StoreError:
                self._stall()

    def _handle(self, d: Delivery, now: float) -> bool:
        """Process one delivery; False if it is acknowledged later (its commit is verifying)."""
        if d.kind == "msg":
            self._on_data(d.ch, d.id, d.body, now)
        elif d.kind in ("commit", "own"):
            try:
                bundle = d.bundle or decode_bundle(d.body)
            except VerificationError:  # the relay forwards only commits it could decode
                self._malformed()
            else:
                return not self.book.start(bundle, now, d.seq, d.answer)  # else: job_done
        return True

    def _ack(self, seq: int | None) -> None:
        if seq is not None:
            self.out.send("ack", seq=seq)

    def _on_data(self, ch: str, msg_id: str, frame: bytes, now: float) -> None:
        if msg_id in self.seen:  # a redelivery of what we handled (the relay's id: drop only)
            return
        member = self.channels.get(ch)
        try:
            if member is None:
                raise DecryptError()
            r = member.unprotect(frame, now)
            self.voice.alarm_clones(member)
            item = member.open_signed(r)
        except DecryptError:
            self.stats["messages_undecryptable"] += 1
            self.out.emit(ev.Error("undecryptable", f"msg on {ch} refused"))
            return
        except VerificationError as exc:
            if exc.code is Refusal.MALFORMED:  # authentic ciphertext, content does not parse
                self.stats["malformed_content"] += 1
                self.out.emit(ev.Error(MALFORMED_CONTENT, f"a message on {ch} was dropped"))
                self.seen.add(msg_id, now)
            elif exc.code is Refusal.WRONG_CHANNEL and exc.detail in BINDING_FAULTS:
                self.stats["messages_misbound"] += 1
                kind = _kind(r.payload)
                log.warning("event=binding-refused channel=%s sender=%s", ch, r.sender)
                self.out.emit(ev.BindingRefused(ch, r.sender, kind, exc.detail))
                self.seen.add(msg_id, now)
            else:
                self.out.emit(ev.Error(exc.code.value, f"msg on {ch} refused"))
            return
        if isinstance(item, SignedMessage):
            kind, inner = "message", item.id
        else:
            kind, inner = "seal", item.burst
        if self.seen.has_inner(item.sender, kind, inner):  # replayed under a new id or frame
            self.stats["messages_replayed"] += 1
            self.seen.add(msg_id, now)
            return
        if isinstance(item, SignedMessage) and item.kind == EMERGENCY:
            if not self.emergencies.on_message(ch, item, member):  # signed, but no such state
                self.stats["malformed_content"] += 1
                self.out.emit(ev.Error(MALFORMED_CONTENT, f"a message on {ch} was dropped"))
        elif isinstance(item, SignedMessage):
            self.stats["messages_received"] += 1
            self.out.emit(
                ev.Message(ch, item.id, item.sender, item.kind, item.body, item.timestamp)
            )
        else:
            self.voice.on_seal(ch, item, r.gen, now)
        self.seen.add_inner(item.sender, kind, inner, now)
        self.seen.add(msg_id, now)

    def _on_accepted(self, msg_id: str) -> None:
        if self._outbox.pop(msg_id, None) is not None:
            if msg_id in self._texts:
                self._texts.discard(msg_id)
                self.stats["messages_sent"] += 1
            self.out.answer(("msg", msg_id), True)

    def _on_commit_ok(self, ch: str, epoch: int, now: float) -> None:
        bundle = self.book.accepted(ch, epoch)
        if bundle is not None:  # follow it now; the relay's delivery of it is then skipped
            self._inbox.append(Delivery(None, "own", ch, "", b"", bundle, ("commit", ch, epoch)))
            self._drain(now)

    def _on_error(self, msg: dict[str, Any]) -> None:
        code, detail = msg["code"], msg.get("detail", "")
        err = RelayError(code, detail)
        if "epoch" in msg and "ch" in msg:
            self.book.forget(msg["ch"])
            self.out.answer(("commit", msg["ch"], None), error=err)
        rid = msg.get("rid")
        if isinstance(rid, str) and rid.startswith("floor:"):
            self.out.answer(("floor", rid[6:]), "denied")
        elif rid in self._lookups:
            self._lookups.discard(rid)
            self.out.answer(("rid", rid), error=err)
        elif isinstance(rid, str) and self._outbox.pop(rid, None) is not None:
            self._texts.discard(rid)
            self.out.answer(("msg", rid), error=err)
        self.out.emit(ev.Error(code, detail))
