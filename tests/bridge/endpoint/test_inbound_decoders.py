"""Fuzzers for the decoders of what the relay delivers to an endpoint: control messages, the
welcome's channel list, and commit bundles. Each may raise only its documented error."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.endpoint.commits import decode_bundle
from bridge.endpoint.inbound import RELAY_MESSAGES, parse_relay_message, welcome_channels
from bridge.errors import RemoteProtocolError
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
