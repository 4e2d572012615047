"""The endpoint's own commits never outlive their authority, on a fake clock.

``crypto.channel.create_commit`` refuses an ``expires`` beyond the agreement's or the issuer's
validity. Before, the endpoint's default (a day for a new channel, the previous expiry for the
next epoch) ignored both, so creating a channel under an agreement ending within the day, or
re-committing with a dispatcher whose credential ends sooner, failed outright. Now the default is
cut to ``latest_expiry``; an explicit expiry beyond it is refused naming what it outlives; and
a refused commit that outlives its agreement is not kept as a chain link either.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.endpoint import events as ev
from crypto.agreement import Agreement
from crypto.errors import Refusal, VerificationError
from crypto.identity import issue_credential
from tests.bridge.endpoint.rig import CH, Clock, Node
from tests.crypto.forge import resigned
from tests.world import NOW, Device, World, make_world

HOUR = 3600


def short_agreement(w: World, end: int) -> Agreement:
    a = Agreement.create(
        "one-hour", "One hour", {"us-cbp": ["dispatcher", "member"], "ca-rcmp": ["member"]},
        NOW - 60, end,
    )  # fmt: skip
    for agency in ("us-cbp", "ca-rcmp"):
        a = a.add_signature(w.roots[agency])
    return a


@pytest.fixture
def w() -> World:
    w = make_world()
    w.device("us-cbp", "disp", ("dispatcher", "member"))
    w.device("ca-rcmp", "boat", ("member",))
    return w


def accepted(node: Node, epoch: int) -> None:
    """The relay's answer to our commit: it is installed."""
    node.relay("commit-ok", ch=CH, epoch=epoch)


def test_a_new_channel_under_a_one_hour_agreement_ends_with_it(w: World, tmp_path: Path) -> None:
    disp, boat = w.devices["us-cbp/disp"], w.devices["ca-rcmp/boat"]
    end = NOW + HOUR
    agreement = short_agreement(w, end)
    node = Node(w, disp, tmp_path / "disp.db", Clock(NOW + 5))
    try:
        members = [(disp.cred, "dispatcher"), (boat.cred, "member")]
        bundle = node.core.build_commit(CH, members, agreement, None, None, node.clock.now)
        assert bundle.commit.expires == end  # not NOW + a day: the agreement ends first
        accepted(node, 1)
        assert node.core.last_commit(CH) == bundle.commit
        # The next epoch keeps that expiry, still within the agreement.
        node.clock.advance(60)
        again = node.core.build_commit(CH, members[:1], None, None, None, node.clock.now)
        assert again.commit.epoch == 2 and again.commit.expires == end
    finally:
        node.close()


def test_the_next_epoch_is_cut_to_a_dispatcher_credential_that_ends_sooner(
    w: World, tmp_path: Path
) -> None:
    disp, boat = w.devices["us-cbp/disp"], w.devices["ca-rcmp/boat"]
    keys = w.device("us-cbp", "tmp", ("dispatcher",)).keys
    cred = issue_credential(
        w.roots["us-cbp"], "night-shift", keys, roles=("dispatcher", "member"),
        not_before=NOW - 60, not_after=NOW + 2 * HOUR, serial=99,
    )  # fmt: skip
    night = Device(cred, keys)
    roster = [(disp, "dispatcher"), (night, "dispatcher"), (boat, "member")]
    e1 = w.commit(disp, roster, None)  # by the day dispatcher: expires in a day
    node = Node(w, night, tmp_path / "night.db", Clock(NOW + 5))
    try:
        node.commit(e1)  # the night dispatcher follows the channel: its next epoch is ours
        members = [(disp.cred, "dispatcher"), (night.cred, "dispatcher"), (boat.cred, "member")]
        bundle = node.core.build_commit(CH, members, None, None, None, node.clock.now)
        assert bundle.commit.epoch == 2 and bundle.commit.expires == NOW + 2 * HOUR
    finally:
        node.close()


def test_an_explicit_expiry_beyond_the_agreement_is_refused(w: World, tmp_path: Path) -> None:
    disp, boat = w.devices["us-cbp/disp"], w.devices["ca-rcmp/boat"]
    agreement = short_agreement(w, NOW + HOUR)
    node = Node(w, disp, tmp_path / "disp.db", Clock(NOW + 5))
    try:
        members = [(disp.cred, "dispatcher"), (boat.cred, "member")]
        with pytest.raises(VerificationError) as e:
            node.core.build_commit(CH, members, agreement, None, NOW + HOUR + 1, node.clock.now)
        assert e.value.code is Refusal.EXPIRY_BEYOND_VALIDITY
        assert "agreement one-hour" in str(e.value)
        with pytest.raises(VerificationError) as e:  # nor one that has already passed
            node.core.build_commit(CH, members, agreement, None, NOW, node.clock.now)
        assert e.value.code is Refusal.EXPIRED
        assert node.core.data_to_send() == []  # nothing went to the relay
        node.clock.advance(2 * HOUR)  # the agreement has ended: there is no default to cut to
        with pytest.raises(VerificationError) as e:
            node.core.build_commit(CH, members, agreement, None, None, node.clock.now)
        assert e.value.code is Refusal.EXPIRED and "agreement one-hour ends" in str(e.value)
    finally:
        node.close()


def test_a_commit_that_outlives_its_agreement_is_not_kept_as_a_link(
    w: World, tmp_path: Path
) -> None:
    disp, boat = w.devices["us-cbp/disp"], w.devices["ca-rcmp/boat"]
    e1 = w.commit(disp, [(disp, "dispatcher"), (boat, "member")], None)
    e2 = w.commit(disp, [(disp, "dispatcher"), (boat, "member")], e1)
    too_long = resigned(e2, disp, expires=w.agreement.not_after + 1)  # authentic signature
    node = Node(w, boat, tmp_path / "boat.db", Clock(NOW + 5))
    try:
        node.commit(e1)
        node.deliver("commit", too_long, "commit")
        assert [e.code for e in node.take(ev.Error)] == [Refusal.EXPIRY_BEYOND_VALIDITY.value]
        member = node.core.channels[CH]
        assert member.last_commit is not None and member.last_commit.epoch == 1
        assert member.refused is None and member.may_send()  # not a link: still on epoch 1
        node.commit(e2)  # the genuine epoch 2 still chains on
        assert [u.epoch for u in node.take(ev.ChannelUpdated)] == [1, 2]
    finally:
        node.close()


def test_a_commit_message_names_its_channel_and_epoch_beside_the_bundle(
    w: World, tmp_path: Path
) -> None:
    """The relay refuses a stale or unpermitted commit from these two fields before decoding a
    bundle of up to 4 MB (and checks them against the bundle when it does decode it)."""
    disp, boat = w.devices["us-cbp/disp"], w.devices["ca-rcmp/boat"]
    node = Node(w, disp, tmp_path / "disp.db", Clock(NOW + 5))
    try:
        members = [(disp.cred, "dispatcher"), (boat.cred, "member")]
        bundle = node.core.build_commit(CH, members, w.agreement, None, None, node.clock.now)
        node.pump()
        sent = [m for m in node.sent if m["t"] == "commit"]
        assert len(sent) == 1
        assert (sent[0]["ch"], sent[0]["epoch"]) == (CH, bundle.commit.epoch) == (CH, 1)
    finally:
        node.state.close()
