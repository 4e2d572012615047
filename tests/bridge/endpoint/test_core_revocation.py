"""Revocation that acts (issue 10) at the endpoint core, on a fake clock
(:mod:`bridge.endpoint.revocation`).

The relay here is the test: it pushes ``revocation-list`` messages (as the real relay does to
every connected endpoint once it adopted a list), answers ``commit-ok`` and delivers the other
dispatcher's commits; the test reads back the commits each core sends."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from bridge.endpoint import events as ev
from bridge.endpoint.revocation import EXPIRY_LEAD, GRACE, NEXT_UPDATE, RETRY, next_update
from crypto.agreement import RevocationList
from crypto.channel import CommitBundle
from crypto.identity import DeviceKeys, issue_credential
from tests.bridge.endpoint.rig import CH, Clock, Node
from tests.world import Device, World, make_world

OFFICER = "us-cbp/officer"


@pytest.fixture
def w() -> World:
    w = make_world()
    w.device("us-cbp", "disp", ("dispatcher", "member"))
    w.device("us-cbp", "disp2", ("dispatcher", "member"))
    w.device("ca-rcmp", "boat", ("member",))
    w.device("us-cbp", "officer", ("member",))
    return w


def dev(w: World, name: str) -> Device:
    return next(d for k, d in w.devices.items() if k.endswith("/" + name))


def roster(w: World, *names: str) -> list[tuple[Device, str]]:
    return [(dev(w, n), "dispatcher" if n.startswith("disp") else "member") for n in names]


def revoking(w: World, number: int, *names: str, issued: int | None = None) -> RevocationList:
    serials = {dev(w, n).cred.serial for n in names}
    return RevocationList.create(w.roots["us-cbp"], number, issued or w.now, serials)


def push(node: Node, rl: RevocationList) -> None:
    """The relay's push of a list it adopted."""
    node.relay("revocation-list", agency=rl.agency, number=rl.number, list=json.loads(rl.encode()))


def tick(node: Node, at: float) -> None:
    node.clock.now = max(node.clock.now, at)
    node.core.handle_timer(node.clock.now)
    node.pump()


def commits(node: Node) -> list[CommitBundle]:
    """The commits the core sent since the last call."""
    node.pump()
    out = [m for m in node.sent if m["t"] == "commit"]
    node.sent = [m for m in node.sent if m["t"] != "commit"]
    return [CommitBundle.decode(base64.b64decode(m["bundle"])) for m in out]


def devices(bundle: CommitBundle) -> list[str]:
    return sorted(e.device for e in bundle.commit.roster)


def following(w: World, tmp: Path, name: str, *members: str, **kw: Any) -> tuple[Node, Any]:
    """``name``'s core following epoch 1 of CH (issued by disp with ``members``), and that."""
    node = Node(w, dev(w, name), tmp / f"{name}.db", Clock(w.now + 5), **kw)
    e1 = w.commit(dev(w, "disp"), roster(w, *members), None)
    node.commit(e1)
    c = node.core.last_commit(CH)
    assert c is not None and c.epoch == 1
    return node, e1


def on_channel(w: World, tmp: Path, name: str, *members: str, **kw: Any) -> Node:
    return following(w, tmp, name, *members, **kw)[0]


def test_a_pushed_list_makes_the_first_dispatcher_commit_the_device_out_at_once(
    w: World, tmp_path: Path
) -> None:
    node = on_channel(w, tmp_path, "disp", "disp", "disp2", "boat", "officer")
    try:
        assert commits(node) == []
        push(node, revoking(w, 1, "officer"))
        (learned,) = node.take(ev.RevocationLearned)
        assert (learned.agency, learned.number, learned.revoked) == ("us-cbp", 1, (OFFICER,))
        tick(node, node.clock.now)  # the driver's timer: due at once for the first dispatcher
        (c2,) = commits(node)
        assert c2.commit.epoch == 2 and OFFICER not in devices(c2)
        assert devices(c2) == ["ca-rcmp/boat", "us-cbp/disp", "us-cbp/disp2"]
        assert OFFICER not in c2.sealed  # no epoch secret for the revoked device
        node.relay("commit-ok", ch=CH, epoch=2)
        c = node.core.last_commit(CH)
        assert c is not None and c.epoch == 2
        tick(node, node.clock.now + RETRY + 1)
        assert commits(node) == []  # done: the device is gone
    finally:
        node.close()


def test_another_dispatcher_waits_its_rank_and_stands_down_if_the_first_acted(
    w: World, tmp_path: Path
) -> None:
    node, e1 = following(w, tmp_path, "disp2", "disp", "disp2", "boat", "officer")
    try:
        push(node, revoking(w, 1, "officer"))
        (learned,) = node.take(ev.RevocationLearned)  # adopted: it would act after its wait
        assert learned.revoked == (OFFICER,) and node.core.revocations["us-cbp"].number == 1
        t0 = node.clock.now
        tick(node, t0)
        tick(node, t0 + GRACE + 1 - 0.1)  # disp2 is rank 1: it waits GRACE + 1 s
        assert commits(node) == []
        e2 = w.commit(dev(w, "disp"), roster(w, "disp", "disp2", "boat"), e1, now=w.now + 6)
        node.commit(e2)  # the first dispatcher's commit arrived in time
        tick(node, t0 + GRACE + 1)
        tick(node, t0 + GRACE + 1 + RETRY * 3)
        assert commits(node) == []
    finally:
        node.close()


def test_another_dispatcher_acts_after_its_wait_when_the_first_did_not(
    w: World, tmp_path: Path
) -> None:
    node = on_channel(w, tmp_path, "disp2", "disp", "disp2", "boat", "officer")
    try:
        push(node, revoking(w, 1, "officer"))
        t0 = node.clock.now
        tick(node, t0 + GRACE + 1 - 0.1)
        assert commits(node) == []
        at = node.core.get_timer()
        assert at is not None and at <= t0 + GRACE + 1
        tick(node, t0 + GRACE + 1)
        (c2,) = commits(node)
        assert c2.commit.epoch == 2 and OFFICER not in devices(c2)
        assert c2.commit.issuer == dev(w, "disp2").id
        tick(node, node.clock.now + RETRY)  # no answer (offline, lost): tried again
        (again,) = commits(node)
        assert again.commit.epoch == 2 and OFFICER not in devices(again)
    finally:
        node.close()


def test_a_waiting_dispatcher_rebases_on_a_commit_that_kept_the_device(
    w: World, tmp_path: Path
) -> None:
    """The first dispatcher's commit in the wait was a refresh that still lists the officer
    (it had not the list yet): the second acts at its deadline, on epoch 2."""
    node, e1 = following(w, tmp_path, "disp2", "disp", "disp2", "boat", "officer")
    try:
        push(node, revoking(w, 1, "officer"))
        t0 = node.clock.now
        everyone = roster(w, "disp", "disp2", "boat", "officer")
        node.commit(w.commit(dev(w, "disp"), everyone, e1, now=w.now + 6))  # kept as a link
        c = node.core.last_commit(CH)
        assert c is not None and c.epoch == 2
        tick(node, t0 + GRACE + 1)
        (c3,) = commits(node)
        assert c3.commit.epoch == 3 and c3.commit.prev == c.hash
        assert devices(c3) == ["ca-rcmp/boat", "us-cbp/disp", "us-cbp/disp2"]
    finally:
        node.close()


def test_a_list_loaded_at_start_is_acted_on(w: World, tmp_path: Path) -> None:
    node = on_channel(w, tmp_path, "disp", "disp", "boat", "officer")
    try:
        node.revocations = {"us-cbp": revoking(w, 1, "officer")}
        node.restart()
        tick(node, node.clock.now)
        (c2,) = commits(node)
        assert c2.commit.epoch == 2 and devices(c2) == ["ca-rcmp/boat", "us-cbp/disp"]
    finally:
        node.close()


def test_our_own_published_list_acts_once_the_relay_took_it(w: World, tmp_path: Path) -> None:
    node = on_channel(w, tmp_path, "disp", "disp", "boat", "officer")
    try:
        rl = revoking(w, 1, "officer")
        node.core.publish_revocation(rl)
        tick(node, node.clock.now)
        assert commits(node) == []  # not before the relay adopted it
        node.relay("revocation-ok", agency="us-cbp", number=1)
        tick(node, node.clock.now)
        (c2,) = commits(node)
        assert OFFICER not in devices(c2)
    finally:
        node.close()


def test_forged_and_older_lists_change_nothing(w: World, tmp_path: Path) -> None:
    node = on_channel(w, tmp_path, "disp", "disp", "boat", "officer")
    try:
        push(node, revoking(w, 2, "boat"))  # a genuine list, number 2 (revokes a US serial)
        (learned,) = node.take(ev.RevocationLearned)
        assert learned.number == 2 and learned.revoked == ()  # the boat is Canadian
        bad = node.core.stats["malformed_from_relay"]
        other = RevocationList.create(w.roots["ca-rcmp"], 3, w.now, {1, 2, 3})
        unsigned = dataclasses.replace(other, agency="us-cbp")  # Canada's signature, US name
        push(node, unsigned)
        assert node.core.stats["malformed_from_relay"] == bad + 1
        push(node, revoking(w, 1, "officer"))  # an older number: a replay, ignored
        assert node.core.revocations["us-cbp"].number == 2
        assert node.take(ev.RevocationLearned) == []
        tick(node, node.clock.now + RETRY)
        assert commits(node) == []
    finally:
        node.close()


def test_a_member_whose_credential_ends_is_committed_out_before_it_does(
    w: World, tmp_path: Path
) -> None:
    keys = DeviceKeys.generate()
    short = issue_credential(
        w.roots["us-cbp"], "temp", keys, roles=("member",), not_before=w.now - 60,
        not_after=w.now + 600, serial=900,
    )  # fmt: skip
    temp = w.devices[short.device] = Device(short, keys)
    node = Node(w, dev(w, "disp"), tmp_path / "disp.db", Clock(w.now + 5))
    try:
        members = [(d.cred, r) for d, r in roster(w, "disp", "boat")] + [(short, "member")]
        node.core.build_commit(CH, members, w.agreement, None, None, node.clock.now)
        node.relay("commit-ok", ch=CH, epoch=1)
        commits(node)
        c1 = node.core.last_commit(CH)
        assert c1 is not None and c1.expires == short.not_after  # the temp's credential caps it
        due = short.not_after - EXPIRY_LEAD
        tick(node, due - 1)
        assert commits(node) == []
        tick(node, due)
        (c2,) = commits(node)
        assert temp.id not in devices(c2) and c2.commit.epoch == 2
        assert c2.commit.expires > short.not_after  # the others stay on the air after it
    finally:
        node.close()


def test_a_member_alarms_once_on_a_stale_list(w: World, tmp_path: Path) -> None:
    old = revoking(w, 1, "officer", issued=w.now - NEXT_UPDATE + 30)
    assert next_update(old) == w.now + 30
    node = on_channel(w, tmp_path, "boat", "disp", "boat", revocations={"us-cbp": old})
    try:
        tick(node, node.clock.now)
        assert node.take(ev.RevocationStale) == []
        at = node.core.get_timer()
        assert at is not None and at <= w.now + 31
        tick(node, w.now + 31)
        (alarm,) = node.take(ev.RevocationStale)
        assert (alarm.agency, alarm.number, alarm.next_update) == ("us-cbp", 1, w.now + 30)
        tick(node, w.now + 600)
        assert node.take(ev.RevocationStale) == []  # once per list
        push(node, revoking(w, 2, "officer", issued=w.now + 600))
        tick(node, w.now + 601)
        assert node.take(ev.RevocationStale) == []  # the newer one is fresh
    finally:
        node.close()
