"""Fuzzers for the wire decoders: each may raise RemoteProtocolError with a wire Code and nothing
else, whatever it is given; anything else (RecursionError, TypeError, …) fails the test.

The inputs: random bytes and text, random JSON of every shape (deep nesting included), and
valid messages with one field replaced by random JSON or the text cut or spliced.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.errors import RemoteProtocolError
from bridge.wire import control as p
from bridge.wire import media
from bridge.wire.codes import Code
from tests.wire.test_control import GOOD

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["inc-1", "us-cbp/gw-1", "normal", "AAAA", "\ud800", "a\nb", "ping"]),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def nested(depth: int, leaf: str = "0") -> str:
    return "[" * depth + leaf + "]" * depth


def messages() -> st.SearchStrategy[str | bytes]:
    valid = st.sampled_from(sorted(GOOD)).map(lambda t: {"t": t, "v": 1, **GOOD[t]})

    def replace_field(msg: dict[str, Any], key: str, value: Any) -> str:
        return json.dumps({**msg, key: value})

    keys = st.sampled_from(
        [
            "t",
            "v",
            "ch",
            "id",
            "seq",
            "frame",
            "bundle",
            "devices",
            "rid",
            "priority",
            "credential",
            "list",
            "sig",
            "nonce",
            "x",
        ]
    )
    one_field = st.builds(replace_field, valid, keys, JSON)
    deep = st.builds(
        lambda msg, key, depth: json.dumps(msg)[:-1] + f',"{key}":' + nested(depth) + "}",
        valid,
        keys,
        st.integers(1, 3000),
    )

    def splice(text: str, at: int, junk: str) -> str:
        at %= len(text) + 1
        return text[:at] + junk + text[at:]

    spliced = st.builds(splice, valid.map(json.dumps), st.integers(0, 200), st.text(max_size=8))
    cut = st.builds(lambda t, n: t[: n % (len(t) + 1)], valid.map(json.dumps), st.integers(0, 200))
    return st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200),
        JSON.map(lambda v: json.dumps(v)),
        one_field,
        one_field.map(lambda t: t.encode("utf-8", "surrogatepass")),
        deep,
        spliced,
        cut,
    )


@FUZZ
@given(messages())
def test_parse_control_raises_only_coded_remote_errors(data: str | bytes) -> None:
    try:
        msg = p.parse_control(data)
    except RemoteProtocolError as exc:
        assert isinstance(exc.code, Code)
        return
    assert msg["v"] == 1 and msg["t"] in p.CLIENT_MESSAGES
    for name, spec in p.CLIENT_MESSAGES[msg["t"]].items():
        assert spec.accepts(msg[name])
    json.dumps(msg, allow_nan=False).encode("utf-8")  # storable and echoable as it is


def _check_media(parse: Any, data: bytes) -> Any:
    try:
        return parse(data)
    except RemoteProtocolError as exc:
        assert exc.code is Code.MALFORMED
        return None


FRAMES = st.binary(min_size=0, max_size=media.MAX_SFRAME + 2)


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=1500),
        st.builds(media.ws_media, st.integers(0, 255), st.integers(0, 2**32 - 1), FRAMES),
    )
)
def test_parse_ws_media_raises_only_malformed(data: bytes) -> None:
    out = _check_media(media.parse_ws_media, data)
    if out is not None:
        kind, channel_no, frame = out
        assert media.ws_media(kind, channel_no, frame) == data
        assert 1 <= len(frame) <= media.MAX_SFRAME


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=1500),
        st.binary(max_size=40).map(lambda b: bytes([media.UDP_MAGIC]) + b),
        st.builds(
            media.udp_media_up,
            st.binary(min_size=8, max_size=8),
            st.binary(max_size=32),
            st.integers(0, 2**32 - 1),
            FRAMES,
        ),
        st.builds(
            lambda t, k, seq, junk: media.udp_register(t, k, seq) + junk,
            st.binary(min_size=8, max_size=8),
            st.binary(max_size=32),
            st.integers(1, 2**64 - 1),
            st.binary(max_size=3),
        ),
    ),
    st.binary(min_size=32, max_size=32),
)
def test_parse_udp_up_raises_only_malformed(data: bytes, key: bytes) -> None:
    up = _check_media(media.parse_udp_up, data)
    if up is not None:
        assert up.signed + up.mac == data and len(up.token) == media.TOKEN_LEN
        assert isinstance(media.udp_mac_ok(key, up), bool)
        if up.kind == media.UDP_MEDIA:
            assert up.channel_no is not None and 1 <= len(up.frame) <= media.MAX_SFRAME
        else:
            assert up.kind == media.UDP_REGISTER and up.channel_no is None


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=1500), st.builds(media.udp_media_down, st.integers(0, 2**32 - 1), FRAMES)
    )
)
def test_parse_udp_down_raises_only_malformed(data: bytes) -> None:
    out = _check_media(media.parse_udp_down, data)
    if out is not None:
        assert media.udp_media_down(*out)[: -media.MAC_LEN] == data[: -media.MAC_LEN]
