"""The thin asyncio driver of the XMPP adapter: one slixmpp connection joined to one MUC room.

**One connection per room**, not one per account: the adapter interface gives one adapter per
native source (one room), started and stopped on its own, so each room's connection, login,
join, backoff and outbox live and fail alone; a room whose join is refused does not take the
others down. Each uses the account with its own resource (``crossband-<hash of the room>``),
so a reconnect replaces its own stale session on the server instead of fighting it.

A session is: TCP connect to ``host:port`` (never DNS/SRV), STARTTLS (required unless
``plaintext``, which is allowed on loopback only), SASL, then the XEP-0045 join asking for no
history (``<history maxstanzas='0'/>``). Groupchat messages of the room become
:class:`~adapters.xmpp.room.RoomMessage` values, ``delayed`` when they carry a XEP-0203 delay
(history a server sent anyway; ``room.inbound_text`` drops them). When the session ends
(server gone, a quiet link whose XEP-0199 keepalive ping times out, or we were put out of the
room) the driver makes a fresh client and tries again after a bounded, doubling backoff;
whatever was sent while not joined waits in a :class:`~adapters.xmpp.room.Outbox` that the next
join drains once. A message handed to a live session is sent once and not tracked: if the
link dies under it, it is lost rather than risk a duplicate (XEP-0198 acks would close that
gap). A refused login or join is an :class:`AdapterConfigError` naming the setting. Message
bodies and the password are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import slixmpp
from slixmpp.exceptions import IqTimeout, PresenceError

from adapters.errors import AdapterConfigError, AdapterError
from adapters.xmpp.room import Outbox, RoomMessage

__all__ = ["Link", "RoomDriver", "room_message"]

log = logging.getLogger(__name__)
DELAY_TAGS = ("{urn:xmpp:delay}delay", "{jabber:x:delay}x")  # XEP-0203, legacy XEP-0091
LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True, slots=True)
class Link:
    """How to reach and log in to the server. ``where`` prefixes the settings errors name."""

    host: str
    port: int
    jid: str
    password: str = field(repr=False)
    plaintext: bool = False  # no TLS: loopback only
    ca_file: str | None = None  # trust this CA (PEM) too when verifying the server's certificate
    where: str = "xmpp"
    backoff_initial: float = 0.2
    backoff_max: float = 10.0
    join_timeout: float = 10.0  # connect + login + join
    keepalive: float = 30.0  # ping the server after this long without ending
    ping_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.plaintext and self.host not in LOOPBACK:
            raise AdapterConfigError(
                f"{self.where}.server", "plaintext XMPP (no TLS) is allowed on loopback only"
            )
        if not (self.keepalive > 0 and self.ping_timeout > 0 and self.join_timeout > 0):
            raise AdapterConfigError(f"{self.where}.timeouts", "must be > 0")
        if not 0 < self.backoff_initial <= self.backoff_max:
            raise AdapterConfigError(f"{self.where}.backoff", "need 0 < initial <= max")


def room_message(msg: Any, room: str) -> RoomMessage | None:
    """The RoomMessage of a slixmpp groupchat ``Message`` from ``room``, else None."""
    sender = msg["from"]
    if sender.bare != room:
        return None
    delayed = any(msg.xml.find(tag) is not None for tag in DELAY_TAGS)
    return RoomMessage(room, sender.resource, str(msg["body"]), delayed)


def _release(c: slixmpp.ClientXMPP) -> None:
    """Stop what a slixmpp client left running (its send loop and timers): a client is made
    per attempt, and each would otherwise stay alive for good."""
    for name in list(c.scheduled_events):
        c.cancel_schedule(name)
    if c._run_out_filters is not None:
        c._run_out_filters.cancel()


class RoomDriver:
    """One room's connection (see the module docstring). ``on_message`` gets every room
    message; ``send`` posts a body now if joined, else queues it for the next join."""

    def __init__(
        self,
        link: Link,
        room: str,
        nick: str,
        on_message: Callable[[RoomMessage], None],
        *,
        setting: str = "xmpp.rooms[0]",
        outbox_limit: int = 100,
    ) -> None:
        self.link = link
        self.room = room
        self.nick = nick  # the nick the room gave us (it may change it)
        self.on_message = on_message
        self.setting = setting  # the room's mapping in the config, for errors
        self.outbox = Outbox(outbox_limit)
        self.joined = asyncio.Event()
        self.joins = 0  # successful joins so far
        self.attempts = 0
        self.mechanism = ""  # the SASL mechanism of the last login (SCRAM keeps the password)
        self.resource = "crossband-" + hashlib.sha256(room.encode()).hexdigest()[:10]
        self._client: slixmpp.ClientXMPP | None = None
        self._task: asyncio.Task[None] | None = None
        self._first: asyncio.Future[None] | None = None
        self._tls_failed = False  # the server's certificate did not verify

    async def start(self, timeout: float | None = None) -> None:
        """Start connecting; wait for the first join (``timeout``, default ``join_timeout``).
        A refused login or join raises :class:`AdapterConfigError`; an unreachable server
        only logs (the driver keeps trying, posts wait in the outbox)."""
        self._first = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run())
        try:
            await asyncio.wait_for(asyncio.shield(self._first), timeout or self.link.join_timeout)
        except TimeoutError:
            log.warning("xmpp: %s not joined yet; still trying", self.room)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.joined.clear()

    def send(self, body: str) -> None:
        client = self._client
        if client is not None and self.joined.is_set():
            client.send_message(mto=slixmpp.JID(self.room), mbody=body, mtype="groupchat")
        else:
            self.outbox.push(body)

    # -- the session loop ------------------------------------------------------------------
    async def _run(self) -> None:
        delay = self.link.backoff_initial
        while True:
            self.attempts += 1
            try:
                if self._tls_failed:  # flagged after the session had already ended
                    self._tls_failed = False
                    raise self._failure("tls")
                joined = await self._session()
            except AdapterError as exc:
                if self._first is not None and not self._first.done():
                    self._first.set_exception(exc)
                    return
                log.error("xmpp: %s", exc)
                joined, delay = False, self.link.backoff_max
            if joined:
                delay = self.link.backoff_initial
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.link.backoff_max)

    def _make_client(self) -> slixmpp.ClientXMPP:
        link = self.link
        c = slixmpp.ClientXMPP(f"{link.jid}/{self.resource}", link.password)
        c.register_plugin("xep_0045")
        c.register_plugin("xep_0199")
        c.register_plugin("xep_0203")
        if link.ca_file:
            c.ca_certs = Path(link.ca_file)
        c.enable_direct_tls = False
        c.enable_starttls = not link.plaintext
        c.enable_plaintext = link.plaintext
        # SASL over a connection without TLS: SCRAM keeps the password off the wire.
        c.plugin["feature_mechanisms"].unencrypted_scram = link.plaintext
        c.plugin["feature_mechanisms"].unencrypted_plain = link.plaintext
        return c

    async def _session(self) -> bool:
        """One connection, until it ends. True if it joined the room."""
        loop = asyncio.get_running_loop()
        c = self._make_client()
        started: asyncio.Future[str] = loop.create_future()
        ended: asyncio.Future[str] = loop.create_future()
        tried: list[str] = []

        def end(why: str, fut: asyncio.Future[Any] = ended) -> None:
            if fut is ended:
                self.joined.clear()  # posts from now on wait in the outbox
            if not fut.done():
                fut.set_result(why)

        def presence_error(pres: Any) -> None:  # slixmpp's join waits for the error in vain
            if pres["from"].bare == self.room and not self.joined.is_set():
                end("refused:" + str(pres["error"]["condition"]))

        def self_presence(pres: Any) -> None:  # kicked, banned, room destroyed: rejoin
            codes = pres["muc"]["status_codes"]
            if pres["type"] == "unavailable" and 303 not in codes and self.joined.is_set():
                log.warning("xmpp: %s: out of the room (status %s)", self.room, sorted(codes))
                end("left the room")

        handlers: dict[str, Callable[[Any], object]] = {
            f"muc::{self.room}::self-presence": self_presence,
            "session_start": lambda _: end("started", started),
            "failed_auth": lambda _: tried.append("x"),
            "failed_all_auth": lambda _: end("auth" if tried else "no_auth"),
            "disconnected": lambda _: end("disconnected"),
            "connection_failed": lambda _: end("unreachable"),
            "ssl_invalid_chain": lambda _: setattr(self, "_tls_failed", True),
            "presence_error": presence_error,
            "groupchat_message": self._on_groupchat,
        }
        for event, handler in handlers.items():
            c.add_event_handler(event, handler)
        self._client = c
        try:
            c.connect(self.link.host, self.link.port)
            async with asyncio.timeout(self.link.join_timeout):
                await self._until(started, ended)
                join = asyncio.ensure_future(
                    c.plugin["xep_0045"].join_muc_wait(
                        slixmpp.JID(self.room),
                        self.nick,
                        maxstanzas=0,
                        timeout=self.link.join_timeout,
                    )
                )
                try:
                    pres = (await self._until(join, ended))[0]
                except PresenceError as exc:
                    raise self._failure(f"refused:{exc.condition}") from None
            mech = c.plugin["feature_mechanisms"].mech
            self.mechanism = mech.name if mech is not None else ""
            self.nick = pres["from"].resource or self.nick
            self.joins += 1
            self.joined.set()
            if self._first is not None and not self._first.done():
                self._first.set_result(None)
            for body in self.outbox.drain():
                self.send(body)
            await self._serve(c, ended)
            return True
        except TimeoutError as exc:
            log.warning("xmpp: %s: no session (%s)", self.room, exc or "timed out")
            return False
        finally:
            self.joined.clear()
            self._client = None
            c.cancel_connection_attempt()
            if c.transport is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(c.disconnect(wait=0.5), 1.0)
                c.abort()
            _release(c)

    async def _until(self, fut: asyncio.Future[Any], ended: asyncio.Future[str]) -> Any:
        """``fut``'s result, or the failure of a session that ended first."""
        await asyncio.wait({fut, ended}, return_when=asyncio.FIRST_COMPLETED)
        if fut.done():
            return fut.result()
        fut.cancel()
        raise self._failure(ended.result())

    def _failure(self, why: str) -> Exception:
        """A settings error for what the operator must fix; TimeoutError (try again) else."""
        where, room = self.link.where, self.setting
        if why == "auth":
            problem = f"the server refused the password of {self.link.jid}"
            return AdapterConfigError(f"{where}.password_file", problem)
        if why == "no_auth":
            problem = "no login allowed on this connection (the server offered no TLS)"
            return AdapterConfigError(f"{where}.server", problem)
        if why == "tls":
            domain = self.link.jid.partition("@")[2]
            problem = f"the server's certificate did not verify for {domain}"
            return AdapterConfigError(f"{where}.server", problem)
        if why == "refused:conflict":
            return AdapterConfigError(f"{room}.nick", f"{self.nick} is taken in the room")
        if why.startswith("refused:"):
            return AdapterConfigError(f"{room}.room", f"the room refused the join ({why[8:]})")
        return TimeoutError(why)

    async def _serve(self, c: slixmpp.ClientXMPP, ended: asyncio.Future[str]) -> None:
        """Wait for the end of the session, pinging the server when it has been quiet."""
        link = self.link
        while True:
            done, _ = await asyncio.wait({ended}, timeout=link.keepalive)
            if done:
                return
            server = slixmpp.JID(c.boundjid.domain)
            ping: asyncio.Future[Any] = asyncio.ensure_future(
                c.plugin["xep_0199"].ping(jid=server, timeout=link.ping_timeout)
            )
            await asyncio.wait([ping, ended], return_when=asyncio.FIRST_COMPLETED)
            if not ping.done():
                ping.cancel()
                return
            if isinstance(ping.exception(), IqTimeout):
                log.warning("xmpp: %s: keepalive timed out; reconnecting", self.room)
                return  # an IqError reply is fine: the server is alive

    def _on_groupchat(self, msg: Any) -> None:
        rm = room_message(msg, self.room)
        if rm is not None:
            self.on_message(rm)
