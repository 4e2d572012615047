"""Media framing: each format round-trips, and every wrong length, magic or kind is a coded
``malformed`` (parse_udp_up and parse_udp_down are new; the relay and the link parsed these by
hand)."""

from __future__ import annotations

import os

import pytest

from bridge.errors import RemoteProtocolError
from bridge.wire import control as p
from bridge.wire import media
from bridge.wire.codes import Code

TOKEN, KEY = b"T" * media.TOKEN_LEN, os.urandom(32)


def malformed(parse: object, data: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as e:
        parse(data)  # type: ignore[operator]
    assert e.value.code is Code.MALFORMED


def test_the_control_module_re_exports_media() -> None:
    assert p.parse_ws_media is media.parse_ws_media and p.udp_media_up is media.udp_media_up
    assert p.MAX_SFRAME == media.MAX_SFRAME == 1400


@pytest.mark.parametrize("kind", [media.WS_MEDIA_UP, media.WS_MEDIA_DOWN])
@pytest.mark.parametrize("size", [1, media.MAX_SFRAME])
def test_ws_round_trip(kind: int, size: int) -> None:
    frame = os.urandom(size)
    assert media.parse_ws_media(media.ws_media(kind, 2**32 - 1, frame)) == (kind, 2**32 - 1, frame)


def test_ws_refusals() -> None:
    malformed(media.parse_ws_media, media.ws_media(media.WS_MEDIA_UP, 1, b""))  # no frame
    malformed(media.parse_ws_media, media.ws_media(media.WS_MEDIA_UP, 1, b"x" * 1401))
    malformed(media.parse_ws_media, media.ws_media(0x07, 1, b"x"))  # unknown kind
    malformed(media.parse_ws_media, "text")  # type: ignore[arg-type]


def test_udp_media_round_trip_and_mac() -> None:
    frame = os.urandom(media.MAX_SFRAME)
    data = media.udp_media_up(TOKEN, KEY, 7, frame)
    up = media.parse_udp_up(data)
    assert (up.kind, up.token, up.channel_no, up.frame) == (media.UDP_MEDIA, TOKEN, 7, frame)
    assert media.udp_mac_ok(KEY, up) and not media.udp_mac_ok(os.urandom(32), up)
    tampered = media.parse_udp_up(data[:-9] + bytes([data[-9] ^ 1]) + data[-8:])
    assert not media.udp_mac_ok(KEY, tampered)


def test_udp_register_round_trip() -> None:
    up = media.parse_udp_up(media.udp_register(TOKEN, KEY, 2**64 - 1))
    assert (up.kind, up.token, up.channel_no, up.frame) == (media.UDP_REGISTER, TOKEN, None, b"")
    assert up.seq == 2**64 - 1 and media.udp_mac_ok(KEY, up)
    for seq in (0, 2**64):
        with pytest.raises(ValueError):
            media.udp_register(TOKEN, KEY, seq)


def test_udp_up_refusals() -> None:
    good = media.udp_media_up(TOKEN, KEY, 7, b"f")
    malformed(media.parse_udp_up, b"")
    malformed(media.parse_udp_up, b"\x00" + good[1:])  # magic
    malformed(media.parse_udp_up, good[:1] + b"\x09" + good[2:])  # kind
    malformed(media.parse_udp_up, media.udp_media_up(TOKEN, KEY, 7, b""))  # no frame
    malformed(media.parse_udp_up, media.udp_media_up(TOKEN, KEY, 7, b"x" * 1401))
    malformed(media.parse_udp_up, media.udp_register(TOKEN, KEY, 1) + b"x")  # register + junk
    malformed(media.parse_udp_up, media.udp_media_down(7, b"f"))  # a downstream datagram


def test_udp_down_round_trip_and_refusals() -> None:
    frame = os.urandom(100)
    mac = media.udp_down_mac(KEY)
    data = media.udp_seal_down(mac, media.udp_media_down(9, frame))
    assert media.parse_udp_down(data) == (9, frame) and media.udp_down_ok(mac, data)
    assert not media.udp_down_ok(media.udp_down_mac(os.urandom(32)), data)
    malformed(media.parse_udp_down, media.udp_media_down(9, b""))
    malformed(media.parse_udp_down, media.udp_media_down(9, b"x" * 1401))
    malformed(media.parse_udp_down, media.udp_media_up(TOKEN, KEY, 9, b"f"))
    malformed(media.parse_udp_down, b"\xcb")
