"""A hostile relay operator on loopback: a man in the middle between real endpoints and the real
relay process (issue 9), that sees, drops, holds, delays, replays, reorders, modifies and
injects every control message and media datagram.

The endpoints connect to :attr:`HostileRelay.url` instead of the relay's; the relay's key stays
pinned (``relay_key``), and pinning passes because the relay's own signed proof is forwarded as
it is. What the operator of a relay can do, this can do; what needs the relay's key (or an
endpoint's) it cannot.

- **WebSocket control channel**: an asyncio TCP proxy. The HTTP upgrade passes through (an
  offered ``Sec-WebSocket-Extensions`` is removed: the frames stay plain); then both directions
  are parsed as RFC 6455 frames (:mod:`tests.security.wsframes`: client frames masked, server
  frames not, fragments reassembled, control frames on their own), and each *message* goes to
  the policy. What the policy forwards is framed again (one frame, or fragments of
  ``fragment`` bytes) and masked afresh upstream. A protocol violation cuts the connection and
  is kept in :attr:`errors`.
- **UDP media** (:mod:`tests.security.udp_mitm`): the ``welcome`` the relay sends is rewritten
  to give the proxy's UDP port (nothing signs that field), and the proxy forwards each
  endpoint's datagrams from a socket of its own, so the relay's downstream (sent to the address
  that registered) comes back to that socket and through the policy. An extra attacker socket
  (:meth:`inject_udp` with ``attacker=True``) sends from an address no endpoint uses; what the
  relay sends to it is recorded (``device="attacker"``).

Every message read off the wire is appended to :attr:`seen` before the policy; every message
written to the wire (passed, replayed or injected) to :attr:`sent`, with the time it was
written (``at``, the loop's clock). :meth:`wait_for` waits for matching messages with a
deadline that fails. Policies (re-exported here): :mod:`tests.security.policies`; a relay with a
signing key and endpoints that pin it: :mod:`tests.security.pinned`. For example::

    relay, key = pinned_relay(tmp, world)
    relay.start()
    drop = DropWhere(where(direction="down", t="deliver", kind="commit"))
    async with HostileRelay.around(relay, Chain(Record(), drop)) as hr:
        ep = await endpoint_via(hr.url, world, device, tmp, key)
        ...
        await hr.wait_for(where(direction="up", t="ack"), count=2)

tests/security/test_harness.py shows each verb.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import json
from typing import Any, Protocol

from tests.security.policies import (
    Chain,
    Delay,
    DropWhere,
    Duplicate,
    Forward,
    Hold,
    Message,
    Modify,
    Policy,
    Pred,
    Record,
    Way,
    passthrough,
    where,
)
from tests.security.udp_mitm import ATTACKER, Addr, UdpMitm
from tests.security.wsframes import BINARY, TEXT, MessageReader, WsProtocolError, encode

__all__ = [
    "ATTACKER",
    "Chain",
    "Delay",
    "DropWhere",
    "Duplicate",
    "Hold",
    "HostileRelay",
    "Message",
    "Modify",
    "Record",
    "where",
]


class _Relay(Protocol):
    port: int
    udp_port: int


class _WsConn:
    def __init__(self, no: int, client: asyncio.StreamWriter, relay: asyncio.StreamWriter) -> None:
        self.no, self.client, self.relay = no, client, relay
        self.device: str | None = None
        self.closed = False

    def writer(self, way: Way) -> asyncio.StreamWriter:
        return self.relay if way == "up" else self.client


def _strip_extensions(head: bytes) -> bytes:
    lines = head.split(b"\r\n")
    kept = [x for x in lines if not x.lower().startswith(b"sec-websocket-extensions:")]
    return b"\r\n".join(kept)


class HostileRelay:
    def __init__(
        self,
        ws_target: Addr,
        udp_target: Addr | None = None,
        policy: Policy = passthrough,
        *,
        fragment: int | None = None,
    ) -> None:
        self.ws_target, self.udp_target = ws_target, udp_target
        self.policy = policy  # may be replaced while running
        self.fragment = fragment  # re-fragment forwarded data messages into pieces this long
        self.seen: list[Message] = []
        self.sent: list[Message] = []
        self.errors: list[str] = []
        self.lost = 0  # forwarded onto a connection that had closed
        self._conns: list[_WsConn] = []
        self._tokens: dict[bytes, str] = {}
        self._server: asyncio.Server | None = None
        self._udp: UdpMitm | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Event()

    @classmethod
    def around(cls, relay: _Relay, policy: Policy = passthrough, **kw: Any) -> HostileRelay:
        """In front of a :class:`tests.bridge.harness.RelayProcess` (WebSocket and UDP)."""
        return cls(("127.0.0.1", relay.port), ("127.0.0.1", relay.udp_port), policy, **kw)

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/ws"

    @property
    def udp_port(self) -> int:
        assert self._udp is not None, "no UDP target"
        return self._udp.port

    async def start(self) -> HostileRelay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        if self.udp_target is not None:
            udp = UdpMitm(self.udp_target, self._from_udp, self._log_sent, self._tokens)
            await udp.start()
            self._udp = udp
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in self._conns:
            conn.closed = True
            for w in (conn.client, conn.relay):
                w.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._udp is not None:
            await self._udp.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> HostileRelay:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_for(
        self, pred: Pred, count: int = 1, timeout: float = 5.0, log: str = "seen"
    ) -> list[Message]:
        """The messages in ``log`` (``"seen"`` or ``"sent"``) that match, once there are at
        least ``count``; TimeoutError if not within ``timeout`` seconds."""
        source = self.seen if log == "seen" else self.sent
        found: list[Message] = []
        try:
            async with asyncio.timeout(timeout):
                while len(found := [m for m in source if pred(m)]) < count:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            got = len(found)
            raise TimeoutError(f"{got} of {count} messages {log} within {timeout} s") from None
        return found

    def connections(self, device: str | None = None) -> list[int]:
        """The numbers of the open WebSocket connections (of ``device``), oldest first."""
        return [c.no for c in self._conns if not c.closed and device in (None, c.device)]

    # -- injection -----------------------------------------------------------------------

    def inject_ws(
        self,
        direction: Way,
        payload: Message | bytes | str,
        *,
        device: str | None = None,
        conn: int | None = None,
        opcode: int | None = None,
    ) -> Message:
        """Write one message onto a WebSocket connection (``conn``, else ``device``'s newest,
        else the newest), bypassing the policy. A recorded :class:`Message` keeps its opcode;
        otherwise a ``str`` goes as a text message and ``bytes`` as a binary one."""
        c = self._conns[conn] if conn is not None else self._newest(device)
        if isinstance(payload, Message):
            data, op = payload.payload, payload.opcode
        elif isinstance(payload, str):
            data, op = payload.encode(), TEXT
        else:
            data, op = payload, BINARY
        now = asyncio.get_running_loop().time()
        op = op if opcode is None else opcode
        msg = Message("ws", direction, op, data, c.no, c.device, now, "inject")
        self._write_ws(c, direction, msg)
        return msg

    def inject_udp(
        self, direction: Way, payload: bytes, *, device: str | None = None, attacker: bool = False
    ) -> Message:
        """Send one datagram: to the relay from ``device``'s proxy socket (or, ``attacker``,
        from the attacker's), or to ``device``'s endpoint as if from the relay."""
        if self._udp is None:
            raise ValueError("no UDP target")
        return self._udp.inject(direction, payload, device, attacker)

    def _newest(self, device: str | None) -> _WsConn:
        matching = [c for c in self._conns if device in (None, c.device)]
        if not matching:
            raise LookupError(f"no connection of {device or 'any device'} yet")
        return matching[-1]

    # -- WebSocket -------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        with contextlib.suppress(asyncio.CancelledError):  # close() cancels; end quietly
            await self._serve(reader, writer)

    async def _serve(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            r_reader, r_writer = await asyncio.open_connection(*self.ws_target)
        except OSError:
            c_writer.transport.abort()
            return
        conn = _WsConn(len(self._conns), c_writer, r_writer)
        self._conns.append(conn)
        try:
            r_writer.write(_strip_extensions(await c_reader.readuntil(b"\r\n\r\n")))
            response = await r_reader.readuntil(b"\r\n\r\n")
            c_writer.write(response)
            upgraded = response.startswith(b"HTTP/1.1 101")
            await asyncio.gather(
                self._pump(conn, "up", c_reader, upgraded),
                self._pump(conn, "down", r_reader, upgraded),
            )
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            conn.closed = True
            for w in (c_writer, r_writer):
                w.close()
            self._changed.set()

    async def _pump(
        self, conn: _WsConn, way: Way, reader: asyncio.StreamReader, frames: bool
    ) -> None:
        parser = MessageReader(masked=way == "up")
        out = conn.writer(way)
        while True:
            try:
                data = await reader.read(65536)
            except OSError:
                data = b""
            if not data:
                break
            if not frames:  # not a WebSocket (a refused upgrade): bytes as they are
                out.write(data)
                continue
            try:
                messages = parser.feed(data)
            except WsProtocolError as exc:
                self.errors.append(f"{way} on connection {conn.no}: {exc}")
                conn.closed = True
                conn.client.transport.abort()
                conn.relay.transport.abort()
                return
            for opcode, payload in messages:
                self._from_ws(conn, way, opcode, payload)
            with contextlib.suppress(OSError):
                await out.drain()
        if out.can_write_eof() and not out.is_closing():
            with contextlib.suppress(OSError):
                out.write_eof()

    def _from_ws(self, conn: _WsConn, way: Way, opcode: int, payload: bytes) -> None:
        if way == "down" and opcode == TEXT:
            payload = self._on_relay_text(conn, payload)
        now = asyncio.get_running_loop().time()
        msg = Message("ws", way, opcode, payload, conn.no, conn.device, now)
        self._log(self.seen, msg)
        self.policy(msg, lambda m: self._write_ws(conn, way, m))

    def _write_ws(self, conn: _WsConn, way: Way, msg: Message) -> None:
        out = conn.writer(way)
        if conn.closed or out.is_closing():
            self.lost += 1
            return
        out.write(encode(msg.opcode, msg.payload, mask=way == "up", fragment=self.fragment))
        self._log(self.sent, msg)

    def _on_relay_text(self, conn: _WsConn, payload: bytes) -> bytes:
        """Learn whose connection a ``welcome`` opens, and point its UDP at this proxy."""
        try:
            c = json.loads(payload)
        except ValueError:
            return payload
        if not isinstance(c, dict) or c.get("t") != "welcome":
            return payload
        device = c.get("device")
        if isinstance(device, str):
            conn.device = device
            with contextlib.suppress(binascii.Error, TypeError, ValueError):
                self._tokens[base64.b64decode(c.get("udp_token", ""), validate=True)] = device
        if self._udp is None or not c.get("udp_port"):
            return payload
        return json.dumps({**c, "udp_port": self.udp_port}, separators=(",", ":")).encode()

    # -- UDP and the records ------------------------------------------------------------

    def _from_udp(self, msg: Message, forward: Forward | None) -> None:
        self._log(self.seen, msg)
        if forward is not None:  # the attacker's socket keeps what it receives
            self.policy(msg, forward)

    def _log_sent(self, msg: Message) -> None:
        self._log(self.sent, msg)

    def _log(self, log: list[Message], msg: Message) -> None:
        if log is self.sent:  # stamped when written
            msg = dataclasses.replace(msg, at=asyncio.get_running_loop().time())
        log.append(msg)
        self._changed.set()
