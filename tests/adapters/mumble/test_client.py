"""The sans-IO Mumble client against a scripted server byte stream, on a fake clock."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.mumble.client import (
    ChannelMissing,
    ClientConfig,
    Closed,
    Connected,
    Denied,
    Joined,
    MumbleClient,
    TextReceived,
    UserLeft,
    VoiceReceived,
)
from adapters.mumble.proto import (
    FrameDecoder,
    MsgType,
    MumbleProtocolError,
    decode_message,
    encode_frame,
    encode_message,
)
from adapters.mumble.voice import VoicePacket, encode_voice, parse_voice

T0 = 1000.0


def frame(kind: MsgType, **fields: Any) -> bytes:
    return encode_frame(kind, encode_message(kind, **fields))


def sent(client: MumbleClient) -> list[tuple[MsgType, Any]]:
    out: list[tuple[MsgType, Any]] = []
    for kind, payload in FrameDecoder().feed(client.data_to_send()):
        msg = MsgType(kind)
        body = parse_voice(payload, from_server=False) if msg == MsgType.UDPTunnel else None
        out.append((msg, body if body is not None else decode_message(msg, payload)))
    return out


def server_hello(session: int = 5, *, dispatch: bool = True) -> bytes:
    data = frame(MsgType.CodecVersion, alpha=-2147483637, beta=0, prefer_alpha=True, opus=True)
    data += frame(MsgType.ChannelState, channel_id=0, name="Root")
    if dispatch:
        data += frame(MsgType.ChannelState, channel_id=3, parent=0, name="Dispatch")
    data += frame(MsgType.UserState, session=2, name="alice", channel_id=3)
    data += frame(MsgType.UserState, session=session, name="bridge", channel_id=0)
    return data + frame(MsgType.ServerSync, session=session, max_bandwidth=72000)


def joined_client() -> MumbleClient:
    client = MumbleClient(ClientConfig("bridge", "Dispatch"))
    client.connection_made(T0)
    client.receive_data(server_hello(), T0 + 0.1)
    client.receive_data(frame(MsgType.UserState, session=5, actor=5, channel_id=3), T0 + 0.2)
    client.data_to_send()
    client.events_received()
    return client


def test_handshake_version_then_authenticate_with_opus() -> None:
    client = MumbleClient(ClientConfig("bridge", "Dispatch", password="pw"))
    client.connection_made(T0)
    (k1, version), (k2, auth) = sent(client)
    assert (k1, k2) == (MsgType.Version, MsgType.Authenticate)
    assert version["version"] == 0x010304
    assert auth == {"username": "bridge", "password": "pw", "opus": True}


def test_sync_then_join_the_configured_channel() -> None:
    client = MumbleClient(ClientConfig("bridge", "Dispatch"))
    client.connection_made(T0)
    client.data_to_send()
    client.receive_data(server_hello(), T0 + 0.1)
    assert client.events_received() == [Connected(5)]
    assert sent(client) == [(MsgType.UserState, {"session": 5, "channel_id": 3})]
    assert not client.joined
    client.receive_data(frame(MsgType.UserState, session=5, actor=5, channel_id=3), T0 + 0.2)
    assert client.events_received() == [Joined(3, "Dispatch")]
    assert client.joined


def test_missing_channel_is_said_once_and_joined_when_it_appears() -> None:
    client = MumbleClient(ClientConfig("bridge", "Dispatch"))
    client.connection_made(T0)
    client.data_to_send()
    client.receive_data(server_hello(dispatch=False), T0)
    assert client.events_received() == [Connected(5), ChannelMissing("Dispatch")]
    assert sent(client) == []
    client.receive_data(frame(MsgType.ChannelState, channel_id=9, parent=0, name="Other"), T0)
    assert client.events_received() == [] and sent(client) == []
    client.receive_data(frame(MsgType.ChannelState, channel_id=8, parent=0, name="Dispatch"), T0)
    assert sent(client) == [(MsgType.UserState, {"session": 5, "channel_id": 8})]


def test_moved_away_by_an_admin_moves_back() -> None:
    client = joined_client()
    client.receive_data(frame(MsgType.UserState, session=5, actor=2, channel_id=0), T0 + 1)
    assert sent(client) == [(MsgType.UserState, {"session": 5, "channel_id": 3})]
    # a state change that is not a move (a comment) does not trigger another join
    client.receive_data(frame(MsgType.UserState, session=5, comment="x"), T0 + 1)
    assert sent(client) == []


def test_users_leaving_our_channel() -> None:
    client = joined_client()
    client.receive_data(frame(MsgType.UserState, session=2, channel_id=0), T0 + 1)
    client.receive_data(frame(MsgType.UserState, session=7, name="bob", channel_id=3), T0 + 1)
    client.receive_data(frame(MsgType.UserRemove, session=7), T0 + 1)
    assert client.events_received() == [UserLeft(2, "alice"), UserLeft(7, "bob")]


def test_text_in_our_channel_or_private_only() -> None:
    client = joined_client()
    client.receive_data(frame(MsgType.TextMessage, actor=2, channel_id=[3], message="hi"), T0)
    client.receive_data(frame(MsgType.TextMessage, actor=2, channel_id=[0], message="no"), T0)
    client.receive_data(frame(MsgType.TextMessage, actor=2, session=[5], message="psst"), T0)
    client.receive_data(frame(MsgType.TextMessage, actor=5, channel_id=[3], message="me"), T0)
    assert client.events_received() == [
        TextReceived(2, "alice", "hi", False),
        TextReceived(2, "alice", "psst", True),
    ]
    client.send_text("<b>hello</b>")
    assert sent(client) == [(MsgType.TextMessage, {"channel_id": [3], "message": "<b>hello</b>"})]
    with pytest.raises(ValueError):
        client.send_text("x" * 5001)


def test_voice_in_and_out() -> None:
    client = joined_client()
    wire = encode_voice(VoicePacket(2, 40, b"\xfc\x01", last=False))
    client.receive_data(encode_frame(MsgType.UDPTunnel, wire), T0)
    wire = encode_voice(VoicePacket(99, 1, b"\xfc\x02", last=False))  # unknown session
    client.receive_data(encode_frame(MsgType.UDPTunnel, wire), T0)
    assert client.events_received() == [VoiceReceived(2, "alice", 40, b"\xfc\x01", False)]
    assert client.dropped_voice == 1
    for i in range(3):
        assert client.send_voice(bytes([i]), last=i == 2)
    assert sent(client) == [
        (MsgType.UDPTunnel, VoicePacket(None, 0, b"\x00", False)),
        (MsgType.UDPTunnel, VoicePacket(None, 2, b"\x01", False)),
        (MsgType.UDPTunnel, VoicePacket(None, 4, b"\x02", True)),
    ]


def test_no_voice_before_joining() -> None:
    client = MumbleClient(ClientConfig("bridge", "Dispatch"))
    client.connection_made(T0)
    client.data_to_send()
    assert not client.send_voice(b"\x00")
    assert client.dropped_voice == 1 and client.data_to_send() == b""


def test_pings_every_15_s_and_silence_is_a_dead_link() -> None:
    client = joined_client()
    assert client.get_timer() == pytest.approx(T0 + 15)
    client.handle_timer(T0 + 15)
    ((kind, ping),) = sent(client)
    assert kind == MsgType.Ping and ping["timestamp"] == int((T0 + 15) * 1000)
    client.receive_data(frame(MsgType.Ping, timestamp=1), T0 + 15.1)  # heard
    assert client.get_timer() == pytest.approx(T0 + 30)
    for now in (T0 + 30, T0 + 45):
        client.handle_timer(now)
    assert client.events_received() == []
    client.handle_timer(T0 + 15.1 + 35)
    assert client.events_received() == [Closed("ping-timeout")]
    assert client.state == "closed" and client.get_timer() is None


def test_no_server_sync_in_time() -> None:
    client = MumbleClient(ClientConfig("bridge", sync_timeout=10))
    client.connection_made(T0)
    client.handle_timer(T0 + 10)
    assert client.events_received() == [Closed("sync-timeout")]


def test_reject_and_permission_denied() -> None:
    client = joined_client()
    client.receive_data(frame(MsgType.PermissionDenied, type=1, permission=8), T0)
    assert client.events_received() == [Denied("permission 8")]
    client = MumbleClient(ClientConfig("bridge"))
    client.connection_made(T0)
    client.receive_data(frame(MsgType.Reject, type=5, reason="Username already in use"), T0)
    assert client.events_received() == [Closed("rejected: Username already in use")]
    assert client.state == "closed"


def test_malformed_frame_closes_and_raises() -> None:
    client = joined_client()
    with pytest.raises(MumbleProtocolError) as err:
        client.receive_data(encode_frame(MsgType.UserState, b"\x0b"), T0)
    assert err.value.code == "bad-wire-type"
    assert client.state == "closed"
    assert client.events_received() == [Closed("bad-wire-type")]
    with pytest.raises(MumbleProtocolError):
        MumbleClient(ClientConfig("b"), max_frame=10).receive_data(b"\x00\x03\x00\x00\x00\x0b", 0)


KINDS = st.sampled_from([int(k) for k in MsgType] + [99])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(KINDS, st.binary(max_size=40)), max_size=8))
def test_fuzz_client_raises_only_protocol_errors(frames: list[tuple[int, bytes]]) -> None:
    client = MumbleClient(ClientConfig("bridge", "Dispatch"))
    client.connection_made(T0)
    client.receive_data(server_hello(), T0)
    try:
        for kind, payload in frames:
            client.receive_data(encode_frame(kind, payload), T0 + 1)
    except MumbleProtocolError:
        assert client.state == "closed"
    client.events_received()
