"""Attack 7 at the endpoint core: the emergency state is a signed member claim, not a relay one.

Before, a member learnt of an emergency only from the relay's floor messages, so a hostile
relay could fake one or hide one. Now the declaring device signs ``{"state": "declare"}`` and
``{"state": "clear"}`` as channel messages (:mod:`bridge.endpoint.emergency`), and every
emergency event says where it came from: :class:`~bridge.endpoint.events.EmergencySigned`
(``signed``, verified, with the signer's device) or :class:`~bridge.endpoint.events.Emergency`
(``relay``, a claim)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from bridge.endpoint import events as ev
from bridge.endpoint.emergency import CLEAR_REFUSED
from crypto.group import CONTEXT_DATA, ChannelMember
from crypto.messages import OTHER_CHANNEL, SignedMessage
from tests.bridge.endpoint.rig import CH, Clock, Node
from tests.world import Device, World, make_world

DECLARE = b'{"state":"declare"}'
CLEAR = b'{"state":"clear"}'


def _setup(tmp: Path) -> tuple[World, dict[str, Device], Node, dict[str, ChannelMember]]:
    w = make_world()
    disp = w.device("us-cbp", "disp", ("dispatcher", "member"))
    boat = w.device("ca-rcmp", "boat", ("member",))
    officer = w.device("us-cbp", "officer", ("member",))
    devs = {"disp": disp, "boat": boat, "officer": officer}
    bundle = w.commit(disp, [(disp, "dispatcher"), (boat, "member"), (officer, "member")], None)
    node = Node(w, boat, tmp / "boat.db", Clock(w.now + 5))
    node.commit(bundle)
    txs = {}
    for name in ("disp", "officer"):
        txs[name] = w.member(devs[name])
        txs[name].process_commit(bundle, w.now)
    return w, devs, node, txs


def _signed(tx: ChannelMember, msg_id: str, body: bytes) -> bytes:
    return tx.sign_message(msg_id, "emergency", body, 1_000)[1]


def test_a_signed_declare_and_clear_name_the_verified_declarer(tmp_path: Path) -> None:
    _, devs, node, txs = _setup(tmp_path)
    try:
        node.deliver("msg", _signed(txs["officer"], "e-1", DECLARE))
        (declared,) = node.take(ev.EmergencySigned)
        assert declared == ev.EmergencySigned(CH, True, devs["officer"].id, "signed", True)
        assert node.take(ev.Emergency) == []  # no relay claim
        assert node.core.signed_emergency == {CH: devs["officer"].id}
        assert node.core.emergency == {}  # the relay said nothing: no relay claim either
        assert node.take(ev.Message) == []  # a safety signal, not a text
        node.deliver("msg", _signed(txs["officer"], "e-2", CLEAR))
        (cleared,) = node.take(ev.EmergencySigned)
        assert (cleared.active, cleared.by, cleared.source, cleared.verified) == (
            False,
            devs["officer"].id,
            "signed",
            True,
        )
        assert node.core.signed_emergency == {CH: None}
        # The relay replays the declaration under a new delivery id: it is not shown again.
        node.deliver("msg", _signed(txs["officer"], "e-1", DECLARE), "replay")
        assert node.take(ev.EmergencySigned) == []
        assert node.core.signed_emergency == {CH: None}
    finally:
        node.close()


def test_only_the_declarer_or_a_dispatcher_clears(tmp_path: Path) -> None:
    _, devs, node, txs = _setup(tmp_path)
    try:
        node.deliver("msg", _signed(txs["disp"], "e-1", DECLARE))
        node.deliver("msg", _signed(txs["officer"], "e-2", CLEAR))  # neither: refused
        assert [e.code for e in node.take(ev.Error)] == [CLEAR_REFUSED]
        assert [e.active for e in node.take(ev.EmergencySigned)] == [True]
        assert node.core.signed_emergency == {CH: devs["disp"].id}
        node.deliver("msg", _signed(txs["officer"], "e-3", DECLARE))  # officer's own
        node.deliver("msg", _signed(txs["disp"], "e-4", CLEAR))  # a dispatcher clears
        assert [(e.active, e.by) for e in node.take(ev.EmergencySigned)] == [
            (True, devs["officer"].id),
            (False, devs["disp"].id),
        ]
        assert node.core.signed_emergency == {CH: None}
    finally:
        node.close()


def test_forged_unsigned_and_misbound_declarations_are_refused(tmp_path: Path) -> None:
    _, devs, node, txs = _setup(tmp_path)
    officer, disp = txs["officer"], devs["disp"]
    try:
        assert officer.last_commit is not None
        commit = officer.last_commit.hash
        genuine, _ = officer.sign_message("e-1", "emergency", CLEAR, 1_000)
        # 1. the officer's signed clear turned into a declare: the signature no longer holds
        tampered = SignedMessage(
            genuine.id, CH, genuine.sender, 1_000, "emergency", DECLARE, genuine.signature, commit
        )
        node.deliver("msg", officer.protect(tampered.encode(), CONTEXT_DATA))
        # 2. unsigned
        unsigned = SignedMessage(
            "e-2", CH, devs["officer"].id, 1_000, "emergency", DECLARE, b"", commit
        )
        node.deliver("msg", officer.protect(unsigned.encode(), CONTEXT_DATA))
        # 3. an insider (the officer) declares in the dispatcher's name, signed with its own key
        claimed = SignedMessage("e-3", CH, disp.id, 1_000, "emergency", DECLARE, commit=commit)
        forged = claimed.signed(devs["officer"].keys.sign)
        node.deliver("msg", officer.protect(forged.encode(), CONTEXT_DATA))
        errors = node.take(ev.Error)
        assert len(errors) == 3 and all(e.code == "bad-signature" for e in errors), errors
        # 4. a genuine declaration signed for another channel, encrypted into this one
        other = SignedMessage(
            "e-4", "inc-2", devs["officer"].id, 1_000, "emergency", DECLARE, commit=commit
        ).signed(devs["officer"].keys.sign)
        node.deliver("msg", officer.protect(other.encode(), CONTEXT_DATA))
        (refused,) = node.take(ev.BindingRefused)
        assert (refused.sender, refused.reason) == (devs["officer"].id, OTHER_CHANNEL)
        # 5. signed, but not a declare or a clear
        node.deliver("msg", _signed(officer, "e-5", b'{"state":"panic"}'))
        assert [e.code for e in node.take(ev.Error)] == ["malformed-content"]
        assert node.take(ev.EmergencySigned) == [] and node.take(ev.Emergency) == []
        assert node.core.signed_emergency == {}
    finally:
        node.close()


def test_a_relay_floor_message_alone_is_labelled_a_relay_claim(tmp_path: Path) -> None:
    _, devs, node, _ = _setup(tmp_path)
    try:
        node.relay("floor", ch=CH, event="emergency", device=devs["disp"].id, active=True)
        node.relay("floor-state", ch=CH, emergency=True, emergency_by=devs["disp"].id)
        got = node.take(ev.Emergency)
        assert len(got) == 2
        for e in got:
            assert (e.active, e.by, e.source, e.verified) == (True, devs["disp"].id, "relay", False)
        assert node.core.emergency == {CH: True}
        assert node.take(ev.EmergencySigned) == []
        assert node.core.signed_emergency == {}  # nobody signed anything
    finally:
        node.close()


def _msgs(sent: list[dict[str, Any]]) -> list[str]:
    return [m["t"] for m in sent]


def test_declaring_and_clearing_send_the_signed_message_first(tmp_path: Path) -> None:
    _, devs, node, txs = _setup(tmp_path)
    try:
        node.sent = []
        node.core.request_floor(CH, "emergency", node.clock.now)
        node.pump()
        node.core.clear_emergency(CH, node.clock.now + 1)
        node.pump()
        assert _msgs(node.sent) == ["msg", "floor-request", "msg", "emergency-clear"]
        bodies = []
        for m in (node.sent[0], node.sent[2]):
            r = txs["disp"].unprotect(base64.b64decode(m["frame"]), node.clock.now + 1)
            item = txs["disp"].open_signed(r)
            assert isinstance(item, SignedMessage)
            assert (item.kind, item.sender) == ("emergency", devs["boat"].id)
            bodies.append(json.loads(item.body))
        assert bodies == [{"state": "declare"}, {"state": "clear"}]
    finally:
        node.close()
