"""Fault 5 at the receiver: content that fails to parse after decryption is counted and dropped,
and whatever the relay sends, :meth:`EndpointCore.receive_control` raises nothing (a fuzzer)."""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.endpoint import events as ev
from bridge.endpoint.core import MALFORMED_CONTENT
from bridge.endpoint.inbound import RELAY_MESSAGES
from crypto.group import CONTEXT_DATA, ChannelMember
from tests.bridge.endpoint.rig import CH, NO, Clock, Node
from tests.world import World, make_world

DEEP = b"[" * 20_000 + b"]" * 20_000


def channel(tmp: Path) -> tuple[World, Node, ChannelMember]:
    w = make_world()
    disp = w.device("us-cbp", "disp", ("dispatcher", "member"))
    boat = w.device("ca-rcmp", "boat", ("member",))
    bundle = w.commit(disp, [(disp, "dispatcher"), (boat, "member")], None)
    node = Node(w, boat, tmp / "boat.db", Clock(w.now + 5))
    node.commit(bundle)
    tx = w.member(disp)
    tx.process_commit(bundle, w.now)
    return w, node, tx


def test_nested_json_from_a_real_member_is_counted_and_dropped(tmp_path: Path) -> None:
    _, node, tx = channel(tmp_path)
    try:
        node.deliver("msg", tx.protect(DEEP, CONTEXT_DATA))  # valid SFrame, body nested JSON
        inner = b'{"type": "message", "id": ' + DEEP + b"}"
        node.deliver("msg", tx.protect(inner, CONTEXT_DATA))
        node.deliver("msg", tx.protect(b"\xff not even text", CONTEXT_DATA))
        codes = [e.code for e in node.take(ev.Error)]
        assert codes == [MALFORMED_CONTENT] * 3
        assert node.core.stats["malformed_content"] == 3
        assert node.core.stats["malformed_from_relay"] == 0
        # Nothing else was harmed: the next message is delivered, every delivery acknowledged.
        node.deliver("msg", tx.sign_message("ok-1", "text", b"still here", 1)[1])
        (msg,) = node.take(ev.Message)
        assert msg.body == b"still here"
        assert [m["seq"] for m in node.sent if m["t"] == "ack"][-4:] == [2, 3, 4, 5]
    finally:
        node.close()


def test_nested_json_from_the_relay_is_malformed_not_fatal(tmp_path: Path) -> None:
    _, node, _ = channel(tmp_path)
    try:
        node.core.receive_control(DEEP.decode(), node.clock.now)
        node.core.receive_control('{"t": "floor", "v": 1, "ch": ' + DEEP.decode() + "}", 0)
        assert node.core.stats["malformed_from_relay"] == 2
    finally:
        node.close()


# -- the fuzzer --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
FIELDS = sorted({f for req, opt in RELAY_MESSAGES.values() for f in (*req, *opt)})


def field_value(name: str) -> st.SearchStrategy[Any]:
    typed = {
        "seq": st.integers(-2, 2**64),
        "no": st.integers(-1, 2**33),
        "epoch": st.integers(-1, 5),
        "kind": st.sampled_from(["commit", "msg", "other"]),
        "ch": st.sampled_from([CH, "other", ""]),
        "event": st.sampled_from(["granted", "denied", "queued", "released", "revoked", "idle"])
        | st.sampled_from(["emergency", "new"]),
        "body": st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode())
        | json_values.map(lambda v: base64.b64encode(json.dumps(v).encode()).decode())
        | st.text(max_size=10),
        "device": st.sampled_from(["ca-rcmp/boat", "us-cbp/disp", None]),
    }.get(name, st.nothing())
    return typed | json_values


@st.composite
def relay_messages(draw: st.DrawFn) -> Any:
    t = draw(st.sampled_from([*RELAY_MESSAGES, "welcome", "new-type"]))
    msg: dict[str, Any] = {"t": t, "v": draw(st.sampled_from([1, 1, 1, 2, None, "1"]))}
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=8)):
        msg[name] = draw(field_value(name))
    required, _ = RELAY_MESSAGES.get(t, ({}, {}))
    for name in required:  # mostly well-formed, so the handlers behind the parser are reached
        if name not in msg and draw(st.booleans()):
            msg[name] = draw(field_value(name))
    return msg


inputs = (
    relay_messages().map(json.dumps)
    | relay_messages()
    | json_values.map(json.dumps)
    | st.text(max_size=40)
    | st.binary(max_size=40)
)


def test_receive_control_raises_nothing_whatever_the_relay_sends() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _, node, tx = channel(Path(tmp))
        core, now = node.core, node.clock.now

        @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(inputs, st.binary(max_size=60))
        def feed(data: Any, media: bytes) -> None:
            core.receive_control(data, now)  # any exception here fails the test
            core.receive_media(NO, media, now)
            for job in core.jobs():
                core.job_done(job, job.run(), now)
            core.data_to_send()
            core.events_received()
            core.answers()

        try:
            feed()
            # …and the core still works afterwards.
            node.deliver("msg", tx.sign_message("after", "text", b"after the storm", 1)[1])
            assert [m.body for m in node.take(ev.Message)] == [b"after the storm"]
        finally:
            node.close()


def test_decrypted_garbage_from_a_member_raises_nothing() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _, node, tx = channel(Path(tmp))
        seq = iter(range(1000, 10**6))

        @settings(max_examples=200, deadline=None)
        @given(
            json_values.map(lambda v: json.dumps(v).encode())
            | st.fixed_dictionaries(
                {"type": st.sampled_from(["message", "seal"])},
                optional={k: json_values for k in ("id", "sender", "body", "sig", "ts", "kind")},
            ).map(lambda v: json.dumps(v).encode())
            | st.binary(max_size=80)
        )
        def feed(payload: bytes) -> None:
            frame = tx.protect(payload, CONTEXT_DATA)
            b64 = base64.b64encode(frame).decode()
            n = next(seq)
            msg = {"t": "deliver", "v": 1, "seq": n, "kind": "msg", "ch": CH, "id": f"x{n}"}
            node.core.receive_control({**msg, "body": b64}, node.clock.now)  # raises nothing
            node.core.events_received()
            node.core.data_to_send()

        try:
            feed()
            assert node.core.stats["malformed_content"] > 0
            assert node.core.stats["messages_received"] == 0
        finally:
            node.close()
