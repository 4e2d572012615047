"""A fuzzer for the signed-message decoders of :mod:`crypto.messages`: whatever another member
encrypts, :func:`decode_signed` returns a valid object or raises VerificationError(MALFORMED) —
any other exception (RecursionError from deep nesting was one) fails the test."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.encoding import b64e
from crypto.errors import Refusal, VerificationError
from crypto.messages import BurstSeal, SignedMessage, decode_signed

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
MESSAGE_FIELDS = {
    "id": st.text(max_size=140),
    "channel": st.text(max_size=8),
    "sender": st.sampled_from(["us-cbp/disp", "bad id", ""]),
    "ts": st.integers(-(2**70), 2**70),
    "kind": st.sampled_from(["text", "data", "voice"]),
    "body": st.binary(max_size=16).map(b64e) | st.text(max_size=8),
    "sig": st.binary(max_size=70).map(b64e),
}
SEAL_FIELDS = {
    "channel": st.text(max_size=8),
    "epoch": st.integers(-2, 2**66),
    "sender": st.sampled_from(["ca-rcmp/boat", "nobody"]),
    "burst": st.text(max_size=140),
    "frames": st.integers(-2, 2**66),
    "first_ctr": st.integers(-2, 2**66),
    "last_ctr": st.integers(-2, 2**66),
    "digest": st.binary(max_size=40).map(b64e),
    "sig": st.binary(max_size=70).map(b64e),
}


@st.composite
def signed_objects(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["message", "seal", "other"]))
    fields = MESSAGE_FIELDS if kind == "message" else SEAL_FIELDS
    obj: dict[str, Any] = {"type": kind}
    for name, strategy in fields.items():
        choice = draw(st.integers(0, 9))
        if choice < 7:
            obj[name] = draw(strategy)
        elif choice < 9:
            obj[name] = draw(json_values)  # wrong type, most likely
    return json.dumps(obj).encode()


def nested(depth: int, opener: str = "[") -> bytes:
    closer = {"[": "]", "{": "}"}[opener]
    inner = (
        '{"a":' * depth + "1" + "}" * depth if opener == "{" else opener * depth + closer * depth
    )
    return ('{"type": "message", "body": ' + inner + "}").encode()


@settings(max_examples=500, deadline=None)
@given(signed_objects() | json_values.map(lambda v: json.dumps(v).encode()) | st.binary())
def test_decode_signed_raises_only_malformed(data: bytes) -> None:
    try:
        item = decode_signed(data)
    except VerificationError as exc:
        assert exc.code is Refusal.MALFORMED
        return
    assert isinstance(item, SignedMessage | BurstSeal)
    assert decode_signed(item.encode()) == item  # decode -> encode is the identity


@pytest.mark.parametrize("data", [nested(50_000), nested(50_000, "{"), b"[" * 100_000])
def test_deep_nesting_is_malformed_not_a_recursion_error(data: bytes) -> None:
    with pytest.raises(VerificationError) as e:
        decode_signed(data)
    assert e.value.code is Refusal.MALFORMED
