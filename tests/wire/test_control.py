"""parse_control: every hostile input the issue names gets a coded RemoteProtocolError.

Before this change a deeply nested body raised RecursionError, NaN/huge integers/duplicate keys
and lone surrogates were accepted, and ``v: true`` passed the version check.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.errors import RemoteProtocolError
from bridge.wire import control as p
from bridge.wire.codes import Code

GOOD: dict[str, dict[str, Any]] = {
    "auth": {"credential": {"body": {}}, "sig": "AAAA", "nonce": "n-1"},
    "commit": {"bundle": "AAAA", "ch": "inc-1", "epoch": 2},
    "msg": {"ch": "inc-1", "id": "m-1", "frame": "AAAA"},
    "ack": {"seq": 3},
    "floor-request": {"ch": "inc-1", "priority": "high"},
    "floor-release": {"ch": "inc-1"},
    "emergency-clear": {"ch": "inc-1"},
    "lookup": {"devices": ["us-cbp/gw-1", "ca-rcmp/vessel-1"]},
    "revocation": {"list": {"body": {}}},
    "ping": {},
    "confirm": {"ch": "inc-1", "statement": "AAAA"},
}


def message(t: str, **fields: Any) -> str:
    return json.dumps({"t": t, "v": 1, **GOOD[t], **fields})


def code_of(data: str | bytes) -> Code:
    with pytest.raises(RemoteProtocolError) as e:
        p.parse_control(data)
    assert isinstance(e.value.code, Code)
    return Code(e.value.code)


def test_every_type_in_the_table_has_a_good_example() -> None:
    assert set(GOOD) == set(p.CLIENT_MESSAGES)


@pytest.mark.parametrize("t", sorted(GOOD))
def test_good_messages_pass(t: str) -> None:
    assert p.parse_control(message(t, rid="r-1"))["t"] == t
    assert p.parse_control(message(t).encode())["t"] == t


@pytest.mark.parametrize("depth", [9, 100, 5_000, 200_000])
def test_deep_nesting_is_malformed_not_recursion_error(depth: int) -> None:
    # The old parser raised RecursionError from ~1000 levels: one message dropped a session.
    nested = "[" * depth + "]" * depth
    assert code_of('{"t":"ping","v":1,"x":' + nested + "}") is Code.MALFORMED
    assert code_of('{"t":"msg","v":1,"ch":' + nested + "}") is Code.MALFORMED


def test_nesting_within_the_bound_passes() -> None:
    ok = "[" * 6 + "]" * 6  # depth 7 with the message object
    assert p.parse_control('{"t":"ping","v":1,"x":' + ok + "}")["t"] == "ping"


@pytest.mark.parametrize(
    "text",
    [
        '{"t":"ack","v":1,"seq":NaN}',
        '{"t":"ack","v":1,"seq":1,"x":Infinity}',
        '{"t":"ack","v":1,"seq":1,"x":-Infinity}',
        '{"t":"ack","v":1,"seq":1,"x":1e999}',
        '{"t":"ack","v":1,"seq":' + "9" * 30 + "}",
        '{"t":"ack","v":1,"seq":' + "9" * 5000 + "}",  # past Python's int digit limit
        '{"t":"ack","v":1,"seq":1,"seq":2}',  # duplicate key
        '{"t":"ping","v":1,"t":"ping"}',
        '{"t":"msg","v":1,"ch":"\\ud800","id":"a","frame":""}',  # lone surrogate, escaped
        '{"t":"ping","v":1,"x":"\\udc00"}',  # even in an ignored field
        "\ud800",  # a raw surrogate in a str
        "",
        "[]",
        "null",
        '"ping"',
    ],
)
def test_non_strict_json_is_malformed(text: str) -> None:
    assert code_of(text) is Code.MALFORMED


@pytest.mark.parametrize(
    "data", [b"\xff\xfe", b'{"t":"ping","v":1,"x":"\xc3"}', '{"t":"ping","v":1}'.encode("utf-16")]
)
def test_bytes_that_are_not_utf8_are_malformed(data: bytes) -> None:
    assert code_of(data) is Code.MALFORMED


def test_a_surrogate_pair_is_fine() -> None:
    assert p.parse_control('{"t":"ping","v":1,"x":"\\ud83d\\udce1"}')["x"] == "\U0001f4e1"


@pytest.mark.parametrize("v", ["true", "1.0", '"1"', "2", "null"])
def test_version_must_be_the_integer_one(v: str) -> None:
    assert code_of('{"t":"ping","v":' + v + "}") is Code.BAD_VERSION


@pytest.mark.parametrize("t", ["42", "null", '"nope"', '["ping"]'])
def test_unknown_type(t: str) -> None:
    assert code_of('{"v":1,"t":' + t + "}") is Code.UNKNOWN_TYPE


WRONG: list[Any] = [
    None,
    True,
    0,
    -1,
    2**63,
    1.5,
    "",
    "x" * 300,
    "line\nbreak",
    [],
    ["a"],
    {},
    {"a": 1},
]


def _wrong_cases() -> list[Any]:
    cases = []
    for t, fields in p.CLIENT_MESSAGES.items():
        for name, spec in fields.items():
            for value in WRONG:
                if not spec.accepts(value):
                    cases.append(pytest.param(t, name, value, id=f"{t}-{name}-{value!r:.20}"))
    return cases


@pytest.mark.parametrize(("t", "name", "value"), _wrong_cases())
def test_every_field_refuses_wrong_values(t: str, name: str, value: Any) -> None:
    assert code_of(message(t, **{name: value})) is Code.MALFORMED


@pytest.mark.parametrize(("t", "name"), [(t, n) for t, f in p.CLIENT_MESSAGES.items() for n in f])
def test_every_field_is_required(t: str, name: str) -> None:
    msg = {"t": t, "v": 1, **GOOD[t]}
    del msg[name]
    assert code_of(json.dumps(msg)) is Code.MALFORMED


def test_specific_refusals_the_issue_names() -> None:
    assert code_of(message("msg", id=5)) is Code.MALFORMED  # a non-string message id
    assert code_of(message("msg", ch=["inc-1"])) is Code.MALFORMED
    assert code_of(message("ack", seq=True)) is Code.MALFORMED
    assert code_of(message("ack", seq=-1)) is Code.MALFORMED
    assert code_of(message("lookup", devices=[1, 2])) is Code.MALFORMED
    assert code_of(message("lookup", devices=["us-cbp/gw-1\n"])) is Code.MALFORMED
    assert code_of(message("floor-request", priority="urgent")) is Code.MALFORMED
    assert code_of(message("ping", rid={"a": 1})) is Code.MALFORMED
    assert code_of(message("ping", rid="x" * 129)) is Code.MALFORMED
    assert p.parse_control(message("ping", rid=None))["t"] == "ping"
    assert p.parse_control(message("ping", rid=7))["rid"] == 7


def test_sizes() -> None:
    big = "A" * p.MAX_SMALL_CONTROL
    assert code_of(message("msg", frame=big)) is Code.TOO_LARGE
    assert p.parse_control(message("commit", bundle=big))["t"] == "commit"
    assert code_of("x" * (p.MAX_CONTROL + 1)) is Code.TOO_LARGE


def test_the_detail_never_echoes_the_input() -> None:
    secret = "s3cr3t-content"
    for text in [
        '{"t":"msg","v":1,"ch":"c","id":["' + secret + '"],"frame":""}',
        '{"t":"' + secret + '","v":1}',
        '{"t":"ping","v":1,"' + secret + '":NaN}',
        secret,
    ]:
        with pytest.raises(RemoteProtocolError) as e:
            p.parse_control(text)
        assert secret not in str(e.value) and secret not in e.value.detail


def test_non_text_input() -> None:
    assert code_of(12345) is Code.MALFORMED  # type: ignore[arg-type]


def test_unb64_is_coded() -> None:
    with pytest.raises(RemoteProtocolError) as e:
        p.unb64("not base64!")
    assert e.value.code is Code.MALFORMED
    assert p.unb64(p.b64(b"\x00\x01")) == b"\x00\x01"


def test_parse_json_is_the_same_strict_reader_for_any_message() -> None:
    # For the endpoint's reading of relay messages: any JSON value, strictly, or malformed.
    assert p.parse_json('{"t":"floor-state","v":1,"since":1.5}')["since"] == 1.5
    for text in ("[" * 5000 + "]" * 5000, '{"a":NaN}', '{"a":1,"a":2}', '"\\udc00"', "{"):
        with pytest.raises(RemoteProtocolError) as e:
            p.parse_json(text)
        assert e.value.code is Code.MALFORMED
