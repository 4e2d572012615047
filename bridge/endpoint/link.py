"""An endpoint's link to the relay: WebSocket and UDP, authentication, reconnects.

:class:`RelayLink` knows the wire and nothing of channels or keys beyond the device's signing
key. It connects, answers the relay's challenge (and, when a relay key is pinned, checks the
relay's own proof), keeps a UDP socket registered with the session token (fresh registers at
the times :class:`~bridge.endpoint.udp_binding.UdpBinding` says, every 5 s by default),
reconnects with exponential backoff whenever the link drops (0.2 s doubling to 1 s while the
relay cannot be reached, so a vessel is back within about a second of its link returning; to
10 s while the relay answers but refuses; with jitter; back to 0.2 s only after a session that
lasted ``STABLE_SESSION``), and hands what arrives to its
:class:`LinkHandler` (the :class:`~bridge.endpoint.endpoint.Endpoint`).

The relay is not trusted. The challenge and the welcome are read like every relay message
(:func:`~bridge.endpoint.inbound.parse_relay_message`: strict JSON, checked field types); one
that is malformed fails that attempt with a one-line log and the link tries again. Media
arriving by UDP or as WebSocket binary frames goes through the wire parsers
(:mod:`bridge.wire.media`); what does not parse is counted in ``stats["malformed_media"]`` and
dropped, and a datagram without this session's downstream MAC (spoofed, or meant for someone
else) in ``stats["udp_bad_mac"]``, before it reaches the decryptor.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import random
from typing import Any, Protocol
from urllib.parse import urlparse

import aiohttp

from bridge.endpoint import events as ev
from bridge.endpoint.inbound import parse_relay_message
from bridge.endpoint.udp_binding import KEEPALIVE, UdpBinding
from bridge.errors import RelayError, RemoteProtocolError
from bridge.wire import control as p
from bridge.wire.auth import AUTH_DOMAIN, relay_proof
from bridge.wire.codes import Code
from crypto.encoding import signing_input
from crypto.errors import VerificationError
from crypto.identity import Credential
from crypto.keys import SigningKey, VerifyKey

log = logging.getLogger("crossband.endpoint")
RELAY_NOT_AUTHENTIC = Code.RELAY_NOT_AUTHENTIC
RECONNECT_MAX = 1.0  # s between attempts, at most, while the relay cannot be reached
RECONNECT_MAX_REFUSED = 10.0  # s, at most, while the relay answers but refuses us
# A session must last this long for the next reconnect to start again from 0.2 s: a relay that
# welcomes and drops us at once (overloaded, or hostile) must not get a reconnect every 0.2 s.
STABLE_SESSION = 5.0  # s


# Failures of one connection attempt that are logged in one line, not with a traceback.
_EXPECTED = (TimeoutError, aiohttp.ClientError, OSError, RelayError, RemoteProtocolError)
_LOGGED_CODES = frozenset(Code)  # a relay's own code is not logged


def _expect(msg: aiohttp.WSMessage, *types: str) -> dict[str, Any]:
    """A relay message of one of ``types`` during authentication, strictly parsed and checked
    against :data:`~bridge.endpoint.inbound.RELAY_MESSAGES`; else RemoteProtocolError."""
    if msg.type != aiohttp.WSMsgType.TEXT:
        raise RemoteProtocolError(Code.MALFORMED, "authentication: not a text message")
    parsed = parse_relay_message(msg.data)
    if parsed is None or parsed["t"] not in types:
        raise RemoteProtocolError(Code.MALFORMED, f"authentication: {' or '.join(types)} expected")
    return parsed


class LinkHandler(Protocol):
    async def on_welcome(self, welcome: dict[str, Any]) -> None: ...

    async def on_text(self, data: str) -> None: ...

    def on_media(self, channel_no: int, frame: bytes) -> None: ...

    def emit(self, event: ev.Event) -> None: ...


class _UdpClient(asyncio.DatagramProtocol):
    def __init__(self, handler: LinkHandler, binding: UdpBinding) -> None:
        self.handler = handler
        self.binding = binding
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        media = self.binding.receive(data)  # None: malformed or not the relay's (counted)
        if media is not None:
            self.handler.on_media(*media)


class RelayLink:
    def __init__(
        self,
        cred: Credential,
        sign_key: SigningKey,
        relay_url: str,
        handler: LinkHandler,
        *,
        transport: str = "udp",
        ssl_context: Any = None,
        relay_key: VerifyKey | None = None,
        udp_keepalive: float = KEEPALIVE,
    ) -> None:
        if transport not in ("udp", "ws"):
            raise ValueError("transport must be 'udp' or 'ws'")
        self.cred = cred
        self._sign_key = sign_key
        self.relay_url = relay_url
        self.handler = handler
        self.transport = transport
        self._ssl = ssl_context
        self.relay_key = relay_key  # pinned relay identity: its welcome must be signed by it
        self.connected = asyncio.Event()
        self.reconnects = 0
        # media that did not parse (UDP datagrams, WebSocket binary frames), datagrams that
        # were not the relay's: dropped; registers sent
        self.stats = {"malformed_media": 0, "udp_bad_mac": 0, "udp_registers": 0}
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.udp: _UdpClient | None = None
        self.udp_binding = UdpBinding(self.stats, udp_keepalive)
        self._udp_remote: tuple[str, int] | None = None
        self._udp_timer: asyncio.TimerHandle | None = None
        self.udp_token = b""
        self.udp_key = b""
        self._http: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stopping = True
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.ws is not None:
            await self.ws.close()
        if self._http is not None:
            await self._http.close()
        self._end_udp_session()
        if self.udp and self.udp.transport:
            self.udp.transport.close()

    async def drop(self) -> None:
        """Close the current connection; the run loop reconnects (with backoff)."""
        ws = self.ws
        if ws is not None and not ws.closed:
            await ws.close()

    async def send(self, control: str) -> None:
        """Send one control message, or raise ``RelayError(Code.NOT_CONNECTED)``."""
        ws = self.ws
        if ws is None or ws.closed:
            raise RelayError(Code.NOT_CONNECTED, "no connection to the relay")
        try:
            await ws.send_str(control)
        except (aiohttp.ClientError, ConnectionError, RuntimeError):
            raise RelayError(Code.NOT_CONNECTED, "the connection to the relay dropped") from None

    def send_media(self, channel_no: int, frame: bytes) -> None:
        """One SFrame frame: by UDP when registered, else on the WebSocket."""
        if self.transport == "udp" and self.udp and self.udp.transport:
            self.udp.transport.sendto(
                p.udp_media_up(self.udp_token, self.udp_key, channel_no, frame)
            )
        elif self.ws is not None and not self.ws.closed:
            data = p.ws_media(p.WS_MEDIA_UP, channel_no, frame)
            task = asyncio.ensure_future(self.ws.send_bytes(data))
            task.add_done_callback(lambda t: t.exception())

    async def _run(self) -> None:
        delay = 0.2
        loop = asyncio.get_running_loop()
        while not self._stopping:
            cap = RECONNECT_MAX
            began = loop.time()
            try:
                await self._session()
                if loop.time() - began >= STABLE_SESSION:
                    delay = 0.2
            except Exception as exc:  # whatever happened, the endpoint must come back
                if isinstance(exc, RelayError):
                    cap = RECONNECT_MAX_REFUSED  # the relay is there and said no: go slower
                if not isinstance(exc, _EXPECTED):
                    log.exception("event=session-failed")
                if isinstance(exc, RelayError) and exc.code == RELAY_NOT_AUTHENTIC:
                    self.handler.emit(ev.Error(exc.code, exc.detail))  # may be transient
                elif isinstance(exc, RelayError) and exc.code in (
                    p.Codes.REVOKED,
                    p.Codes.UNKNOWN_DEVICE,
                ):
                    self.handler.emit(ev.Error(exc.code, "relay refused this device"))
                    return
                code = getattr(exc, "code", "-")
                code = code if code in _LOGGED_CODES or code == "-" else "other"
                log.info("event=connect-failed error=%s code=%s", type(exc).__name__, code)
            self.connected.clear()
            self.handler.emit(ev.Disconnected())
            if self._stopping:
                return
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, cap)
            self.reconnects += 1

    async def _session(self) -> None:
        assert self._http is not None
        async with self._http.ws_connect(
            self.relay_url,
            ssl=self._ssl if self._ssl is not None else True,
            heartbeat=20,
            max_msg_size=p.MAX_CONTROL,
        ) as ws:
            self.ws = ws
            try:
                welcome = await self._authenticate(ws)
                await self._on_welcome(welcome)
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        await self.handler.on_text(msg.data)
                    elif msg.type == aiohttp.WSMsgType.BINARY:
                        self._on_binary(msg.data)
                    elif msg.type in (
                        aiohttp.WSMsgType.CLOSE,
                        aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.ERROR,
                    ):
                        break
            finally:
                self._end_udp_session()  # its token dies with the session
        self.ws = None

    def _on_binary(self, data: bytes) -> None:
        try:
            kind, channel_no, frame = p.parse_ws_media(data)
        except RemoteProtocolError:
            kind = None
        if kind != p.WS_MEDIA_DOWN:  # malformed, or an upstream frame: counted and dropped
            self.stats["malformed_media"] += 1
            return
        self.handler.on_media(channel_no, frame)

    async def _authenticate(self, ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
        challenge = _expect(await ws.receive(timeout=10), "challenge")
        nonce = p.b64(os.urandom(16))
        device = self.cred.device
        proof = signing_input(
            AUTH_DOMAIN,
            {
                "challenge": challenge["nonce"],
                "relay": challenge["relay"],
                "device": device,
                "nonce": nonce,
            },
        )
        await ws.send_str(
            p.control(
                "auth",
                credential=json.loads(self.cred.encode()),
                nonce=nonce,
                sig=p.b64(self._sign_key.sign(proof)),
            )
        )
        first = await ws.receive(timeout=10)
        if first.type != aiohttp.WSMsgType.TEXT:
            raise RelayError(Code.AUTH_FAILED, "connection closed during authentication")
        welcome = _expect(first, "welcome", "error")
        if welcome["t"] == "error":
            raise RelayError(welcome["code"], welcome.get("detail", ""))
        if self.relay_key is not None:
            relay_check = relay_proof(challenge["nonce"], challenge["relay"], device, nonce)
            try:
                sig = base64.b64decode(welcome.get("relay_sig") or "", validate=True)
                self.relay_key.verify(sig, relay_check)
            except (VerificationError, ValueError):
                raise RelayError(
                    RELAY_NOT_AUTHENTIC, "the relay did not prove its pinned identity"
                ) from None
        return welcome

    async def _on_welcome(self, welcome: dict[str, Any]) -> None:
        self.udp_token = p.unb64(welcome["udp_token"])
        self.udp_key = p.unb64(welcome["udp_key"])
        if len(self.udp_token) != p.TOKEN_LEN or not self.udp_key:
            raise RemoteProtocolError(Code.MALFORMED, "welcome: udp token or key")
        if self.transport == "udp" and welcome.get("udp_port"):
            await self._open_udp(welcome["udp_port"])
        self.connected.set()
        await self.handler.on_welcome(welcome)

    async def _open_udp(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        remote = (urlparse(self.relay_url).hostname or "127.0.0.1", port)
        udp = self.udp
        if udp is not None and udp.transport is not None and self._udp_remote != remote:
            udp.transport.close()  # the relay's UDP port moved
        if udp is None or udp.transport is None or udp.transport.is_closing():
            _, self.udp = await loop.create_datagram_endpoint(
                lambda: _UdpClient(self.handler, self.udp_binding), remote_addr=remote
            )
            self._udp_remote = remote
        self.udp_binding.start(self.udp_token, self.udp_key, loop.time())
        self._send_registers()

    def _send_registers(self) -> None:
        """Send the registers the binding says are due; come back when the next one is."""
        self._udp_timer = None
        udp = self.udp
        if udp is None or udp.transport is None or udp.transport.is_closing():
            return
        loop = asyncio.get_running_loop()
        for data in self.udp_binding.datagrams_to_send(loop.time()):
            udp.transport.sendto(data)
        at = self.udp_binding.get_timer()
        if at is not None:
            self._udp_timer = loop.call_at(at, self._send_registers)

    def _end_udp_session(self) -> None:
        self.udp_binding.stop()
        if self._udp_timer is not None:
            self._udp_timer.cancel()
            self._udp_timer = None
