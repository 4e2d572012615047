"""Media framing of the relay protocol: SFrame frames (opaque to the relay) over WebSocket
binary frames and over UDP datagrams (DESIGN §5).

WebSocket binary frames::

    client -> relay   0x01 | channel_no (u32) | sframe
    relay -> client   0x02 | channel_no (u32) | sframe

UDP datagrams, bound to the authenticated session by a token and a MAC::

    client -> relay   0xCB 0x01 | token (8) | channel_no (u32) | sframe | mac (8)    media
    client -> relay   0xCB 0x02 | token (8) | mac (8)                                register
    relay -> client   0xCB 0x03 | channel_no (u32) | sframe                          media down

``mac`` is the first 8 bytes of HMAC-SHA256(udp_key, everything before it); the relay gives each
session its token and key in ``welcome``. Downstream datagrams carry no MAC: their content is
authenticated end to end by SFrame, and replays are caught by the receivers' windows.

``sframe`` is 1 to :data:`MAX_SFRAME` bytes in every format. The parsers check structure only
(lengths, magic, kind) and raise nothing but
:class:`~bridge.errors.RemoteProtocolError` (``Code.MALFORMED``); checking the MAC needs the
session's key, found by the token: :func:`udp_mac_ok`.
"""

from __future__ import annotations

import hmac
import struct
from typing import Final, NamedTuple

from bridge.errors import RemoteProtocolError
from bridge.wire.codes import Code

__all__ = [
    "MAC_LEN",
    "MAX_SFRAME",
    "TOKEN_LEN",
    "UDP_MAGIC",
    "UDP_MEDIA",
    "UDP_MEDIA_DOWN",
    "UDP_REGISTER",
    "WS_MEDIA_DOWN",
    "WS_MEDIA_UP",
    "UdpUp",
    "parse_udp_down",
    "parse_udp_up",
    "parse_ws_media",
    "udp_mac",
    "udp_mac_ok",
    "udp_media_down",
    "udp_media_up",
    "udp_register",
    "ws_media",
]

MAX_SFRAME: Final = 1400

WS_MEDIA_UP: Final = 0x01
WS_MEDIA_DOWN: Final = 0x02
UDP_MAGIC: Final = 0xCB
UDP_MEDIA: Final = 0x01
UDP_REGISTER: Final = 0x02
UDP_MEDIA_DOWN: Final = 0x03
TOKEN_LEN: Final = 8
MAC_LEN: Final = 8

_CH = struct.Struct(">I")
_WS_HEAD = 1 + _CH.size
_UDP_UP_HEAD = 2 + TOKEN_LEN + _CH.size
_UDP_REGISTER_LEN = 2 + TOKEN_LEN + MAC_LEN
_UDP_DOWN_HEAD = 2 + _CH.size


def _malformed(what: str) -> RemoteProtocolError:
    return RemoteProtocolError(Code.MALFORMED, what)


# -- WebSocket ------------------------------------------------------------------------------


def ws_media(kind: int, channel_no: int, frame: bytes) -> bytes:
    """A media frame for a WebSocket binary message (``kind`` is WS_MEDIA_UP or _DOWN)."""
    return bytes((kind,)) + _CH.pack(channel_no) + frame


def parse_ws_media(data: bytes) -> tuple[int, int, bytes]:
    """Return ``(kind, channel_no, sframe)`` of a WebSocket binary message."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _malformed("bad media frame")
    data = bytes(data)
    if not _WS_HEAD < len(data) <= _WS_HEAD + MAX_SFRAME:
        raise _malformed("bad media frame")
    kind = data[0]
    if kind not in (WS_MEDIA_UP, WS_MEDIA_DOWN):
        raise _malformed("bad media frame kind")
    return kind, _CH.unpack_from(data, 1)[0], data[_WS_HEAD:]


# -- UDP ------------------------------------------------------------------------------------


class UdpUp(NamedTuple):
    """A client datagram, structurally valid but not yet authenticated."""

    kind: int  # UDP_MEDIA or UDP_REGISTER
    token: bytes
    channel_no: int | None  # None for UDP_REGISTER
    frame: bytes  # the SFrame frame; b"" for UDP_REGISTER
    signed: bytes  # the bytes the MAC covers
    mac: bytes


def udp_mac(key: bytes, data: bytes) -> bytes:
    """The truncated HMAC-SHA256 that binds a client datagram to its session."""
    return hmac.digest(key, data, "sha256")[:MAC_LEN]


def udp_mac_ok(key: bytes, up: UdpUp) -> bool:
    """True if ``up`` carries the MAC of the session whose UDP key is ``key`` (constant time)."""
    return hmac.compare_digest(udp_mac(key, up.signed), up.mac)


def udp_media_up(token: bytes, key: bytes, channel_no: int, frame: bytes) -> bytes:
    head = bytes((UDP_MAGIC, UDP_MEDIA)) + token + _CH.pack(channel_no) + frame
    return head + udp_mac(key, head)


def udp_register(token: bytes, key: bytes) -> bytes:
    head = bytes((UDP_MAGIC, UDP_REGISTER)) + token
    return head + udp_mac(key, head)


def udp_media_down(channel_no: int, frame: bytes) -> bytes:
    return bytes((UDP_MAGIC, UDP_MEDIA_DOWN)) + _CH.pack(channel_no) + frame


def parse_udp_up(data: bytes) -> UdpUp:
    """Split a client datagram (media or register) into its fields; the MAC is not checked."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _malformed("bad datagram")
    data = bytes(data)
    if len(data) < _UDP_REGISTER_LEN or data[0] != UDP_MAGIC:
        raise _malformed("bad datagram")
    kind = data[1]
    token = data[2 : 2 + TOKEN_LEN]
    signed, mac = data[:-MAC_LEN], data[-MAC_LEN:]
    if kind == UDP_REGISTER:
        if len(data) != _UDP_REGISTER_LEN:
            raise _malformed("bad register datagram")
        return UdpUp(kind, token, None, b"", signed, mac)
    if kind != UDP_MEDIA:
        raise _malformed("unknown datagram kind")
    if not _UDP_UP_HEAD + MAC_LEN < len(data) <= _UDP_UP_HEAD + MAX_SFRAME + MAC_LEN:
        raise _malformed("bad media datagram")
    channel_no = _CH.unpack_from(data, 2 + TOKEN_LEN)[0]
    return UdpUp(kind, token, channel_no, data[_UDP_UP_HEAD:-MAC_LEN], signed, mac)


def parse_udp_down(data: bytes) -> tuple[int, bytes]:
    """Return ``(channel_no, sframe)`` of a relay datagram."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _malformed("bad datagram")
    data = bytes(data)
    if (
        not _UDP_DOWN_HEAD < len(data) <= _UDP_DOWN_HEAD + MAX_SFRAME
        or data[0] != UDP_MAGIC
        or data[1] != UDP_MEDIA_DOWN
    ):
        raise _malformed("bad datagram")
    return _CH.unpack_from(data, 2)[0], data[_UDP_DOWN_HEAD:]
