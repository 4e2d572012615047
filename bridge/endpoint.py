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
- reports what happens as :mod:`bridge.events` on an asyncio queue.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import aiohttp

from crypto.agreement import Agreement, RevocationList
from crypto.channel import Commit, CommitBundle, create_commit
from crypto.encoding import signing_input
from crypto.errors import CryptoError, DecryptError, VerificationError
from crypto.group import CONTEXT_VOICE, ChannelMember, NotPermittedError
from crypto.identity import Credential, DeviceKeys, TrustBundle, verify_credential
from crypto.keys import VerifyKey
from crypto.messages import BurstHasher, BurstSeal, SignedMessage
from crypto.sframe import decode_header

from . import events as ev
from . import protocol as p
from .endpoint_state import EndpointState
from .errors import RelayError
from .relay import AUTH_DOMAIN, relay_proof

log = logging.getLogger("crossband.endpoint")
RELAY_NOT_AUTHENTIC = "relay-not-authentic"
UDP_TAIL = 0.06  # seconds between the last UDP voice frame and the floor release


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass
class _Burst:
    id: str
    hasher: BurstHasher = field(default_factory=BurstHasher)


class _UdpClient(asyncio.DatagramProtocol):
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) > 6 and data[0] == p.UDP_MAGIC and data[1] == p.UDP_MEDIA_DOWN:
            self.endpoint._on_media(int.from_bytes(data[2:6], "big"), data[6:])


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
        if transport not in ("udp", "ws"):
            raise ValueError("transport must be 'udp' or 'ws'")
        self.cred = cred
        self.device = cred.device
        self._keys = keys
        self.trust = trust
        self.relay_url = relay_url
        self.transport = transport
        self._ssl = ssl_context
        self.revocations = dict(revocations or {})
        self.relay_key = relay_key  # pinned relay identity: its welcome must be signed by it
        self.state = EndpointState(state_path)
        self.events: asyncio.Queue[ev.Event] = asyncio.Queue(maxsize=10_000)
        self.channels: dict[str, ChannelMember] = {}
        self.channel_no: dict[str, int] = {}
        self._by_no: dict[int, str] = {}
        self.floor: dict[str, str | None] = {}
        self.emergency: dict[str, bool] = {}
        self.connected = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._http: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._udp: _UdpClient | None = None
        self._udp_token = b""
        self._udp_key = b""
        self._waiters: dict[Any, asyncio.Future[Any]] = {}
        self._floor_answers: dict[str, asyncio.Queue[str]] = {}
        self._commit_lock = asyncio.Lock()
        self._outbox: dict[str, str] = {}  # msg id -> control message, until accepted
        self._acked = 0
        self._delivered = 0
        self._bursts: dict[str, _Burst] = {}  # channel -> my burst in progress
        self._heard: dict[tuple[str, str], BurstHasher] = {}  # (channel, talker) -> hasher
        self._stopping = False
        self.reconnects = 0
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
        self._http = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stopping = True
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()
        if self._udp and self._udp.transport:
            self._udp.transport.close()
        self.state.close()

    async def wait_connected(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self.connected.wait(), timeout)

    def _emit(self, event: ev.Event) -> None:
        try:
            self.events.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("event=events-overflow dropped=%s", type(event).__name__)

    async def _run(self) -> None:
        delay = 0.2
        while not self._stopping:
            try:
                await self._session()
                delay = 0.2
            except Exception as exc:  # whatever happened, the endpoint must come back
                if not isinstance(exc, TimeoutError | aiohttp.ClientError | OSError | RelayError):
                    log.exception("event=session-failed")
                if isinstance(exc, RelayError) and exc.code == RELAY_NOT_AUTHENTIC:
                    self._emit(ev.Error(exc.code, exc.detail))  # keep trying: may be transient
                elif isinstance(exc, RelayError) and exc.code in (
                    p.Codes.REVOKED,
                    p.Codes.UNKNOWN_DEVICE,
                ):
                    self._emit(ev.Error(exc.code, "relay refused this device"))
                    return
                log.info("event=connect-failed error=%s", type(exc).__name__)
            self.connected.clear()
            self._emit(ev.Disconnected())
            if self._stopping:
                return
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 10.0)
            self.reconnects += 1

    async def _session(self) -> None:
        assert self._http is not None
        async with self._http.ws_connect(
            self.relay_url,
            ssl=self._ssl if self._ssl is not None else True,
            heartbeat=20,
            max_msg_size=p.MAX_CONTROL,
        ) as ws:
            self._ws = ws
            challenge = json.loads((await ws.receive(timeout=10)).data)
            nonce = _b64(os.urandom(16))
            proof = signing_input(
                AUTH_DOMAIN,
                {
                    "challenge": challenge["nonce"],
                    "relay": challenge["relay"],
                    "device": self.device,
                    "nonce": nonce,
                },
            )
            await ws.send_str(
                p.control(
                    "auth",
                    credential=json.loads(self.cred.encode()),
                    nonce=nonce,
                    sig=_b64(self._keys.sign.sign(proof)),
                )
            )
            first = await ws.receive(timeout=10)
            if first.type != aiohttp.WSMsgType.TEXT:
                raise RelayError("auth-failed", "connection closed during authentication")
            welcome = json.loads(first.data)
            if welcome.get("t") == "error":
                raise RelayError(welcome.get("code", "auth-failed"), welcome.get("detail", ""))
            if self.relay_key is not None:
                self._check_relay(welcome, challenge, nonce)
            await self._on_welcome(welcome)
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await self._on_relay_text(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    data = msg.data
                    if len(data) > 5 and data[0] == p.WS_MEDIA_DOWN:
                        self._on_media(int.from_bytes(data[1:5], "big"), data[5:])
                elif msg.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.ERROR,
                ):
                    break
        self._ws = None

    def _check_relay(self, welcome: dict[str, Any], challenge: dict[str, Any], nonce: str) -> None:
        assert self.relay_key is not None
        proof = relay_proof(challenge["nonce"], challenge["relay"], self.device, nonce)
        try:
            self.relay_key.verify(base64.b64decode(welcome.get("relay_sig") or ""), proof)
        except (VerificationError, ValueError):
            raise RelayError(RELAY_NOT_AUTHENTIC, "the relay did not prove its pinned identity")

    async def _on_welcome(self, msg: dict[str, Any]) -> None:
        self._udp_token = base64.b64decode(msg["udp_token"])
        self._udp_key = base64.b64decode(msg["udp_key"])
        self._delivered = 0
        for item in msg.get("channels", []):
            self._set_channel_no(item["ch"], item["no"])
        if self.transport == "udp" and msg.get("udp_port"):
            await self._open_udp(int(msg["udp_port"]))
        self.connected.set()
        self._emit(ev.Connected(self.device))
        for control in list(self._outbox.values()):  # resend what the relay has not accepted
            await self._send(control)

    async def _open_udp(self, port: int) -> None:
        if self._udp is None or self._udp.transport is None or self._udp.transport.is_closing():
            host = urlparse(self.relay_url).hostname or "127.0.0.1"
            loop = asyncio.get_running_loop()
            _, proto = await loop.create_datagram_endpoint(
                lambda: _UdpClient(self), remote_addr=(host, port)
            )
            self._udp = proto
        assert self._udp.transport is not None
        for _ in range(2):
            self._udp.transport.sendto(p.udp_register(self._udp_token, self._udp_key))

    def _set_channel_no(self, ch: str, no: int) -> None:
        old = self.channel_no.get(ch)
        if old is not None:
            self._by_no.pop(old, None)
        self.channel_no[ch] = no
        self._by_no[no] = ch

    async def _send(self, control: str) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            raise RelayError("not-connected", "no connection to the relay")
        try:
            await ws.send_str(control)
        except (aiohttp.ClientError, ConnectionError, RuntimeError):
            raise RelayError("not-connected", "the connection to the relay dropped")

    # -- incoming control --------------------------------------------------------------------

    async def _on_relay_text(self, data: str) -> None:
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
            self._emit(ev.Error("malformed-from-relay", "a relay message was ignored"))

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
                self._emit(
                    ev.TalkerChanged(msg["ch"], msg["holder"], msg.get("priority"), "late-entry")
                )
            if msg.get("emergency"):
                self._emit(ev.Emergency(msg["ch"], True, msg.get("emergency_by")))
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
        self._emit(ev.Error(code, detail))

    def _on_floor(self, msg: dict[str, Any]) -> None:
        ch, what, device = msg["ch"], msg["event"], msg.get("device")
        self._emit(
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
            if device is not None:
                self._heard[(ch, device)] = BurstHasher()
            self._emit(ev.TalkerChanged(ch, device, msg.get("priority"), "granted"))
        elif what in ("released", "revoked", "idle"):
            if self.floor.get(ch) is not None and (self.floor.get(ch) == device or what == "idle"):
                self.floor[ch] = None
                self._emit(ev.TalkerChanged(ch, None, None, msg.get("reason") or what))
            if what == "revoked" and device == self.device:
                self._bursts.pop(ch, None)
        elif what == "emergency":
            self.emergency[ch] = bool(msg.get("active"))
            self._emit(ev.Emergency(ch, bool(msg.get("active")), device))

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
            self._emit(ev.Error(code, f"{kind} on {ch} refused"))
        self._delivered = seq
        with contextlib.suppress(RelayError):
            await self._send(p.control("ack", seq=seq))
            self._acked = seq

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
        self._emit(ev.ChannelUpdated(ch, commit.name, commit.epoch, roster, member.removed))

    def _close_channel(self, ch: str) -> None:
        """The relay says the channel expired; we stop sending once its commit says so too."""
        member = self.channels.get(ch)
        c = member.last_commit if member else None
        if c is not None and time.time() >= c.expires:
            self.channels.pop(ch, None)
            self.floor.pop(ch, None)
            roster = {e.device: e.role for e in c.roster}
            self._emit(ev.ChannelUpdated(ch, c.name, c.epoch, roster, True))

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
            self._emit(ev.Message(ch, item.id, item.sender, item.kind, item.body, item.timestamp))
        elif isinstance(item, BurstSeal):
            hasher = self._heard.pop((ch, item.sender), None)
            complete = hasher is not None and item.matches(hasher)
            self._emit(
                ev.BurstSealed(
                    ch,
                    item.sender,
                    item.burst,
                    item.frames,
                    complete,
                    hasher.count if hasher else 0,
                )
            )
        self.state.mark_seen(msg_id, now)

    # -- media ---------------------------------------------------------------------------------

    def _on_media(self, channel_no: int, frame: bytes) -> None:
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
        hasher = self._heard.get((ch, r.sender))
        if hasher is None:
            hasher = self._heard[(ch, r.sender)] = BurstHasher()
        hasher.add(frame, r.ctr)
        self._emit(ev.Voice(ch, r.sender, r.payload, r.ctr, time.time(), r.epoch))

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
        if no is None:
            return
        if self.transport == "udp" and self._udp and self._udp.transport:
            self._udp.transport.sendto(p.udp_media_up(self._udp_token, self._udp_key, no, frame))
        elif self._ws is not None and not self._ws.closed:
            task = asyncio.ensure_future(self._ws.send_bytes(p.ws_media(p.WS_MEDIA_UP, no, frame)))
            task.add_done_callback(lambda t: t.exception())

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
                    p.control("commit", bundle=_b64(bundle.encode())),
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
        control = p.control("msg", ch=ch, id=msg_id, frame=_b64(frame), rid=msg_id)
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
