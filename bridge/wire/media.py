"""Media framing of the relay protocol: SFrame frames (opaque to the relay) over WebSocket
binary frames and over UDP datagrams (DESIGN §5).

WebSocket binary frames::

    client -> relay   0x01 | channel_no (u32) | sframe
    relay -> client   0x02 | channel_no (u32) | sframe

UDP datagrams, each bound to one authenticated session by its token and a MAC, both ways::

    client -> relay   0xCB 0x01 | token (8) | channel_no (u32) | sframe | mac (8)    media
    client -> relay   0xCB 0x02 | token (8) | seq (u64) | mac (8)                    register
    relay -> client   0xCB 0x03 | channel_no (u32) | sframe | mac (8)                media down

The relay gives each session its token and ``udp_key`` in ``welcome`` (fresh for every session).
Upstream, ``mac`` is the first 8 bytes of HMAC-SHA256(udp_key, everything before it).
Downstream, it is keyed BLAKE2b with an 8-byte digest (RFC 7693's keyed mode, plus BLAKE2's
personalisation string) under :func:`udp_down_key` (udp_key) over everything before it.
It is computed per listener, so the relay keeps each session's keyed state and copies it per
datagram (:func:`udp_down_mac`): ~0.3 µs a copy, where a one-shot ``hmac.digest`` costs 1.4 to
2.7 µs under OpenSSL 3 (up to half a ``sendto``).
SFrame still authenticates the content end to end; this MAC lets a listener drop what did not
come from the relay (a spoofed source address) before it reaches the decryptor.

``seq`` makes a register fresh: the relay accepts one only if its ``seq`` is greater than the
last it accepted for the session, so a register captured and replayed from another address is
refused; only a fresh register moves the session's UDP address (media datagrams never do).
Endpoints register again every few seconds (:mod:`bridge.endpoint.udp_binding`), which also
carries the binding across a NAT rebinding.

``sframe`` is 1 to :data:`MAX_SFRAME` bytes in every format. The parsers check structure only
(lengths, magic, kind) and raise nothing but
:class:`~bridge.errors.RemoteProtocolError` (``Code.MALFORMED``); checking the MAC needs the
session's key, found by the token upstream (:func:`udp_mac_ok`), the listener's own downstream
(:func:`udp_down_ok`).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Final, NamedTuple

from bridge.errors import RemoteProtocolError
from bridge.wire.codes import Code

__all__ = [
    "MAC_LEN",
    "MAX_SEQ",
    "MAX_SFRAME",
    "SEQ_LEN",
    "TOKEN_LEN",
    "UDP_MAGIC",
    "UDP_MEDIA",
    "UDP_MEDIA_DOWN",
    "UDP_REGISTER",
    "UDP_REGISTER_LEN",
    "WS_MEDIA_DOWN",
    "WS_MEDIA_UP",
    "DownMac",
    "UdpUp",
    "parse_udp_down",
    "parse_udp_up",
    "parse_ws_media",
    "udp_down_key",
    "udp_down_mac",
    "udp_down_ok",
    "udp_mac",
    "udp_mac_ok",
    "udp_media_down",
    "udp_media_up",
    "udp_register",
    "udp_seal_down",
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

SEQ_LEN: Final = 8
UDP_REGISTER_LEN: Final = 2 + TOKEN_LEN + SEQ_LEN + MAC_LEN
MAX_SEQ: Final = 2**64 - 1

_CH = struct.Struct(">I")
_WS_HEAD = 1 + _CH.size
_UDP_UP_HEAD = 2 + TOKEN_LEN + _CH.size
_UDP_DOWN_HEAD = 2 + _CH.size
_DOWN_LABEL = b"crossband udp downstream v1"
_DOWN_PERSON = b"crossband-down"
_PLACEHOLDER = bytes(MAC_LEN)

DownMac = hashlib.blake2b  # a keyed state: copy it, feed one datagram, take the digest


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
    seq: int | None = None  # UDP_REGISTER only: its freshness counter


def udp_mac(key: bytes, data: bytes) -> bytes:
    """The truncated HMAC-SHA256 that binds a client datagram to its session."""
    return hmac.digest(key, data, "sha256")[:MAC_LEN]


def udp_mac_ok(key: bytes, up: UdpUp) -> bool:
    """True if ``up`` carries the MAC of the session whose UDP key is ``key`` (constant time)."""
    return hmac.compare_digest(udp_mac(key, up.signed), up.mac)


def udp_media_up(token: bytes, key: bytes, channel_no: int, frame: bytes) -> bytes:
    head = bytes((UDP_MAGIC, UDP_MEDIA)) + token + _CH.pack(channel_no) + frame
    return head + udp_mac(key, head)


def udp_register(token: bytes, key: bytes, seq: int) -> bytes:
    """A register datagram; ``seq`` must grow with every register of the session (from 1)."""
    if not 0 < seq <= MAX_SEQ:
        raise ValueError("register seq out of range")
    head = bytes((UDP_MAGIC, UDP_REGISTER)) + token + seq.to_bytes(SEQ_LEN, "big")
    return head + udp_mac(key, head)


def udp_down_key(udp_key: bytes) -> bytes:
    """The downstream MAC key of a session, derived from its ``udp_key`` (so the two
    directions never share a key)."""
    return hmac.digest(udp_key, _DOWN_LABEL, "sha256")


def udp_down_mac(udp_key: bytes) -> DownMac:
    """The keyed BLAKE2b state of a session's downstream MAC, fed nothing yet: ``copy()`` it,
    ``update()`` the copy with a datagram's bytes before the MAC, and take its ``digest()``."""
    return hashlib.blake2b(key=udp_down_key(udp_key), digest_size=MAC_LEN, person=_DOWN_PERSON)


def udp_media_down(channel_no: int, frame: bytes) -> bytes:
    """A downstream datagram with a zero placeholder where the MAC goes: built once per frame
    by the relay, which puts each listener's own MAC in place (:func:`udp_seal_down`)."""
    return bytes((UDP_MAGIC, UDP_MEDIA_DOWN)) + _CH.pack(channel_no) + frame + _PLACEHOLDER


def udp_seal_down(mac: DownMac, template: bytes) -> bytes:
    """``template`` (:func:`udp_media_down`) with the MAC of the listener whose state is
    ``mac``. The relay's fan-out does the same inline (:meth:`bridge.relay.udp.UdpPort.send`)."""
    body = template[:-MAC_LEN]
    m = mac.copy()
    m.update(body)
    return body + m.digest()


def udp_down_ok(mac: DownMac, data: bytes) -> bool:
    """True if the downstream datagram ``data`` carries this listener's MAC (constant time)."""
    m = mac.copy()
    m.update(data[:-MAC_LEN])
    return hmac.compare_digest(m.digest(), data[-MAC_LEN:])


def parse_udp_up(data: bytes) -> UdpUp:
    """Split a client datagram (media or register) into its fields; the MAC is not checked."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _malformed("bad datagram")
    data = bytes(data)
    if len(data) < 2 + TOKEN_LEN + MAC_LEN or data[0] != UDP_MAGIC:
        raise _malformed("bad datagram")
    kind = data[1]
    token = data[2 : 2 + TOKEN_LEN]
    signed, mac = data[:-MAC_LEN], data[-MAC_LEN:]
    if kind == UDP_REGISTER:
        if len(data) != UDP_REGISTER_LEN:
            raise _malformed("bad register datagram")
        seq = int.from_bytes(data[2 + TOKEN_LEN : 2 + TOKEN_LEN + SEQ_LEN], "big")
        return UdpUp(kind, token, None, b"", signed, mac, seq)
    if kind != UDP_MEDIA:
        raise _malformed("unknown datagram kind")
    if not _UDP_UP_HEAD + MAC_LEN < len(data) <= _UDP_UP_HEAD + MAX_SFRAME + MAC_LEN:
        raise _malformed("bad media datagram")
    channel_no = _CH.unpack_from(data, 2 + TOKEN_LEN)[0]
    return UdpUp(kind, token, channel_no, data[_UDP_UP_HEAD:-MAC_LEN], signed, mac)


def parse_udp_down(data: bytes) -> tuple[int, bytes]:
    """Return ``(channel_no, sframe)`` of a relay datagram; the MAC is not checked
    (:func:`udp_down_ok`)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _malformed("bad datagram")
    data = bytes(data)
    if (
        not _UDP_DOWN_HEAD + MAC_LEN < len(data) <= _UDP_DOWN_HEAD + MAX_SFRAME + MAC_LEN
        or data[0] != UDP_MAGIC
        or data[1] != UDP_MEDIA_DOWN
    ):
        raise _malformed("bad datagram")
    return _CH.unpack_from(data, 2)[0], data[_UDP_DOWN_HEAD:-MAC_LEN]
