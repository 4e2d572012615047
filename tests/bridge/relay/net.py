"""Network pieces of the relay tests: a raw WebSocket client that can stop reading, and the
relay's HTTP pages. Nothing here imports the relay, so these tests run against any version."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from typing import Any

from bridge.wire.auth import AUTH_DOMAIN
from crypto.encoding import signing_input
from tests.world import Device


def auth_msg(d: Device, challenge: dict[str, Any], nonce: str = "n") -> str:
    """The ``auth`` answer of device ``d`` to a relay's ``challenge`` message."""
    proof = signing_input(
        AUTH_DOMAIN,
        {
            "challenge": challenge["nonce"],
            "relay": challenge["relay"],
            "device": d.id,
            "nonce": nonce,
        },
    )
    return json.dumps(
        {
            "t": "auth",
            "v": 1,
            "credential": json.loads(d.cred.encode()),
            "nonce": nonce,
            "sig": base64.b64encode(d.keys.sign.sign(proof)).decode(),
        }
    )


class RawWebSocket:
    """A minimal RFC 6455 client over a plain socket, so a test controls exactly when (and
    whether) it reads. ``rcvbuf`` shrinks the kernel's receive buffer before connecting."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, host: str, port: int, rcvbuf: int | None = None) -> RawWebSocket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        # A small limit: once 2 x limit bytes are buffered the stream stops reading the socket.
        reader, writer = await asyncio.open_connection(sock=sock, limit=16 * 1024)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(head.split(b"\r\n")[0].decode())
        return cls(reader, writer)

    def send_text(self, text: str) -> None:
        payload = text.encode()
        n = len(payload)
        if n < 126:
            head = bytes((0x81, 0x80 | n))
        elif n < 1 << 16:
            head = bytes((0x81, 0x80 | 126)) + struct.pack(">H", n)
        else:
            head = bytes((0x81, 0x80 | 127)) + struct.pack(">Q", n)
        mask = os.urandom(4)
        key = (mask * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
        self.writer.write(head + mask + masked)

    async def receive(self) -> tuple[int, bytes]:
        """One frame: (opcode, payload). Opcode 8 is a close frame."""
        b0, b1 = await self.reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", await self.reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", await self.reader.readexactly(8))[0]
        return b0 & 0x0F, await self.reader.readexactly(n)

    async def receive_json(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next text frame as JSON; TimeoutError if none comes within ``timeout`` s."""
        async with asyncio.timeout(timeout):
            return await self._next_json()

    async def _next_json(self) -> dict[str, Any]:
        while True:
            opcode, data = await self.receive()
            if opcode == 1:
                return dict(json.loads(data))
            if opcode == 8:
                raise ConnectionError(f"closed: {data[2:].decode(errors='replace')}")

    async def closed(self, timeout: float = 15.0) -> str:
        """Read until the relay closes; return the close reason (or '' if the socket dropped).
        TimeoutError if the relay keeps the connection open beyond ``timeout`` s."""
        async with asyncio.timeout(timeout):
            return await self._until_closed()

    async def _until_closed(self) -> str:
        try:
            while True:
                opcode, data = await self.receive()
                if opcode == 8:
                    return data[2:].decode(errors="replace")
        except (asyncio.IncompleteReadError, ConnectionError):
            return ""

    def close(self) -> None:
        self.writer.close()


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text exposition -> {sample name with labels: value}."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def http_get(port: int, path: str, timeout: float = 15.0) -> tuple[int, bytes]:
    """GET a relay page on loopback: (status, body), 5xx included."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())
