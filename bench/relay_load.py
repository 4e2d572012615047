"""Load-generator pieces for ``bench/relay_bench.py``: a slim relay client, sinks, a pacer.

The relay under test is the real relay process; this is the other side, made cheap to run:

- :class:`SlimConn`: a WebSocket client on a raw non-blocking socket (the upgrade, masked
  client frames with the all-zero key, server frames, pongs), authenticating exactly as the
  real ``Endpoint`` does; many connections authenticate in pipelined batches.
- :class:`UdpSink`: a listener's UDP socket; undrained a pure sink, drained a latency probe.
- :class:`Probe`: maps each pre-generated frame to a slot holding its last send time, so a
  latency is ``perf_counter() - sent[slot]`` in this one process (no shared clock, nothing
  embedded in the ciphertext).
- :func:`drive`: sends a round-robin sequence of pre-built frames at a rate (or flat out)
  while polling every registered socket. (The bare forwarder: :mod:`bench.relay_forwarder`.)
"""

from __future__ import annotations

import base64
import gc
import json
import os
import selectors
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from bridge.wire import control as p
from bridge.wire.auth import AUTH_DOMAIN
from crypto.encoding import signing_input
from tests.world import Device

perf = time.perf_counter
OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 1, 2, 8, 9, 10


def client_frame(op: int, payload: bytes) -> bytes:
    """One final, masked client frame (RFC 6455 §5.2) with the all-zero masking key."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | op, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((0x80 | op, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | op, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


class Probe:
    """Send times per pre-generated frame, and the latencies of the frames received."""

    def __init__(self) -> None:
        self.index: dict[bytes, int] = {}  # downstream bytes -> slot
        self.sent: list[float] = []
        self.lat: list[float] = []
        self.recording = False

    def slot(self, downstream: bytes) -> int:
        self.sent.append(0.0)
        self.index[downstream] = len(self.sent) - 1
        return len(self.sent) - 1

    def hit(self, data: bytes, t: float) -> None:
        slot = self.index.get(data)
        if slot is None:  # a relay's UDP copy: its listener's MAC follows the indexed bytes
            slot = self.index.get(data[:-8])
        if slot is not None and self.recording:
            self.lat.append(t - self.sent[slot])


class UdpSink:
    """A listener's UDP socket (registered with the relay as the device's media address)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.addr: tuple[str, int] = self.sock.getsockname()
        self.count = 0
        self.probe: Probe | None = None

    def drain(self) -> None:
        recv, probe = self.sock.recv, self.probe
        try:
            while True:
                data = recv(2048)
                self.count += 1
                if probe is not None:
                    probe.hit(data, perf())
        except BlockingIOError:
            pass

    def close(self) -> None:
        self.sock.close()


class SlimConn:
    """An authenticated relay session on a raw socket (see the module docstring)."""

    def __init__(self, device: Device, keep_text: bool = False) -> None:
        self.device = device
        self.keep_text = keep_text
        self.sock: socket.socket | None = None
        self.buf = bytearray()
        self.out = bytearray()
        self.texts: list[tuple[float, dict[str, Any]]] = []
        self.binary = 0
        self.probe: Probe | None = None
        self.closed = False
        self.token = b""
        self.udp_key = b""
        self.udp_port = 0
        self.channels: dict[str, int] = {}

    # -- blocking set-up ---------------------------------------------------------------------

    def open(self, port: int) -> None:
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.sock = s

    def _recv_blocking(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(1 << 18)
        if not data:
            raise ConnectionError(f"relay closed {self.device.id}")
        self.buf += data

    def _frame_blocking(self) -> tuple[int, bytes]:
        while True:
            frame = self._parse_one()
            if frame is not None:
                return frame
            self._recv_blocking()

    def _parse_one(self) -> tuple[int, bytes] | None:
        buf = self.buf
        if len(buf) < 2:
            return None
        n, h = buf[1] & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                return None
            n, h = int.from_bytes(buf[2:4], "big"), 4
        elif n == 127:
            if len(buf) < 10:
                return None
            n, h = int.from_bytes(buf[2:10], "big"), 10
        if len(buf) < h + n:
            return None
        op, payload = buf[0] & 0x0F, bytes(buf[h : h + n])
        del buf[: h + n]
        return op, payload

    def answer_challenge(self) -> None:
        while b"\r\n\r\n" not in self.buf:
            self._recv_blocking()
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"upgrade refused: {head[:40]!r}")
        self.buf = bytearray(rest)
        op, data = self._frame_blocking()
        challenge = json.loads(data)
        nonce = base64.b64encode(os.urandom(16)).decode()
        proof = signing_input(
            AUTH_DOMAIN,
            {
                "challenge": challenge["nonce"],
                "relay": challenge["relay"],
                "device": self.device.id,
                "nonce": nonce,
            },
        )
        auth = p.control(
            "auth",
            credential=json.loads(self.device.cred.encode()),
            nonce=nonce,
            sig=base64.b64encode(self.device.keys.sign.sign(proof)).decode(),
        )
        assert self.sock is not None
        self.sock.sendall(client_frame(OP_TEXT, auth.encode()))

    def read_welcome(self) -> None:
        while True:
            op, data = self._frame_blocking()
            if op != OP_TEXT:
                continue
            msg = json.loads(data)
            if msg["t"] == "error":
                raise ConnectionError(f"auth refused: {msg.get('code')}")
            if msg["t"] == "welcome":
                break
        self.token = base64.b64decode(msg["udp_token"])
        self.udp_key = base64.b64decode(msg["udp_key"])
        self.udp_port = int(msg["udp_port"] or 0)
        self.channels = {c["ch"]: c["no"] for c in msg["channels"]}
        assert self.sock is not None
        self.sock.setblocking(False)

    # -- non-blocking operation ----------------------------------------------------------------

    def drain(self) -> None:
        """Read what is there; count/probe media, keep control messages if asked, pong."""
        assert self.sock is not None
        try:
            while True:
                data = self.sock.recv(1 << 18)
                if not data:
                    self.closed = True
                    break
                self.buf += data
                if len(data) < 1 << 18:
                    break
        except BlockingIOError:
            pass
        except OSError:
            self.closed = True
        t = perf()
        buf, pos, end = self.buf, 0, len(self.buf)
        while end - pos >= 2:
            n, h = buf[pos + 1] & 0x7F, 2
            if n == 126:
                if end - pos < 4:
                    break
                n, h = (buf[pos + 2] << 8) | buf[pos + 3], 4
            elif n == 127:
                if end - pos < 10:
                    break
                n, h = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if end - pos - h < n:
                break
            op, start = buf[pos] & 0x0F, pos + h
            pos = start + n
            if op == OP_BINARY:
                self.binary += 1
                if self.probe is not None:
                    self.probe.hit(bytes(buf[start:pos]), t)
            elif op == OP_TEXT:
                if self.keep_text:
                    self.texts.append((t, json.loads(bytes(buf[start:pos]))))
            elif op == OP_PING:
                self.send(client_frame(OP_PONG, bytes(buf[start:pos])))
            elif op == OP_CLOSE:
                self.closed = True
        if pos:
            del buf[:pos]

    def send(self, data: bytes) -> bool:
        """Queue ``data`` whole; False (nothing queued) if earlier bytes are still pending."""
        assert self.sock is not None
        if self.out:
            self.flush()
            if self.out:
                return False
        try:
            n = self.sock.send(data)
        except BlockingIOError:
            n = 0
        if n < len(data):
            self.out += data[n:]
        return True

    def flush(self) -> None:
        assert self.sock is not None
        try:
            n = self.sock.send(self.out)
        except BlockingIOError:
            return
        del self.out[:n]

    def send_control(self, text: str) -> None:
        """Send a control message whatever the backlog (waits for it to drain)."""
        deadline = perf() + 10
        while not self.send(client_frame(OP_TEXT, text.encode())):
            if perf() > deadline:
                raise TimeoutError(f"{self.device.id}: relay does not read")
            time.sleep(0.001)

    def wait_text(
        self, pump: Pump, pred: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> tuple[float, dict[str, Any]]:
        """Poll until a kept control message matches ``pred``; consume and return it."""
        deadline = perf() + timeout
        while True:
            for i, (t, msg) in enumerate(self.texts):
                if msg.get("t") == "error":
                    raise RuntimeError(f"{self.device.id}: relay error {msg.get('code')}")
                if pred(msg):
                    del self.texts[: i + 1]
                    return t, msg
            if perf() > deadline:
                raise TimeoutError(f"{self.device.id}: no matching control message")
            pump.poll(0.0005)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


def connect_all(conns: Sequence[SlimConn], port: int, pump: Pump, batch: int = 100) -> None:
    """Authenticate ``conns`` in pipelined batches, registering each batch with ``pump``."""
    for i in range(0, len(conns), batch):
        chunk = conns[i : i + batch]
        for c in chunk:
            c.open(port)
        for c in chunk:
            c.answer_challenge()
        for c in chunk:
            c.read_welcome()
            pump.add(c)
        pump.poll(0)


class Pump:
    """An epoll selector over every socket this process reads; ``drain()`` on readiness."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()

    def add(self, obj: SlimConn | UdpSink) -> None:
        self.sel.register(obj.sock, selectors.EVENT_READ, obj)  # type: ignore[arg-type]

    def remove(self, obj: SlimConn | UdpSink) -> None:
        self.sel.unregister(obj.sock)  # type: ignore[arg-type]

    def poll(self, timeout: float) -> None:
        for key, _ in self.sel.select(timeout):
            key.data.drain()

    def settle(self, seconds: float) -> None:
        end = perf() + seconds
        while perf() < end:
            self.poll(0.001)

    def close(self) -> None:
        self.sel.close()


Item = tuple[Callable[[bytes], Any], bytes, int]  # (send function, bytes, probe slot)


def drive(
    seq: Sequence[Item],
    probe: Probe,
    rate: float | None,
    seconds: float,
    pump: Pump,
    tick: Callable[[float], None] | None = None,
) -> int:
    """Send ``seq`` round-robin at ``rate`` frames/s (None: flat out) for ``seconds``.

    Pacing is a busy loop (this process has a core of its own), so frames leave evenly;
    every pass also drains the sockets in ``pump``. A send returning False: not sent
    (backpressure). Returns the number of frames sent. The collector is off meanwhile.
    """
    enabled = gc.isenabled()
    gc.disable()  # this process's own collector pauses would read as relay latency
    try:
        return _drive(seq, probe.sent, rate, seconds, pump, tick)
    finally:
        if enabled:
            gc.enable()


def _drive(
    seq: Sequence[Item],
    sent: list[float],
    rate: float | None,
    seconds: float,
    pump: Pump,
    tick: Callable[[float], None] | None,
) -> int:
    n, k, count, offered = len(seq), 0, 0, 0
    t0 = perf()
    end = t0 + seconds
    poll = pump.poll
    while True:
        now = perf()
        if now >= end:
            break
        due = 64 if rate is None else int((now - t0) * rate) - offered
        for _ in range(due):
            fn, data, slot = seq[k]
            k += 1
            if k == n:
                k = 0
            if fn(data) is not False:
                sent[slot] = now
                count += 1
        offered += due
        if tick is not None:
            tick(now)
        poll(0)
    return count
