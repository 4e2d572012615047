"""The endpoint: one device identity, its channels, and its connection to the relay.

The endpoint is the end-to-end encryption boundary (DESIGN §1): adapters hand it audio frames
and messages in the clear; it sends only SFrame ciphertext to the relay. It

- connects over WebSocket, answers the relay's challenge with its device key, and reconnects
  with exponential backoff (0.2 s doubling to 10 s, with jitter) whenever the link drops;
- follows channel commits delivered by the relay, verifying each itself (its own trust bundle,
  its own record of the previous commit) before deriving any key;
- persists commits, send counters and seen message ids in :class:`EndpointState`, so a restart
  keeps its membership and never reuses a nonce, and a redelivered message is dropped;
- sends voice over UDP (or WebSocket) and signed messages through the relay's store-and-forward
  queue, resending unacknowledged messages after a reconnect (the relay drops duplicates);
- reports what happens as :mod:`bridge.endpoint.events` on an asyncio queue.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.endpoint import events as ev
from bridge.endpoint.link import RelayLink
from bridge.endpoint.state import EndpointState
from bridge.errors import RelayError
from bridge.wire import control as p
from crypto.agreement import Agreement, RevocationList
from crypto.channel import Commit, CommitBundle, create_commit
from crypto.errors import CryptoError, DecryptError, VerificationError
from crypto.group import CONTEXT_VOICE, ChannelMember, NotPermittedError
from crypto.identity import Credential, DeviceKeys, TrustBundle, verify_credential
from crypto.keys import VerifyKey
from crypto.messages import BurstHasher, BurstSeal, SignedMessage
from crypto.sframe import decode_header

log = logging.getLogger("crossband.endpoint")
UDP_TAIL = 0.06  # seconds between the last UDP voice frame and the floor release
SEAL_WAIT = 0.5  # seconds a burst seal waits for voice frames it overtook
MAX_UNSEALED = 15_000  # frame hashes kept per talker awaiting a seal (5 minutes of voice)


@dataclass
class _Burst:
    id: str
    hasher: BurstHasher = field(default_factory=BurstHasher)


class Endpoint:
    def __init__(
        self,
        cred: Credential,
        keys: DeviceKeys,
        trust: TrustBundle,
        relay_url: str,
        state_path: str,
        *,
        transport: str = "udp",
        ssl_context: Any = None,
        revocations: dict[str, RevocationList] | None = None,
        relay_key: VerifyKey | None = None,
    ) -> None:
        self.cred = cred
        self.device = cred.device
        self._keys = keys
        self.trust = trust
        self.relay_url = relay_url
        self.revocations = dict(revocations or {})
        self.link = RelayLink(
            cred,
            keys.sign,
            relay_url,
            self,
            transport=transport,
            ssl_context=ssl_context,
            relay_key=relay_key,
        )
        self.connected = self.link.connected
        self.state = EndpointState(state_path)
        self.events: asyncio.Queue[ev.Event] = asyncio.Queue(maxsize=10_000)
        self.channels: dict[str, ChannelMember] = {}
        self.channel_no: dict[str, int] = {}
        self._by_no: dict[int, str] = {}
        self.floor: dict[str, str | None] = {}
        self.emergency: dict[str, bool] = {}
        self._waiters: dict[Any, asyncio.Future[Any]] = {}
        self._floor_answers: dict[str, asyncio.Queue[str]] = {}
        self._commit_lock = asyncio.Lock()
        self._outbox: dict[str, str] = {}  # msg id -> control message, until accepted
        self._bursts: dict[str, _Burst] = {}  # channel -> my burst in progress
        # (channel, talker, epoch) -> {SFrame counter: SHA-256 of the frame}, until sealed
        self._heard: dict[tuple[str, str, int], dict[int, bytes]] = {}
        self._seals: dict[tuple[str, str, int], BurstSeal] = {}  # seals awaiting late frames
        self.stats = dict.fromkeys(
            (
                "voice_sent",
                "voice_received",
                "voice_decrypted",
                "voice_undecryptable",
                "messages_sent",
                "messages_received",
                "malformed_from_relay",
            ),
            0,
        )
        # Called as hook(channel, ctr, time) for every voice frame sent (latency measurement).
        self.voice_sent_hook: Callable[[str, int, float], None] | None = None
        self._restore()

    # -- life cycle ----------------------------------------------------------------------------

    def _restore(self) -> None:
        now = time.time()
        for channel, _epoch, blob in self.state.commits():
            try:
                self._apply_commit(CommitBundle.decode(blob), now, persist=False)
            except CryptoError as exc:
                log.warning("event=restore-refused channel=%s reason=%s", channel, exc)

    async def start(self) -> None:
        await self.link.start()

    async def stop(self) -> None:
        await self.link.stop()
        self.state.close()

    @property
    def transport(self) -> str:
        return self.link.transport

    @property
    def reconnects(self) -> int:
        return self.link.reconnects

    async def wait_connected(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self.connected.wait(), timeout)

    def emit(self, event: ev.Event) -> None:
        try:
            self.events.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("event=events-overflow dropped=%s", type(event).__name__)

    async def on_welcome(self, welcome: dict[str, Any]) -> None:
        """A (re)connection is authenticated: channel numbers, then resend the outbox."""
        for item in welcome.get("channels", []):
            self._set_channel_no(item["ch"], item["no"])
        self.emit(ev.Connected(self.device))
        for control in list(self._outbox.values()):  # resend what the relay has not accepted
            await self._send(control)

    def _set_channel_no(self, ch: str, no: int) -> None:
        old = self.channel_no.get(ch)
        if old is not None:
            self._by_no.pop(old, None)
        self.channel_no[ch] = no
        self._by_no[no] = ch

    async def _send(self, control: str) -> None:
        await self.link.send(control)

    # -- incoming control --------------------------------------------------------------------

    async def on_text(self, data: str) -> None:
        """One control message from the relay. The relay is not trusted: anything malformed
        is counted and reported, and never ends the connection or the endpoint."""
        try:
            msg = json.loads(data)
            if not isinstance(msg, dict):
                raise ValueError("not an object")
            await self._on_control(msg)
        except (ValueError, KeyError, TypeError, AttributeError, CryptoError):
            self.stats["malformed_from_relay"] += 1
            log.warning("event=malformed-from-relay")
            self.emit(ev.Error("malformed-from-relay", "a relay message was ignored"))

    async def _on_control(self, msg: dict[str, Any]) -> None:
        t = msg.get("t")
        now = time.time()
        if t == "deliver":
            await self._on_deliver(msg, now)
        elif t == "channel":
            self._set_channel_no(msg["ch"], msg["no"])
        elif t == "channel-closed":
            self._close_channel(msg["ch"])
        elif t == "floor":
            self._on_floor(msg)
        elif t == "floor-state":
            self.floor[msg["ch"]] = msg.get("holder")
            self.emergency[msg["ch"]] = bool(msg.get("emergency"))
            if msg.get("holder"):
                self.emit(
                    ev.TalkerChanged(msg["ch"], msg["holder"], msg.get("priority"), "late-entry")
                )
            if msg.get("emergency"):
                self.emit(ev.Emergency(msg["ch"], True, msg.get("emergency_by")))
        elif t == "accepted":
            self._outbox.pop(msg["id"], None)
            self._resolve(("msg", msg["id"]), True)
        elif t == "commit-ok":
            self._resolve(("commit", msg["ch"], msg["epoch"]), True)
        elif t == "directory":
            self._resolve(("rid", msg.get("rid")), msg.get("credentials", []))
        elif t == "revocation-ok":
            self._resolve(("revocation", msg["agency"]), msg["number"])
        elif t == "error":
            self._on_error(msg)

    def _resolve(self, key: Any, value: Any, error: BaseException | None = None) -> None:
        fut = self._waiters.pop(key, None)
        if fut is not None and not fut.done():
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(value)

    def _on_error(self, msg: dict[str, Any]) -> None:
        code, detail = msg.get("code", "error"), msg.get("detail", "")
        err = RelayError(code, detail)
        if "epoch" in msg and "ch" in msg:
            self._resolve(("commit", msg["ch"], msg["epoch"]), None, err)
            for key in [k for k in self._waiters if k[:2] == ("commit", msg["ch"])]:
                self._resolve(key, None, err)
        rid = msg.get("rid")
        if isinstance(rid, str) and rid.startswith("floor:"):
            answers = self._floor_answers.get(rid[6:])
            if answers is not None:
                answers.put_nowait("denied")
        if msg.get("rid") is not None:
            key = ("rid", msg["rid"])
            if key in self._waiters:
                self._resolve(key, None, err)
            else:
                for k in [k for k in self._waiters if k[0] == "msg" and k[1] == msg["rid"]]:
                    self._outbox.pop(msg["rid"], None)
                    self._resolve(k, None, err)
        self.emit(ev.Error(code, detail))

    def _on_floor(self, msg: dict[str, Any]) -> None:
        ch, what, device = msg["ch"], msg["event"], msg.get("device")
        self.emit(
            ev.FloorEvent(
                ch, what, device, msg.get("priority"), msg.get("reason"), msg.get("position")
            )
        )
        if device == self.device and what in ("granted", "denied", "queued"):
            answers = self._floor_answers.get(ch)
            if answers is not None:
                answers.put_nowait(what)
        if what == "granted":
            self.floor[ch] = device
            self.emit(ev.TalkerChanged(ch, device, msg.get("priority"), "granted"))
        elif what in ("released", "revoked", "idle"):
            if self.floor.get(ch) is not None and (self.floor.get(ch) == device or what == "idle"):
                self.floor[ch] = None
                self.emit(ev.TalkerChanged(ch, None, None, msg.get("reason") or what))
            if what == "revoked" and device == self.device:
                self._bursts.pop(ch, None)
        elif what == "emergency":
            self.emergency[ch] = bool(msg.get("active"))
            self.emit(ev.Emergency(ch, bool(msg.get("active")), device))

    async def _on_deliver(self, msg: dict[str, Any], now: float) -> None:
        seq, kind, ch = msg["seq"], msg["kind"], msg["ch"]
        body = base64.b64decode(msg["body"])
        try:
            if kind == "commit":
                await self._apply_commit_off_loop(CommitBundle.decode(body), now)
            elif kind == "msg":
                self._on_data(ch, msg["id"], body, now)
        except (CryptoError, ValueError, KeyError) as exc:
            code = exc.code.value if isinstance(exc, VerificationError) else "undecryptable"
            self.emit(ev.Error(code, f"{kind} on {ch} refused"))
        with contextlib.suppress(RelayError):
            await self._send(p.control("ack", seq=seq))

    def _apply_commit(self, bundle: CommitBundle, now: float, persist: bool = True) -> None:
        member = self._member_for(bundle.commit.channel)
        self._installed(
            member, member.process_commit(bundle, now, self.revocations), bundle, persist
        )

    async def _apply_commit_off_loop(self, bundle: CommitBundle, now: float) -> None:
        """Verify a commit on a worker thread (hundreds of credentials: ~100 ms), so voice
        playout on this loop does not stall; then install it here. One at a time, and a
        commit we already follow (our own, delivered back to us) is skipped."""
        async with self._commit_lock:
            member = self._member_for(bundle.commit.channel)
            last = member.last_commit
            if last is not None and bundle.commit.epoch <= last.epoch:
                return
            prepared = await asyncio.to_thread(member.prepare_commit, bundle, now, self.revocations)
            self._installed(member, member.install(prepared, now), bundle, persist=True)

    def _member_for(self, ch: str) -> ChannelMember:
        member = self.channels.get(ch)
        if member is None:
            member = ChannelMember(self.device, self._keys, self.trust, self.state)
        return member

    def _installed(
        self, member: ChannelMember, commit: Commit, bundle: CommitBundle, persist: bool
    ) -> None:
        ch = commit.channel
        self.channels[ch] = member
        if persist:
            self.state.save_commit(ch, commit.epoch, bundle.encode())
        roster = {e.device: e.role for e in commit.roster}
        self.emit(ev.ChannelUpdated(ch, commit.name, commit.epoch, roster, member.removed))

    def _close_channel(self, ch: str) -> None:
        """The relay says the channel expired; we stop sending once its commit says so too."""
        member = self.channels.get(ch)
        c = member.last_commit if member else None
        if c is not None and time.time() >= c.expires:
            self.channels.pop(ch, None)
            self.floor.pop(ch, None)
            roster = {e.device: e.role for e in c.roster}
            self.emit(ev.ChannelUpdated(ch, c.name, c.epoch, roster, True))

    def _on_data(self, ch: str, msg_id: str, frame: bytes, now: float) -> None:
        if self.state.seen(msg_id):
            return
        member = self.channels.get(ch)
        if member is None:
            raise DecryptError()
        received = member.unprotect(frame, now)
        item = member.open_signed(received)
        if isinstance(item, SignedMessage):
            self.stats["messages_received"] += 1
            self.emit(ev.Message(ch, item.id, item.sender, item.kind, item.body, item.timestamp))
        elif isinstance(item, BurstSeal):
            self._check_seal(ch, item, final=False)
        self.state.mark_seen(msg_id, now)

    def _check_seal(self, ch: str, seal: BurstSeal, *, final: bool) -> None:
        """Report a talker's burst seal: verified when we hold exactly the frames it sealed
        (its counter range, hashed in counter order, whatever order they arrived in).

        The seal travels the message path and can overtake the burst's last voice frames, so
        a seal that finds frames missing waits (up to SEAL_WAIT s) for them before the verdict.
        """
        key = (ch, seal.sender, seal.epoch)
        heard = self._heard.get(key, {})
        frames = {c: d for c, d in heard.items() if seal.first_ctr <= c <= seal.last_ctr}
        hasher = BurstHasher.in_order(frames)
        complete = seal.matches(hasher)
        if not complete and not final and len(frames) < seal.frames:
            self._seals[key] = seal
            asyncio.get_running_loop().call_later(SEAL_WAIT, self._seal_timeout, ch, seal)
            return
        self._seals.pop(key, None)
        for c in [c for c in heard if c <= seal.last_ctr]:
            del heard[c]
        self.emit(ev.BurstSealed(ch, seal.sender, seal.burst, seal.frames, complete, hasher.count))

    def _seal_timeout(self, ch: str, seal: BurstSeal) -> None:
        if self._seals.get((ch, seal.sender, seal.epoch)) is seal:
            self._check_seal(ch, seal, final=True)

    # -- media ---------------------------------------------------------------------------------

    def on_media(self, channel_no: int, frame: bytes) -> None:
        ch = self._by_no.get(channel_no)
        member = self.channels.get(ch) if ch else None
        if member is None or ch is None:
            return
        self.stats["voice_received"] += 1
        try:
            r = member.unprotect(frame, time.time())
        except DecryptError:
            self.stats["voice_undecryptable"] += 1
            return
        self.stats["voice_decrypted"] += 1
        if r.context != CONTEXT_VOICE:
            return
        key = (ch, r.sender, r.epoch)
        heard = self._heard.setdefault(key, {})
        heard[r.ctr] = hashlib.sha256(frame).digest()
        if len(heard) > MAX_UNSEALED:  # a talker that never seals: keep the newest only
            for c in sorted(heard)[: len(heard) - MAX_UNSEALED]:
                del heard[c]
        seal = self._seals.get(key)
        if seal is not None and sum(seal.first_ctr <= c <= seal.last_ctr for c in heard) >= (
            seal.frames
        ):
            self._check_seal(ch, seal, final=True)
        self.emit(ev.Voice(ch, r.sender, r.payload, r.ctr, time.time(), r.epoch))

    def send_voice(self, ch: str, payload: bytes) -> None:
        """Encrypt and send one voice frame (the caller should hold the floor)."""
        member = self.channels[ch]
        if member.last_commit is not None and time.time() >= member.last_commit.expires:
            raise NotPermittedError(f"channel {ch} has expired")
        frame = member.protect(payload, CONTEXT_VOICE)
        ctr = decode_header(frame)[1]
        burst = self._bursts.get(ch)
        if burst is not None:
            burst.hasher.add(frame, ctr)
        self.stats["voice_sent"] += 1
        if self.voice_sent_hook is not None:
            self.voice_sent_hook(ch, ctr, time.time())
        no = self.channel_no.get(ch)
        if no is not None:
            self.link.send_media(no, frame)

    # -- requests --------------------------------------------------------------------------------

    async def _request(self, key: Any, control: str, timeout: float) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[key] = fut
        try:
            await self._send(control)
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._waiters.pop(key, None)

    async def lookup(self, devices: list[str], timeout: float = 5.0) -> dict[str, Credential]:
        """Fetch credentials from the relay's directory and verify them ourselves."""
        rid = uuid.uuid4().hex
        found = await self._request(
            ("rid", rid), p.control("lookup", devices=devices, rid=rid), timeout
        )
        out: dict[str, Credential] = {}
        now = time.time()
        for raw in found:
            try:
                cred = verify_credential(Credential.decode(raw), self.trust, now, self.revocations)
            except VerificationError:
                continue
            out[cred.device] = cred
        return out

    async def commit(
        self,
        ch: str,
        members: list[tuple[Credential, str]],
        *,
        agreement: Agreement | None = None,
        name: str | None = None,
        expires: int | None = None,
        timeout: float = 10.0,
        rebase_attempts: int = 2,
    ) -> Commit:
        """Create the channel (epoch 1) or move it to ``members`` (the next epoch).

        If another dispatcher's commit for the same epoch won at the relay, this waits until
        that commit reached us (and was verified), then builds ours on top of it and tries again
        (``rebase_attempts`` times): the roster given here is the one that ends up current."""
        for attempt in range(rebase_attempts + 1):
            bundle = self._build_commit(ch, members, agreement, name, expires)
            c = bundle.commit
            try:
                await self._request(
                    ("commit", ch, c.epoch),
                    p.control("commit", bundle=p.b64(bundle.encode())),
                    timeout,
                )
            except RelayError as exc:
                if exc.code != p.Codes.REBASE or attempt == rebase_attempts:
                    raise
                await self._wait_for_epoch(ch, c.epoch, timeout)
                continue
            # Accepted: follow it now (the relay's delivery of the same commit is then skipped).
            await self._apply_commit_off_loop(bundle, time.time())
            return c
        raise AssertionError("unreachable")

    def _build_commit(
        self,
        ch: str,
        members: list[tuple[Credential, str]],
        agreement: Agreement | None,
        name: str | None,
        expires: int | None,
    ) -> CommitBundle:
        member = self.channels.get(ch)
        previous = member.last_commit if member else None
        agreement = agreement or (member.agreement if member else None)
        if agreement is None:
            raise ValueError("a new channel needs an agreement")
        now = int(time.time())
        bundle, _secret = create_commit(
            issuer=self.cred,
            issuer_keys=self._keys,
            channel=ch,
            name=name or (previous.name if previous else ch),
            agreement=agreement,
            members=members,
            previous=previous,
            expires=expires or (previous.expires if previous else now + 86400),
            now=now,
        )
        return bundle

    async def _wait_for_epoch(self, ch: str, epoch: int, timeout: float) -> None:
        """Until the commit that took ``epoch`` has been delivered to us and verified."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            member = self.channels.get(ch)
            if member is not None and member.last_commit is not None:
                if member.last_commit.epoch >= epoch:
                    return
            await asyncio.sleep(0.02)
        raise RelayError(p.Codes.REBASE, f"the winning commit for epoch {epoch} never arrived")

    async def request_floor(self, ch: str, priority: str = "normal", timeout: float = 5.0) -> str:
        """Ask for the floor; returns the relay's first answer: 'granted', 'queued', 'denied'.

        Later answers (a grant after 'queued') are kept for :meth:`start_burst`."""
        answers: asyncio.Queue[str] = asyncio.Queue()
        self._floor_answers[ch] = answers  # registered before asking: no answer is lost
        await self._send(p.control("floor-request", ch=ch, priority=priority, rid=f"floor:{ch}"))
        return await asyncio.wait_for(answers.get(), timeout)

    async def release_floor(self, ch: str) -> None:
        await self._send(p.control("floor-release", ch=ch))

    async def clear_emergency(self, ch: str) -> None:
        await self._send(p.control("emergency-clear", ch=ch))

    async def publish_revocation(self, rl: RevocationList, timeout: float = 5.0) -> int:
        return int(
            await self._request(
                ("revocation", rl.agency),
                p.control("revocation", list=json.loads(rl.encode())),
                timeout,
            )
        )

    # -- talk bursts ---------------------------------------------------------------------------

    async def start_burst(self, ch: str, priority: str = "normal", timeout: float = 5.0) -> bool:
        """Request the floor and wait until it is granted; True if we may talk."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            answer = await self.request_floor(ch, priority, timeout)
            answers = self._floor_answers[ch]
            while answer == "queued":
                answer = await asyncio.wait_for(answers.get(), max(0.0, deadline - loop.time()))
        except TimeoutError:
            answer = "timeout"
        finally:
            self._floor_answers.pop(ch, None)
        if answer != "granted":
            if answer in ("queued", "timeout"):
                with contextlib.suppress(RelayError):
                    await self.release_floor(ch)  # leave the queue
            return False
        self._bursts[ch] = _Burst(uuid.uuid4().hex[:16])
        return True

    async def end_burst(self, ch: str) -> BurstSeal | None:
        """Release the floor and send the signed burst seal over what we sent."""
        burst = self._bursts.pop(ch, None)
        if self.transport == "udp" and burst is not None and burst.hasher.count:
            # Voice goes by UDP, the release by WebSocket: let the last frames reach the
            # relay first, or it would drop them as sent without the floor.
            await asyncio.sleep(UDP_TAIL)
        with contextlib.suppress(RelayError):
            await self.release_floor(ch)
        if burst is None or burst.hasher.count == 0:
            return None
        member = self.channels[ch]
        c = member.last_commit
        assert c is not None
        h = burst.hasher
        seal, frame = member.seal_burst(
            BurstSeal(
                ch,
                c.epoch,
                self.device,
                burst.id,
                h.count,
                h.first_ctr or 0,
                h.last_ctr or 0,
                h.digest(),
            )
        )
        await self._post(ch, seal.burst, frame, wait=False)
        return seal

    # -- messages ------------------------------------------------------------------------------

    async def send_text(
        self, ch: str, body: bytes | str, kind: str = "text", timeout: float = 30.0
    ) -> str:
        """Sign, encrypt and send a message; returns its id once the relay has accepted it
        (durably). While disconnected it waits and is resent on reconnect."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        msg_id = uuid.uuid4().hex
        member = self.channels[ch]
        _msg, frame = member.sign_message(msg_id, kind, data, int(time.time() * 1000))
        await self._post(ch, msg_id, frame, wait=True, timeout=timeout)
        self.stats["messages_sent"] += 1
        return msg_id

    async def _post(
        self, ch: str, msg_id: str, frame: bytes, *, wait: bool, timeout: float = 30.0
    ) -> None:
        control = p.control("msg", ch=ch, id=msg_id, frame=p.b64(frame), rid=msg_id)
        self._outbox[msg_id] = control
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[("msg", msg_id)] = fut
        with contextlib.suppress(RelayError):
            await self._send(control)  # if offline, _on_welcome resends it
        if wait:
            try:
                await asyncio.wait_for(fut, timeout)
            finally:
                self._waiters.pop(("msg", msg_id), None)
