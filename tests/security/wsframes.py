"""RFC 6455 framing, sans-IO, for the hostile-relay harness (:mod:`tests.rigs.hostile_relay`).

:class:`MessageReader` is fed the bytes of one direction of a WebSocket connection and returns
whole messages as ``(opcode, payload)``:

- a data message (text or binary) fragmented over a first frame with FIN clear and
  continuation frames (opcode 0) is returned once, reassembled, when its final frame
  arrives (§5.4);
- control frames (close, ping, pong) are returned as they arrive, also between the fragments
  of a data message (§5.5); they are never fragmented and carry at most 125 bytes;
- client-to-server frames must be masked and server-to-client frames must not be (§5.1,
  §5.3); the reader is told which direction it reads and unmasks;
- any violation (a wrong mask bit, a reserved bit without an extension, an unknown opcode, a
  continuation with nothing to continue, a new data frame inside a fragmented message, a
  fragmented or oversized control frame, a message over ``max_size``) raises
  :class:`WsProtocolError`. The harness never negotiates an extension.

:func:`encode` builds the frames of one message, masked with a fresh key when ``mask``, split
into fragments of ``fragment`` bytes when given (control frames are never split).
"""

from __future__ import annotations

import os
import struct
from typing import Final

CONT: Final = 0x0
TEXT: Final = 0x1
BINARY: Final = 0x2
CLOSE: Final = 0x8
PING: Final = 0x9
PONG: Final = 0xA
DATA_OPCODES: Final = frozenset({TEXT, BINARY})
CONTROL_OPCODES: Final = frozenset({CLOSE, PING, PONG})
MAX_CONTROL_PAYLOAD: Final = 125
MAX_SIZE: Final = 16 * 1024 * 1024


class WsProtocolError(Exception):
    """The bytes are not valid RFC 6455 frames for this direction."""


def apply_mask(key: bytes, data: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``key`` repeated (§5.3); its own inverse."""
    n = len(data)
    if n == 0:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def _frame(fin: bool, opcode: int, payload: bytes, mask: bool) -> bytes:
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + apply_mask(key, payload)


def encode(opcode: int, payload: bytes, *, mask: bool, fragment: int | None = None) -> bytes:
    """The frames of one message (a client's are masked, a server's are not)."""
    if opcode in CONTROL_OPCODES or not fragment or len(payload) <= fragment:
        return _frame(True, opcode, payload, mask)
    pieces = [payload[i : i + fragment] for i in range(0, len(payload), fragment)]
    out = [_frame(False, opcode, pieces[0], mask)]
    out += [_frame(False, CONT, piece, mask) for piece in pieces[1:-1]]
    out.append(_frame(True, CONT, pieces[-1], mask))
    return b"".join(out)


class MessageReader:
    """Whole messages from one direction's byte stream; ``masked``: frames from a client."""

    def __init__(self, masked: bool, max_size: int = MAX_SIZE) -> None:
        self.masked = masked
        self.max_size = max_size
        self.frames = 0  # frames read, for the harness's counters
        self._buf = bytearray()
        self._opcode: int | None = None  # the data message being reassembled
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        out: list[tuple[int, bytes]] = []
        while (frame := self._next_frame()) is not None:
            message = self._assemble(*frame)
            if message is not None:
                out.append(message)
        return out

    def _next_frame(self) -> tuple[bool, int, bytes] | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        if b0 & 0x70:
            raise WsProtocolError("reserved bits set (no extension was negotiated)")
        if bool(b1 & 0x80) != self.masked:
            raise WsProtocolError("client frames must be masked, server frames must not be")
        n, at = b1 & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                return None
            n, at = struct.unpack_from("!H", buf, 2)[0], 4
        elif n == 127:
            if len(buf) < 10:
                return None
            n, at = struct.unpack_from("!Q", buf, 2)[0], 10
        if n > self.max_size:
            raise WsProtocolError("frame over the size limit")
        key = b""
        if self.masked:
            if len(buf) < at + 4:
                return None
            key, at = bytes(buf[at : at + 4]), at + 4
        if len(buf) < at + n:
            return None
        payload = bytes(buf[at : at + n])
        del buf[: at + n]
        self.frames += 1
        return bool(b0 & 0x80), b0 & 0x0F, apply_mask(key, payload) if key else payload

    def _assemble(self, fin: bool, opcode: int, payload: bytes) -> tuple[int, bytes] | None:
        if opcode in CONTROL_OPCODES:
            if not fin or len(payload) > MAX_CONTROL_PAYLOAD:
                raise WsProtocolError("control frames are not fragmented and carry ≤ 125 bytes")
            return opcode, payload
        if opcode == CONT:
            if self._opcode is None:
                raise WsProtocolError("a continuation frame with no message to continue")
        elif opcode in DATA_OPCODES:
            if self._opcode is not None:
                raise WsProtocolError("a new data frame inside a fragmented message")
            self._opcode, self._parts, self._size = opcode, [], 0
        else:
            raise WsProtocolError(f"reserved opcode {opcode:#x}")
        self._size += len(payload)
        if self._size > self.max_size:
            raise WsProtocolError("message over the size limit")
        self._parts.append(payload)
        op = self._opcode
        if not fin or op is None:
            return None
        whole = b"".join(self._parts)
        self._opcode, self._parts = None, []
        return op, whole
