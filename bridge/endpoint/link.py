"""An endpoint's link to the relay: WebSocket and UDP, authentication, reconnects.

:class:`RelayLink` knows the wire and nothing of channels or keys beyond the device's signing
key. It connects, answers the relay's challenge (and, when a relay key is pinned, checks the
relay's own proof), keeps a UDP socket registered with the session token, reconnects with
exponential backoff (0.2 s doubling to 10 s, with jitter) whenever the link drops, and hands
what arrives to its :class:`LinkHandler` (the :class:`~bridge.endpoint.endpoint.Endpoint`).
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
from bridge.errors import RelayError
from bridge.wire import control as p
from bridge.wire.auth import AUTH_DOMAIN, relay_proof
from crypto.encoding import signing_input
from crypto.errors import VerificationError
from crypto.identity import Credential
from crypto.keys import SigningKey, VerifyKey

log = logging.getLogger("crossband.endpoint")
RELAY_NOT_AUTHENTIC = "relay-not-authentic"


class LinkHandler(Protocol):
    async def on_welcome(self, welcome: dict[str, Any]) -> None: ...

    async def on_text(self, data: str) -> None: ...

    def on_media(self, channel_no: int, frame: bytes) -> None: ...

    def emit(self, event: ev.Event) -> None: ...


class _UdpClient(asyncio.DatagramProtocol):
    def __init__(self, handler: LinkHandler) -> None:
        self.handler = handler
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) > 6 and data[0] == p.UDP_MAGIC and data[1] == p.UDP_MEDIA_DOWN:
            self.handler.on_media(int.from_bytes(data[2:6], "big"), data[6:])


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
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.udp: _UdpClient | None = None
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
        if self.udp and self.udp.transport:
            self.udp.transport.close()

    async def drop(self) -> None:
        """Close the current connection; the run loop reconnects (with backoff)."""
        ws = self.ws
        if ws is not None and not ws.closed:
            await ws.close()

    async def send(self, control: str) -> None:
        """Send one control message, or raise ``RelayError("not-connected")``."""
        ws = self.ws
        if ws is None or ws.closed:
            raise RelayError("not-connected", "no connection to the relay")
        try:
            await ws.send_str(control)
        except (aiohttp.ClientError, ConnectionError, RuntimeError):
            raise RelayError("not-connected", "the connection to the relay dropped")

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
        while not self._stopping:
            try:
                await self._session()
                delay = 0.2
            except Exception as exc:  # whatever happened, the endpoint must come back
                if not isinstance(exc, TimeoutError | aiohttp.ClientError | OSError | RelayError):
                    log.exception("event=session-failed")
                if isinstance(exc, RelayError) and exc.code == RELAY_NOT_AUTHENTIC:
                    self.handler.emit(ev.Error(exc.code, exc.detail))  # may be transient
                elif isinstance(exc, RelayError) and exc.code in (
                    p.Codes.REVOKED,
                    p.Codes.UNKNOWN_DEVICE,
                ):
                    self.handler.emit(ev.Error(exc.code, "relay refused this device"))
                    return
                log.info("event=connect-failed error=%s", type(exc).__name__)
            self.connected.clear()
            self.handler.emit(ev.Disconnected())
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
            self.ws = ws
            welcome = await self._authenticate(ws)
            await self._on_welcome(welcome)
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await self.handler.on_text(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    data = msg.data
                    if len(data) > 5 and data[0] == p.WS_MEDIA_DOWN:
                        self.handler.on_media(int.from_bytes(data[1:5], "big"), data[5:])
                elif msg.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.ERROR,
                ):
                    break
        self.ws = None

    async def _authenticate(self, ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
        challenge = json.loads((await ws.receive(timeout=10)).data)
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
            raise RelayError("auth-failed", "connection closed during authentication")
        welcome: dict[str, Any] = json.loads(first.data)
        if welcome.get("t") == "error":
            raise RelayError(welcome.get("code", "auth-failed"), welcome.get("detail", ""))
        if self.relay_key is not None:
            relay_check = relay_proof(challenge["nonce"], challenge["relay"], device, nonce)
            try:
                sig = base64.b64decode(welcome.get("relay_sig") or "")
                self.relay_key.verify(sig, relay_check)
            except (VerificationError, ValueError):
                raise RelayError(RELAY_NOT_AUTHENTIC, "the relay did not prove its pinned identity")
        return welcome

    async def _on_welcome(self, welcome: dict[str, Any]) -> None:
        self.udp_token = base64.b64decode(welcome["udp_token"])
        self.udp_key = base64.b64decode(welcome["udp_key"])
        if self.transport == "udp" and welcome.get("udp_port"):
            await self._open_udp(int(welcome["udp_port"]))
        self.connected.set()
        await self.handler.on_welcome(welcome)

    async def _open_udp(self, port: int) -> None:
        if self.udp is None or self.udp.transport is None or self.udp.transport.is_closing():
            host = urlparse(self.relay_url).hostname or "127.0.0.1"
            loop = asyncio.get_running_loop()
            _, proto = await loop.create_datagram_endpoint(
                lambda: _UdpClient(self.handler), remote_addr=(host, port)
            )
            self.udp = proto
        assert self.udp.transport is not None
        for _ in range(2):
            self.udp.transport.sendto(p.udp_register(self.udp_token, self.udp_key))
