"""Fault 2 (and fault 7's alarm) at the endpoint core, on a fake clock: withheld, forked and
rolled-back commits (:mod:`bridge.endpoint.confirmations`), and a relay emergency nobody
signed (:mod:`bridge.endpoint.emergency_watch`).

The relay here is the test: it hands the boat's core what a hostile relay would (a member's
signed ``confirm`` of a commit the boat never got, an old commit as a join, a floor emergency
without the signed message) and reads back what the core sends."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from bridge.endpoint import events as ev
from bridge.endpoint.confirmations import REFRESH_RETRY, STALE_EPOCH, StaleEpochError
from bridge.endpoint.emergency_watch import SIGNED_BOUND
from bridge.endpoint.freshness import CONFIRM_BOUND, CONFIRM_EVERY, MAX_EPOCH_AGE, REFRESH_BEFORE
from crypto.channel import CommitBundle
from crypto.confirm import Confirmation, decode_confirmation
from crypto.group import ChannelMember
from tests.bridge.endpoint.rig import CH, NO, Clock, Node
from tests.world import Device, World, make_world


@pytest.fixture
def w() -> World:
    w = make_world()
    w.device("us-cbp", "disp", ("dispatcher", "member"))
    w.device("ca-rcmp", "boat", ("member",))
    w.device("us-cbp", "officer", ("member",))
    w.device("mx-gn", "outsider", ("observer",))
    return w


def dev(w: World, name: str) -> Device:
    return next(d for k, d in w.devices.items() if k.endswith("/" + name))


def everyone(w: World) -> list[tuple[Device, str]]:
    return [
        (dev(w, "disp"), "dispatcher"),
        (dev(w, "boat"), "member"),
        (dev(w, "officer"), "member"),
    ]


def statement(who: Device, bundle: CommitBundle, at: float, ch: str = CH) -> str:
    c = bundle.commit
    conf = Confirmation(ch, c.epoch, c.hash, who.id, int(at)).signed(who.keys.sign)
    return base64.b64encode(conf.encode()).decode()


def boat(w: World, tmp: Path, at: float | None = None) -> Node:
    return Node(w, dev(w, "boat"), tmp / "boat.db", Clock(w.now + 5 if at is None else at))


def tick(node: Node, at: float) -> None:
    """The driver's timer fires at ``at``."""
    node.clock.now = max(node.clock.now, at)
    node.core.handle_timer(at)
    node.pump()


def run_until(node: Node, end: float) -> None:
    """The driver: fire the core's timer at each deadline it names, up to ``end``."""
    for _ in range(10_000):
        at = node.core.get_timer()
        if at is None or at > end:
            break
        tick(node, at)
    else:
        raise AssertionError("the core's timer never moves past its deadlines")
    node.clock.now = end


def sent(node: Node, t: str) -> list[dict[str, object]]:
    node.pump()
    out = [m for m in node.sent if m["t"] == t]
    node.sent = [m for m in node.sent if m["t"] != t]
    return out


def test_a_withheld_commit_is_noticed_and_the_stale_epoch_not_sent_on(
    w: World, tmp_path: Path
) -> None:
    """The dispatcher removed the officer in epoch 2; the relay gave the boat only epoch 1.
    The dispatcher's signed confirmation of epoch 2 tells the boat, which then sends nothing
    on epoch 1 (the officer could read it) until it holds epoch 2."""
    disp = dev(w, "disp")
    e1 = w.commit(disp, everyone(w), None)
    e2 = w.commit(disp, everyone(w)[:2], e1)  # the officer is out
    node = boat(w, tmp_path)
    try:
        node.commit(e1)
        node.core.send_text(CH, b"before", "text", node.clock.now)  # epoch 1 is current
        assert len(sent(node, "msg")) == 1
        tick(node, node.clock.now)  # our own confirmation goes out at once
        (mine,) = sent(node, "confirm")
        got = decode_confirmation(base64.b64decode(str(mine["statement"])))
        assert (got.channel, got.epoch, got.commit) == (CH, 1, e1.commit.hash)
        got.verify(dev(w, "boat").cred)
        node.relay("confirm", ch=CH, statement=statement(disp, e2, node.clock.advance(1)))
        (alarm,) = node.take(ev.FreshnessAlarm)
        assert (alarm.kind, alarm.channel, alarm.epoch) == ("behind", CH, 1)
        assert alarm.evidence[0].epoch == 2 and alarm.evidence[0].device == disp.id
        for _ in range(3):
            with pytest.raises(StaleEpochError):
                node.core.send_voice(CH, b"\x00" * 40, node.clock.now)
            with pytest.raises(StaleEpochError):
                node.core.send_text(CH, b"after", "text", node.clock.now)
        assert node.core.media_to_send() == [] and sent(node, "msg") == []  # nothing went
        assert [e.code for e in node.take(ev.Error)] == [STALE_EPOCH]  # told once
        assert node.core.stats["confirmations"] == 1
        node.commit(e2)  # the relay lets it through: on the air again, on epoch 2
        node.core.send_text(CH, b"on epoch 2", "text", node.clock.now)
        assert len(sent(node, "msg")) == 1
        node.core.send_voice(CH, b"\x00" * 40, node.clock.now)
        assert [no for no, _ in node.core.media_to_send()] == [NO]
    finally:
        node.close()


def test_one_member_claiming_a_later_epoch_raises_the_alarm_but_does_not_silence_us(
    w: World, tmp_path: Path
) -> None:
    """A hostile member signs "I hold epoch 9" for a commit that does not exist: the user is
    told (the evidence names it), but only a dispatcher's word or two members' stop sending."""
    disp, officer = dev(w, "disp"), dev(w, "officer")
    gw = w.device("us-cbp", "gw", ("member",))
    e1 = w.commit(disp, [*everyone(w), (gw, "member")], None)
    node = boat(w, tmp_path)
    try:
        node.commit(e1)
        claim = Confirmation(CH, 9, "9" * 64, officer.id, int(node.clock.now))
        text = base64.b64encode(claim.signed(officer.keys.sign).encode()).decode()
        node.relay("confirm", ch=CH, statement=text)
        (alarm,) = node.take(ev.FreshnessAlarm)
        assert alarm.kind == "behind" and alarm.evidence[0].device == officer.id
        node.core.send_text(CH, b"still on the air", "text", node.clock.now)
        assert len(sent(node, "msg")) == 1
        second = Confirmation(CH, 9, "9" * 64, gw.id, int(node.clock.now))
        text = base64.b64encode(second.signed(gw.keys.sign).encode()).decode()
        node.relay("confirm", ch=CH, statement=text)
        assert [a.evidence[0].device for a in node.take(ev.FreshnessAlarm)] == [gw.id]
        with pytest.raises(StaleEpochError):
            node.core.send_text(CH, b"two members say we are behind", "text", node.clock.now)
    finally:
        node.close()


def test_a_fork_raises_an_alarm_that_keeps_both_confirmations(w: World, tmp_path: Path) -> None:
    """Two valid epoch-2 commits (say two dispatcher consoles); the relay shows the boat one
    and the dispatcher the other."""
    disp = dev(w, "disp")
    e1 = w.commit(disp, everyone(w), None)
    theirs = w.commit(disp, everyone(w), e1, now=w.now + 1)
    ours = w.commit(disp, everyone(w)[:2], e1, now=w.now + 2)
    assert theirs.commit.hash != ours.commit.hash
    node = boat(w, tmp_path)
    try:
        node.commit(e1)
        node.commit(ours)
        node.relay("confirm", ch=CH, statement=statement(disp, theirs, node.clock.now))
        (alarm,) = node.take(ev.FreshnessAlarm)
        assert (alarm.kind, alarm.channel, alarm.epoch) == ("fork", CH, 2)
        a, b = alarm.evidence
        assert (a.device, a.epoch, a.commit) == (disp.id, 2, theirs.commit.hash)
        assert (b.device, b.epoch, b.commit) == (dev(w, "boat").id, 2, ours.commit.hash)
        a.verify(disp.cred)  # both signed: evidence a third party can check
        b.verify(dev(w, "boat").cred)
        node.relay("confirm", ch=CH, statement=statement(disp, theirs, node.clock.advance(3)))
        assert node.take(ev.FreshnessAlarm) == []  # raised once
    finally:
        node.close()


def test_confirmations_that_do_not_verify_change_nothing(w: World, tmp_path: Path) -> None:
    disp, outsider = dev(w, "disp"), dev(w, "outsider")
    e1 = w.commit(disp, everyone(w), None)
    e2 = w.commit(disp, everyone(w), e1)
    node = boat(w, tmp_path)
    try:
        node.commit(e1)
        now = node.clock.now
        genuine = decode_confirmation(base64.b64decode(statement(disp, e2, now)))
        tampered = Confirmation(CH, 3, genuine.commit, disp.id, int(now), genuine.signature)
        in_name = Confirmation(CH, 2, e2.commit.hash, disp.id, int(now)).signed(
            dev(w, "officer").keys.sign
        )
        bad = [
            statement(outsider, e2, now),  # a valid credential, in no roster of ours
            base64.b64encode(tampered.encode()).decode(),  # the epoch changed
            base64.b64encode(in_name.encode()).decode(),  # a member signing as another
            statement(disp, e2, now, ch="inc-2"),  # another channel's, on this one
            base64.b64encode(b"not json").decode(),
        ]
        for text in bad:
            node.relay("confirm", ch=CH, statement=text)
        assert node.core.stats["confirmations_refused"] == len(bad)
        node.relay("confirm", ch=CH)  # no statement at all: a malformed relay message
        assert node.core.stats["malformed_from_relay"] == 1
        assert node.take(ev.FreshnessAlarm) == [] and node.core.stats["confirmations"] == 0
        node.core.send_text(CH, b"still fine", "text", node.clock.now)
        assert len(sent(node, "msg")) == 1
    finally:
        node.close()


def test_a_join_requires_a_recent_commit(w: World, tmp_path: Path) -> None:
    """The boat lost its state; the relay replays the old epoch 1 (the officer still in it)
    as its join. Refused; the recent epoch 2 is taken."""
    disp = dev(w, "disp")
    e1 = w.commit(disp, everyone(w), None)
    later = int(w.now + MAX_EPOCH_AGE + 60)
    e2 = w.commit(disp, everyone(w)[:2], e1, now=later - 30)
    node = boat(w, tmp_path, at=later)
    try:
        node.commit(e1)
        assert CH not in node.core.channels
        (alarm,) = node.take(ev.FreshnessAlarm)
        assert (alarm.kind, alarm.channel, alarm.epoch) == ("stale-join", CH, 1)
        assert [e.code for e in node.take(ev.Error)] == ["expired"]
        assert node.take(ev.ChannelUpdated) == []
        acks = [m["seq"] for m in node.sent if m["t"] == "ack"]
        assert acks == [1]  # refused and acknowledged: the relay may not offer it again
        node.commit(e2)
        (joined,) = node.take(ev.ChannelUpdated)
        assert joined.epoch == 2 and dev(w, "officer").id not in joined.roster
        node.core.send_text(CH, b"joined", "text", node.clock.now)
        assert len(sent(node, "msg")) == 1
    finally:
        node.close()


def test_an_old_epoch_is_not_sent_on_and_silence_is_noticed(w: World, tmp_path: Path) -> None:
    e1 = w.commit(dev(w, "disp"), everyone(w), None)
    node = boat(w, tmp_path, at=w.now)
    try:
        node.commit(e1)
        run_until(node, w.now + CONFIRM_BOUND - 0.1)
        assert node.take(ev.FreshnessAlarm) == []
        run_until(node, w.now + CONFIRM_BOUND)
        assert [a.kind for a in node.take(ev.FreshnessAlarm)] == ["silent"]
        confirms = sent(node, "confirm")
        assert len(confirms) == int(CONFIRM_BOUND / CONFIRM_EVERY) + 1  # every 3 s, from 0
        run_until(node, w.now + MAX_EPOCH_AGE + 1)  # past the max age
        assert [a.kind for a in node.take(ev.FreshnessAlarm)] == ["stale"]
        with pytest.raises(StaleEpochError):
            node.core.send_text(CH, b"late", "text", node.clock.now)
        assert sent(node, "msg") == [] and [e.code for e in node.take(ev.Error)] == [STALE_EPOCH]
        at = node.core.get_timer()  # an alarm raised is no deadline: no busy timer loop
        assert at is not None and at > node.clock.now
    finally:
        node.close()


def test_a_dispatcher_refreshes_the_epoch_before_it_gets_stale(w: World, tmp_path: Path) -> None:
    disp = dev(w, "disp")
    node = Node(w, disp, tmp_path / "disp.db", Clock(w.now + 5))
    try:
        members = [(d.cred, r) for d, r in everyone(w)]
        node.core.build_commit(CH, members, w.agreement, None, None, node.clock.now)
        node.relay("commit-ok", ch=CH, epoch=1)
        assert [m["epoch"] for m in sent(node, "commit")] == [1]
        issued = node.core.channels[CH].last_commit
        assert issued is not None and issued.epoch == 1
        due = issued.issued_at + MAX_EPOCH_AGE - REFRESH_BEFORE
        tick(node, due - 1)
        assert sent(node, "commit") == []
        tick(node, node.clock.advance(due - node.clock.now))
        (refresh,) = sent(node, "commit")
        assert refresh["epoch"] == 2
        tick(node, node.clock.now + 1)
        assert sent(node, "commit") == []  # not again at once
        tick(node, node.clock.now + REFRESH_RETRY)  # the relay never answered: once more
        (retried,) = sent(node, "commit")
        assert retried["epoch"] == 2
        node.relay("commit-ok", ch=CH, epoch=2)
        again = node.core.channels[CH].last_commit
        assert again is not None and again.epoch == 2
        assert [(e.device, e.role) for e in again.roster] == [
            (e.device, e.role) for e in issued.roster
        ]
        tick(node, node.clock.advance(REFRESH_BEFORE))  # past epoch 1's age
        node.core.send_text(CH, b"still on the air", "text", node.clock.now)
        assert len(sent(node, "msg")) == 1
    finally:
        node.close()


def _declare(tx: ChannelMember, msg_id: str) -> bytes:
    return tx.sign_message(msg_id, "emergency", b'{"state":"declare"}', 1_000)[1]


def test_a_relay_emergency_nobody_signed_raises_an_alarm_after_the_bound(
    w: World, tmp_path: Path
) -> None:
    disp, officer = dev(w, "disp"), dev(w, "officer")
    e1 = w.commit(disp, everyone(w), None)
    txs = {d.id: w.member(d) for d in (disp, officer)}
    for tx in txs.values():
        tx.process_commit(e1, w.now)
    node = boat(w, tmp_path)
    try:
        node.commit(e1)
        t0 = node.clock.now
        # 1. the relay shows the dispatcher's emergency and drops the signed declaration
        node.relay("floor", ch=CH, event="emergency", device=disp.id, active=True)
        assert [e.source for e in node.take(ev.Emergency)] == ["relay"]
        tick(node, t0 + SIGNED_BOUND - 0.1)
        assert node.take(ev.EmergencyUnsigned) == []
        tick(node, t0 + SIGNED_BOUND)
        assert node.take(ev.EmergencyUnsigned) == [ev.EmergencyUnsigned(CH, disp.id, SIGNED_BOUND)]
        tick(node, t0 + 2 * SIGNED_BOUND)
        assert node.take(ev.EmergencyUnsigned) == []  # once
        node.relay("floor", ch=CH, event="emergency", device=disp.id, active=False)
        # 2. the signed declaration comes just after the floor's: no alarm
        node.clock.advance(60)
        node.relay("floor", ch=CH, event="emergency", device=disp.id, active=True)
        node.deliver("msg", _declare(txs[disp.id], "e-1"))
        tick(node, node.clock.advance(SIGNED_BOUND))
        assert node.take(ev.EmergencyUnsigned) == []
        # 3. signed by the officer, but the relay names the dispatcher: not what was signed
        node.relay("floor", ch=CH, event="emergency", device=disp.id, active=False)
        node.deliver(
            "msg", txs[disp.id].sign_message("e-2", "emergency", b'{"state":"clear"}', 2)[1]
        )
        node.deliver("msg", _declare(txs[officer.id], "e-3"))
        node.relay("floor", ch=CH, event="emergency", device=disp.id, active=True)
        tick(node, node.clock.advance(SIGNED_BOUND))
        (alarm,) = node.take(ev.EmergencyUnsigned)
        assert alarm.by == disp.id
        # 4. our own emergency (we signed it first), and a channel we do not follow: no alarm
        node.relay("floor", ch=CH, event="emergency", device=dev(w, "boat").id, active=True)
        node.relay("floor", ch="inc-9", event="emergency", device=disp.id, active=True)
        tick(node, node.clock.advance(SIGNED_BOUND))
        assert node.take(ev.EmergencyUnsigned) == []
    finally:
        node.close()
