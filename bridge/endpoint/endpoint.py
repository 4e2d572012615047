"""The endpoint: one device identity, its channels, and its connection to the relay.

The endpoint is the end-to-end encryption boundary (DESIGN §1): adapters hand it audio frames
and messages in the clear; it sends only SFrame ciphertext to the relay. Every protocol
decision is taken by the sans-IO :class:`~bridge.endpoint.core.EndpointCore`; this asyncio
:class:`Endpoint` is its driver, in the manner of aioquic's ``QuicConnectionProtocol``:

- it feeds the core what :class:`~bridge.endpoint.link.RelayLink` receives (which connects,
  authenticates and reconnects with backoff), with ``now = time.time()``, and drains what the
  core wants done (:class:`~bridge.endpoint.driver.CoreDriver`): control messages in order,
  media, events on :attr:`Endpoint.events`, answers, commit verifications on a worker thread,
  one timer (the UDP tail before a floor release, a burst seal's wait for late frames, old
  epoch keys to erase, message ids to forget);
- each public coroutine below is one core call plus a wait for its answer.

State (commits, send counters, seen message ids) is persisted by the core in
:class:`~bridge.endpoint.state.EndpointState`, so a restart keeps membership and never reuses a
nonce.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from bridge.endpoint.core import EndpointCore
from bridge.endpoint.driver import CoreDriver
from bridge.endpoint.link import RelayLink
from bridge.endpoint.seen import SEEN_TTL
from bridge.endpoint.state import EndpointState
from bridge.endpoint.voice import SEAL_WAIT, UDP_TAIL
from bridge.errors import RelayError
from bridge.wire.codes import Code
from crypto.agreement import Agreement, RevocationList
from crypto.channel import Commit
from crypto.errors import CrossbandError
from crypto.group import ChannelMember
from crypto.identity import Credential, DeviceKeys, TrustBundle
from crypto.keys import VerifyKey
from crypto.messages import BurstSeal

__all__ = ["SEAL_WAIT", "UDP_TAIL", "Endpoint"]
log = logging.getLogger("crossband.endpoint")


class Endpoint(CoreDriver):
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
        seen_ttl: float = SEEN_TTL,
    ) -> None:
        """``seen_ttl``: how long handled message ids are remembered against redelivery; set
        it to at least the relay's ``message_ttl`` when that is not the default 7 days."""
        self.cred = cred
        self.device = cred.device
        self.trust = trust
        self.relay_url = relay_url
        link = RelayLink(
            cred,
            keys.sign,
            relay_url,
            self,
            transport=transport,
            ssl_context=ssl_context,
            relay_key=relay_key,
        )
        self.connected = link.connected
        self.state = EndpointState(state_path)
        core = EndpointCore(
            cred,
            keys,
            trust,
            self.state,
            now=time.time(),
            transport=transport,
            revocations=revocations,
            seen_ttl=seen_ttl,
        )
        # Called as hook(channel, ctr, time) for every voice frame sent (latency measurement).
        self.voice_sent_hook: Callable[[str, int, float], None] | None = None
        super().__init__(core, link)

    # -- what other code reads ---------------------------------------------------------------

    @property
    def channels(self) -> dict[str, ChannelMember]:
        return self.core.channels

    @property
    def channel_no(self) -> dict[str, int]:
        return self.core.channel_no

    @property
    def floor(self) -> dict[str, str | None]:
        return self.core.floor

    @property
    def emergency(self) -> dict[str, bool]:
        return self.core.emergency

    @property
    def stats(self) -> dict[str, int]:
        """The core's counters (:data:`~bridge.endpoint.core.STATS`) and the link's
        (``malformed_media``: datagrams and binary frames that did not parse), read-only."""
        return {**self.core.stats, **self.link.stats}

    @property
    def revocations(self) -> dict[str, RevocationList]:
        return self.core.revocations

    @property
    def transport(self) -> str:
        return self.link.transport

    @property
    def reconnects(self) -> int:
        return self.link.reconnects

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        await self._start_driving()

    async def stop(self) -> None:
        await self._stop_driving()
        self.state.close()

    async def wait_connected(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self.connected.wait(), timeout)

    # -- commits, directory, revocations -------------------------------------------------------

    async def lookup(self, devices: list[str], timeout: float = 5.0) -> dict[str, Credential]:
        """Fetch credentials from the relay's directory and verify them ourselves."""
        rid = self.core.lookup(devices)
        found = await self._request(("rid", rid), timeout)
        return self.core.verify_directory(found, time.time())

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
            bundle = self.core.build_commit(ch, members, agreement, name, expires, time.time())
            epoch = bundle.commit.epoch
            try:
                result: Commit = await self._request(("commit", ch, epoch), timeout)
                return result
            except RelayError as exc:
                if exc.code != Code.REBASE or attempt == rebase_attempts:
                    raise
                await self._wait_for_epoch(ch, epoch, timeout)
        raise AssertionError("unreachable")

    async def _wait_for_epoch(self, ch: str, epoch: int, timeout: float) -> None:
        """Until the commit that took ``epoch`` has been delivered to us and verified."""
        c = self.core.last_commit(ch)
        if c is not None and c.epoch >= epoch:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._epochs.setdefault(ch, []).append((epoch, fut))
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise RelayError(Code.REBASE, f"the winning commit for epoch {epoch} never arrived")
        finally:
            with contextlib.suppress(ValueError):
                self._epochs.get(ch, []).remove((epoch, fut))

    async def publish_revocation(self, rl: RevocationList, timeout: float = 5.0) -> int:
        self.core.publish_revocation(rl)
        return int(await self._request(("revocation", rl.agency), timeout))

    # -- floor and talk bursts -----------------------------------------------------------------

    async def request_floor(self, ch: str, priority: str = "normal", timeout: float = 5.0) -> str:
        """Ask for the floor; returns the relay's first answer: 'granted', 'queued', 'denied'.

        Later answers (a grant after 'queued') are kept for :meth:`start_burst`."""
        answers: asyncio.Queue[str] = asyncio.Queue()
        self._floor_answers[ch] = answers  # registered before asking: no answer is lost
        self.core.request_floor(ch, priority, time.time())
        await self._flush()
        return await asyncio.wait_for(answers.get(), timeout)

    async def release_floor(self, ch: str) -> None:
        self.core.release_floor(ch)
        self._pump()
        await self._flush()

    async def clear_emergency(self, ch: str) -> None:
        """Clear the emergency: a signed clear to the members and the relay's floor state."""
        self.core.clear_emergency(ch, time.time())
        await self._flush()

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
        self.core.start_burst(ch)
        return True

    def send_voice(self, ch: str, payload: bytes) -> None:
        """Encrypt and send one voice frame (the caller should hold the floor)."""
        now = time.time()
        try:
            ctr = self.core.send_voice(ch, payload, now)
        except CrossbandError:
            self._pump()  # the core's Error event (stale-epoch: nothing sent) reaches the user now
            raise
        if self.voice_sent_hook is not None:
            self.voice_sent_hook(ch, ctr, now)
        for no, frame in self.core.media_to_send():
            self.link.send_media(no, frame)

    async def end_burst(self, ch: str, timeout: float = 5.0) -> BurstSeal | None:
        """Release the floor (after the UDP tail, a core timer) and send the signed burst
        seal; returns once the release went out."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[("released", ch)] = fut
        try:
            seal = self.core.end_burst(ch, time.time())
            self._pump()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fut, timeout)
            with contextlib.suppress(RelayError):
                await self._flush()
        finally:
            self._waiters.pop(("released", ch), None)
        return seal

    # -- messages ------------------------------------------------------------------------------

    async def send_text(
        self, ch: str, body: bytes | str, kind: str = "text", timeout: float = 30.0
    ) -> str:
        """Sign, encrypt and send a message; returns its id once the relay has accepted it
        (durably). While disconnected it waits and is resent on reconnect."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        try:
            msg_id = self.core.send_text(ch, data, kind, time.time())
        except CrossbandError:
            self._pump()  # the core's Error event (stale-epoch: nothing sent) reaches the user now
            raise
        await self._request(("msg", msg_id), timeout, quiet=True)
        return msg_id

    async def _post(
        self, ch: str, msg_id: str, frame: bytes, *, wait: bool, timeout: float = 30.0
    ) -> None:
        """Send an already encrypted DATA frame as message ``msg_id``."""
        self.core.post(ch, msg_id, frame)
        if wait:
            await self._request(("msg", msg_id), timeout, quiet=True)
        else:
            await self._flush(quiet=True)
