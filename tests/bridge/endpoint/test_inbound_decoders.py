"""Fuzzers for the decoders of what the relay delivers to an endpoint: control messages, the
welcome's channel list, and commit bundles. Each may raise only its documented error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.endpoint.commits import decode_bundle
from bridge.endpoint.inbound import RELAY_MESSAGES, parse_relay_message, welcome_channels
from bridge.errors import RemoteProtocolError
from bridge.wire.codes import Code
from crypto.errors import VerificationError
from tests.world import make_world

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


@st.composite
def controls(draw: st.DrawFn) -> str:
    t = draw(st.sampled_from([*RELAY_MESSAGES, "other"]))
    required, optional = RELAY_MESSAGES.get(t, ({}, {}))
    msg: dict[str, Any] = {"t": t, "v": draw(st.sampled_from([1, 1, 0, True]))}
    for name in [*required, *optional]:
        if draw(st.integers(0, 3)):
            msg[name] = draw(json_values)
    return json.dumps(msg)


@settings(max_examples=500, deadline=None)
@given(controls() | json_values.map(json.dumps) | st.text(max_size=30) | st.binary(max_size=30))
def test_parse_relay_message_raises_only_remote_protocol_errors(data: str | bytes) -> None:
    try:
        msg = parse_relay_message(data)
    except RemoteProtocolError:
        return
    if msg is not None:  # what passes has exactly the types the table promises
        required, optional = RELAY_MESSAGES[msg["t"]]
        for name, kind in {**required, **{k: v for k, v in optional.items() if k in msg}}.items():
            assert isinstance(msg[name], kind)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["channels", "x"]), json_values) | json_values)
def test_welcome_channels_raises_only_remote_protocol_errors(welcome: Any) -> None:
    try:
        pairs = welcome_channels(welcome)
    except RemoteProtocolError:
        return
    assert all(isinstance(ch, str) and 1 <= no < 2**32 for ch, no in pairs)


_W = make_world()
_D = _W.device("us-cbp", "disp", ("dispatcher", "member"))
GOOD = json.loads(_W.commit(_D, [(_D, "dispatcher")], None).encode())


@st.composite
def bundles(draw: st.DrawFn) -> bytes:
    """A genuine bundle with parts replaced by junk, or junk outright."""
    obj = json.loads(json.dumps(GOOD))
    for key in draw(st.lists(st.sampled_from(sorted(obj)), max_size=3)):
        obj[key] = draw(json_values)
    if draw(st.booleans()):
        inner = obj.get("commit")
        if isinstance(inner, dict) and isinstance(inner.get("body"), dict):
            body = inner["body"]
            body[draw(st.sampled_from(sorted(body)))] = draw(json_values)
    return json.dumps(obj).encode()


@settings(max_examples=300, deadline=None)
@given(bundles() | json_values.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=40))
def test_decode_bundle_raises_only_verification_errors(data: bytes) -> None:
    try:
        bundle = decode_bundle(data)
    except VerificationError:
        return
    assert decode_bundle(bundle.encode()).commit.hash == bundle.commit.hash


def test_decode_bundle_refuses_deep_nesting() -> None:
    deep = b'{"commit": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    try:
        decode_bundle(deep)
    except VerificationError as exc:
        assert exc.code.value == "malformed"
    else:
        raise AssertionError("a nested bundle was accepted")


STRICT = {
    # Before, json.loads took all of these: the last of two keys won, NaN and a 2**64 became
    # numbers, and a lone surrogate reached the application.
    "duplicate key": '{"t":"accepted","v":1,"id":"m1","id":"m2"}',
    "NaN": '{"t":"pong","v":1,"x":NaN}',
    "Infinity": '{"t":"pong","v":1,"x":-Infinity}',
    "beyond 64 bits": '{"t":"revocation-ok","v":1,"agency":"us-cbp","number":18446744073709551616}',
    "lone surrogate": '{"t":"accepted","v":1,"id":"\\ud800"}',
    "deep": '{"t":"pong","v":1,"x":' + "[" * 50 + "]" * 50 + "}",
}


@pytest.mark.parametrize("case", sorted(STRICT))
def test_relay_messages_are_read_strictly(case: str) -> None:
    with pytest.raises(RemoteProtocolError) as e:
        parse_relay_message(STRICT[case])
    assert e.value.code == Code.MALFORMED


def test_the_authentication_messages_are_in_the_table() -> None:
    hello = {"t": "welcome", "v": 1, "udp_token": "dA==", "udp_key": "aw==", "udp_port": 9}
    assert parse_relay_message(json.dumps(hello)) == hello
    for bad in ({"udp_port": 65_536}, {"udp_port": "9"}, {"udp_token": None}, {"channels": {}}):
        with pytest.raises(RemoteProtocolError):
            parse_relay_message(json.dumps({**hello, **bad}))
    with pytest.raises(RemoteProtocolError):
        parse_relay_message(json.dumps({"t": "challenge", "v": 1, "nonce": 5, "relay": "r"}))
