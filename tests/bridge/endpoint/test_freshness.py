"""Freshness and fork detection (issue 9, fault 2), on a fake wall clock: a member the relay
holds back learns within CONFIRM_BOUND that the channel moved on, two commits for one epoch
raise a fork alarm with the signed evidence, a stale epoch is not sent on, and a relay that
withholds everything is noticed."""

from __future__ import annotations

import pytest

from bridge.endpoint.freshness import (
    CONFIRM_BOUND,
    CONFIRM_EVERY,
    MAX_EPOCH_AGE,
    REFRESH_BEFORE,
    Freshness,
)
from crypto.confirm import Confirmation, decode_confirmation
from crypto.errors import Refusal, VerificationError
from tests.world import make_world

W = make_world()
ME = W.device("ca-rcmp", "vessel-1", ("member",))
PEER = W.device("us-cbp", "officer-1", ("member",))
H1, H2 = "1" * 64, "2" * 64
T0 = 1_800_000_000.0


def conf(epoch: int, commit: str, at: float, who=PEER) -> Confirmation:
    c = Confirmation("inc-1", epoch, commit, who.id, int(at)).signed(who.keys.sign)
    return decode_confirmation(c.encode()).verify(who.cred)  # as a receiver would


def held(epoch: int = 3, commit: str = H1, others: bool = True) -> Freshness:
    f = Freshness(ME.id)
    f.hold("inc-1", epoch, commit, issued_at=T0, others=others, wall=T0)
    return f


def test_a_member_held_back_learns_the_channel_moved_on() -> None:
    """The relay withheld epoch 4 from us; a member on epoch 4 confirms it."""
    f = held(epoch=3)
    (alarm,) = f.on_confirmation(conf(4, H2, T0 + 2), T0 + 2)
    assert alarm.kind == "behind" and alarm.channel == "inc-1" and alarm.evidence[0].epoch == 4
    assert f.on_confirmation(conf(4, H2, T0 + 5), T0 + 5) == []  # raised once


def test_two_commits_for_one_epoch_are_a_fork_with_the_evidence_kept() -> None:
    f = held(epoch=3, commit=H1)
    theirs = conf(3, H2, T0 + 1)
    (alarm,) = f.on_confirmation(theirs, T0 + 1)
    assert alarm.kind == "fork" and alarm.evidence == (theirs,)
    assert alarm.evidence[0].verify(PEER.cred)  # still checkable later: signed evidence
    assert f.on_confirmation(conf(3, H1, T0 + 2), T0 + 2) == []  # agreement: nothing


def test_a_stale_epoch_is_not_sent_on_and_a_dispatcher_refreshes_before() -> None:
    f = held()
    assert f.may_send("inc-1", T0 + MAX_EPOCH_AGE)
    assert not f.needs_refresh("inc-1", T0 + MAX_EPOCH_AGE - REFRESH_BEFORE - 1)
    assert f.needs_refresh("inc-1", T0 + MAX_EPOCH_AGE - REFRESH_BEFORE)
    f.on_confirmation(conf(3, H1, T0 + MAX_EPOCH_AGE), T0 + MAX_EPOCH_AGE)  # not silent
    assert not f.may_send("inc-1", T0 + MAX_EPOCH_AGE + 1)
    kinds = [a.kind for a in f.check(T0 + MAX_EPOCH_AGE + 1)]
    assert kinds == ["stale"]
    f.hold("inc-1", 4, H2, issued_at=T0 + MAX_EPOCH_AGE, others=True, wall=T0 + MAX_EPOCH_AGE)
    assert f.may_send("inc-1", T0 + MAX_EPOCH_AGE + 1)  # the refresh: on the air again


def test_a_relay_that_withholds_everything_is_noticed_within_the_bound() -> None:
    f = held()
    assert f.check(T0 + CONFIRM_BOUND - 0.1) == []
    deadline = f.next_deadline()
    assert deadline is not None and deadline <= T0 + CONFIRM_BOUND
    assert [a.kind for a in f.check(T0 + CONFIRM_BOUND)] == ["silent"]
    assert f.check(T0 + CONFIRM_BOUND + 1) == []  # once
    f.on_confirmation(conf(3, H1, T0 + 11), T0 + 11)
    assert [a.kind for a in f.check(T0 + 11 + CONFIRM_BOUND)] == ["silent"]  # silent again


def test_alone_in_a_channel_is_not_silence() -> None:
    assert held(others=False).check(T0 + 10 * CONFIRM_BOUND) == []


def test_we_confirm_every_few_seconds() -> None:
    f = held()
    assert f.due(T0) == [("inc-1", 3, H1)]
    assert f.due(T0 + CONFIRM_EVERY - 0.1) == []
    assert f.due(T0 + CONFIRM_EVERY) == [("inc-1", 3, H1)]
    assert f.due(T0 - 100) == [("inc-1", 3, H1)]  # a clock stepped back does not stop it


def test_our_own_confirmations_echoed_back_change_nothing() -> None:
    f = held()
    assert f.on_confirmation(conf(9, H2, T0, who=ME), T0) == []


def test_a_confirmation_is_signed_and_decoded_strictly() -> None:
    c = conf(3, H1, T0)
    with pytest.raises(VerificationError) as err:
        c.verify(ME.cred)
    assert err.value.code is Refusal.BAD_SIGNATURE
    forged = Confirmation("inc-1", 4, H1, PEER.id, int(T0), c.signature)
    with pytest.raises(VerificationError):
        forged.verify(PEER.cred)  # the epoch is signed
    for bad in (b"", b"{}", c.encode().replace(b'"confirm"', b'"message"'), b"[" * 10_000):
        with pytest.raises(VerificationError) as err:
            decode_confirmation(bad)
        assert err.value.code is Refusal.MALFORMED
