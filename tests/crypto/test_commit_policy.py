"""Commit policy (issue 9, fault 6): what even a genuine dispatcher may not do to a channel.

Before, ``verify_commit`` (and ``verify_link``, so such a commit was even kept as a chain link)
accepted a commit from an issuer listed in no roster — it made, and so knew, every secret of
the epoch without any member seeing it there —, a commit under another agreement than the
channel's (a second agreement the same agencies signed, giving another agency other roles, or
lasting ten years longer), a channel renamed mid-chain, a channel outliving a member's
credential, and any ``issued_at``. Every attack here is built with genuine keys (no signature
is forged) and each refusal is checked in both functions, which share the checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from crypto.channel import (
    MAX_CLOCK_SKEW,
    CommitBundle,
    latest_expiry,
    verify_commit,
    verify_link,
)
from crypto.commit import Commit
from crypto.errors import Refusal, VerificationError
from tests.crypto.forge import resigned
from tests.crypto.forge_policy import DAY, YEAR, commit, dispatcher, other_agreement
from tests.world import NOW, Device, World, make_world


@dataclass
class Net:
    w: World
    disp: Device  # us-cbp/dispatch-1, the channel's dispatcher
    boat: Device  # ca-rcmp/vessel-1, a member
    obs: Device  # mx-gn/c4-1, an observer
    e1: CommitBundle

    def roster(self) -> list[tuple[Device, str]]:
        return [(self.disp, "dispatcher"), (self.boat, "member"), (self.obs, "observer")]


@pytest.fixture
def net() -> Net:
    w = make_world()
    disp = w.device("us-cbp", "dispatch-1", ("dispatcher", "member"))
    boat = w.device("ca-rcmp", "vessel-1", ("member",), kind="vessel")
    obs = w.device("mx-gn", "c4-1", ("observer",))
    roster = [(disp, "dispatcher"), (boat, "member"), (obs, "observer")]
    return Net(w, disp, boat, obs, commit(w, disp, roster, None))


def refused(
    net: Net, bundle: CommitBundle, previous: CommitBundle | None, now: float = NOW, **kw: object
) -> VerificationError:
    """verify_commit and verify_link both refuse ``bundle`` after ``previous``, with one code."""
    fresh = CommitBundle.decode(bundle.encode())  # what a member receives
    prev = previous.commit if previous else None
    errors = []
    for check in (verify_commit, verify_link):
        with pytest.raises(VerificationError) as e:
            check(fresh, net.w.trust, now, previous=prev, **kw)  # type: ignore[arg-type]
        errors.append(e.value)
    assert errors[0].code is errors[1].code
    return errors[0]


def accepted(net: Net, bundle: CommitBundle, previous: CommitBundle | None) -> Commit:
    fresh = CommitBundle.decode(bundle.encode())
    prev = previous.commit if previous else None
    assert verify_link(fresh, net.w.trust, NOW, previous=prev) == fresh.commit
    return verify_commit(fresh, net.w.trust, NOW, previous=prev)


# -- the issuer: listed in the roster it issues, a dispatcher in the previous one -------------


def test_a_genesis_commit_lists_its_issuer(net: Net) -> None:
    hidden = commit(net.w, net.disp, [(net.boat, "member"), (net.obs, "observer")], None)
    exc = refused(net, hidden, None)
    assert exc.code is Refusal.ISSUER_NOT_LISTED and net.disp.id in str(exc)
    # A member does not take keys from it either (before: it did, from an invisible issuer).
    member = net.w.member(net.boat)
    with pytest.raises(VerificationError) as e:
        member.process_commit(CommitBundle.decode(hidden.encode()), NOW)
    assert e.value.code is Refusal.ISSUER_NOT_LISTED and member.last_commit is None


def test_a_dispatcher_in_no_roster_cannot_move_the_channel(net: Net) -> None:
    outsider = dispatcher(net.w, "dispatch-9")  # valid US dispatcher, never in the channel
    joined = commit(net.w, outsider, [(outsider, "dispatcher"), *net.roster()[1:]], net.e1)
    exc = refused(net, joined, net.e1)
    assert exc.code is Refusal.NOT_PREVIOUS_DISPATCHER and outsider.id in str(exc)
    silent = commit(net.w, outsider, net.roster(), net.e1)  # not even listed in the new one
    assert refused(net, silent, net.e1).code is Refusal.ISSUER_NOT_LISTED
    member = net.w.member(net.boat)
    member.process_commit(CommitBundle.decode(net.e1.encode()), NOW)
    for bundle in (joined, silent):
        with pytest.raises(VerificationError):
            member.process_commit(CommitBundle.decode(bundle.encode()), NOW)
    assert member.epoch == 1 and member.last_commit == net.e1.commit


def test_a_member_holding_a_dispatcher_credential_is_no_dispatcher_of_the_channel(
    net: Net,
) -> None:
    d2 = dispatcher(net.w, "dispatch-2")
    e1 = commit(net.w, net.disp, [*net.roster(), (d2, "member")], None)
    e2 = commit(net.w, d2, [(d2, "dispatcher"), (net.boat, "member")], e1)  # promotes itself
    assert refused(net, e2, e1).code is Refusal.NOT_PREVIOUS_DISPATCHER


def test_the_channels_dispatchers_hand_over(net: Net) -> None:
    night = dispatcher(net.w, "night-shift")
    e1 = commit(net.w, net.disp, [*net.roster(), (night, "dispatcher")], None)
    # The night dispatcher takes over and the day dispatcher leaves: both allowed.
    e2 = commit(net.w, night, [(night, "dispatcher"), (net.boat, "member")], e1)
    assert accepted(net, e2, e1).issuer == night.id
    # A dispatcher may demote itself, listed as a member: it then dispatches no more.
    e3 = commit(net.w, night, [(night, "member"), (net.boat, "member")], e2)
    accepted(net, e3, e2)
    e4 = commit(net.w, night, [(night, "member"), (net.boat, "member")], e3)
    assert refused(net, e4, e3).code is Refusal.NOT_PREVIOUS_DISPATCHER
    # Nor may the day dispatcher, who is no longer in the channel, come back on its own.
    back = commit(net.w, net.disp, [(net.disp, "dispatcher"), (night, "member")], e3)
    assert refused(net, back, e3).code is Refusal.NOT_PREVIOUS_DISPATCHER


# -- the agreement, the channel id and its name are fixed for the chain -----------------------


def test_the_agreement_cannot_be_swapped_mid_chain(net: Net) -> None:
    wide = other_agreement(net.w)  # genuine: every party signed it
    talker = net.w.device("mx-gn", "c4-2", ("member", "observer"))
    roster = [*net.roster(), (talker, "member")]
    # Under the channel's agreement Mexico only observes: the roster is refused.
    plain = commit(net.w, net.disp, roster, net.e1)
    with pytest.raises(VerificationError) as e:
        verify_commit(plain, net.w.trust, NOW, previous=net.e1.commit)
    assert e.value.code is Refusal.ROLE_NOT_ALLOWED
    # Before: citing the other agreement gave the Mexican device a sender index.
    swapped = commit(net.w, net.disp, roster, net.e1, agreement=wide)
    exc = refused(net, swapped, net.e1)
    assert exc.code is Refusal.AGREEMENT_CHANGED and "shiprider-wide" in str(exc)
    member = net.w.member(net.boat)
    member.process_commit(CommitBundle.decode(net.e1.encode()), NOW)
    with pytest.raises(VerificationError) as e:
        member.process_commit(CommitBundle.decode(swapped.encode()), NOW)
    assert e.value.code is Refusal.AGREEMENT_CHANGED and member.epoch == 1


def test_an_agreement_of_the_same_id_but_other_content_is_another_agreement(net: Net) -> None:
    same_id = other_agreement(net.w, net.w.agreement.id)
    swapped = commit(net.w, net.disp, net.roster(), net.e1, agreement=same_id)
    assert refused(net, swapped, net.e1).code is Refusal.AGREEMENT_CHANGED


def test_a_channel_keeps_its_id_and_name(net: Net) -> None:
    renamed = commit(net.w, net.disp, net.roster(), net.e1, name="Routine traffic")
    exc = refused(net, renamed, net.e1)
    assert exc.code is Refusal.CHANNEL_RENAMED and "epoch 2" in str(exc)
    e2 = commit(net.w, net.disp, net.roster(), net.e1)
    moved = CommitBundle.decode(resigned(e2, net.disp, channel="inc-2"))
    assert refused(net, moved, net.e1).code is Refusal.WRONG_CHANNEL  # (refused before too)


def test_a_rejoining_member_checks_the_chain_it_knew(net: Net) -> None:
    """``earlier``: a member re-added after a removal verifies the commit that brings it back
    with ``previous=None`` (it did not see the epochs in between), against its last commit."""
    e2 = commit(net.w, net.disp, net.roster()[:1], net.e1)  # the boat is out
    e3 = commit(net.w, net.disp, net.roster()[:2], e2, agreement=other_agreement(net.w))
    exc = refused(net, e3, None, earlier=net.e1.commit)
    assert exc.code is Refusal.AGREEMENT_CHANGED
    renamed = commit(net.w, net.disp, net.roster()[:2], e2, name="Other")
    assert refused(net, renamed, None, earlier=net.e1.commit).code is Refusal.CHANNEL_RENAMED
    assert refused(net, net.e1, None, earlier=e2.commit).code is Refusal.EPOCH_SKIP  # no rollback
    good = CommitBundle.decode(commit(net.w, net.disp, net.roster()[:2], e2).encode())
    back = verify_commit(good, net.w.trust, NOW, previous=None, earlier=net.e1.commit)
    assert back.epoch == 3


# -- expiry: within the agreement's, the issuer's and every member's validity ------------------


def test_no_expiry_ten_years_past_the_agreement(net: Net) -> None:
    agreement_end = net.w.agreement.not_after
    long_lived = dispatcher(net.w, "dispatch-long", until=agreement_end + 11 * YEAR)
    roster = [(long_lived, "dispatcher"), (net.boat, "member")]
    e1 = commit(net.w, long_lived, roster, None)
    # Within the channel's own agreement this was already refused (issue 7).
    too_long = CommitBundle.decode(resigned(e1, long_lived, expires=agreement_end + 10 * YEAR))
    assert refused(net, too_long, None).code is Refusal.EXPIRY_BEYOND_VALIDITY
    # Before: under a swapped agreement lasting twelve years it was accepted.
    e2 = commit(net.w, long_lived, roster, e1, agreement=other_agreement(net.w))
    swapped = CommitBundle.decode(resigned(e2, long_lived, expires=agreement_end + 10 * YEAR))
    assert refused(net, swapped, e1).code is Refusal.AGREEMENT_CHANGED


def test_a_channel_never_outlives_a_members_credential(net: Net) -> None:
    short = net.w.device("ca-rcmp", "vessel-2", ("member",), days=1)  # ends NOW + 1 day
    end = short.cred.not_after
    roster = [*net.roster(), (short, "member")]
    e1 = commit(net.w, net.disp, roster, None, expires=end)
    exc = refused(net, CommitBundle.decode(resigned(e1, net.disp, expires=end + 1)), None)
    assert exc.code is Refusal.EXPIRY_BEYOND_VALIDITY and short.id in str(exc)
    assert accepted(net, e1, None).expires == end
    assert latest_expiry(net.w.agreement, net.disp.cred, [d.cred for d, _ in roster]) == end
    with pytest.raises(VerificationError) as e:  # nor is it built
        commit(net.w, net.disp, roster, None, expires=end + 1)
    assert e.value.code is Refusal.EXPIRY_BEYOND_VALIDITY


# -- issued-at: monotonic along the chain, within MAX_CLOCK_SKEW -------------------------------


def test_issued_at_does_not_go_back_beyond_the_clock_skew(net: Net) -> None:
    early = commit(net.w, net.disp, net.roster(), net.e1, now=NOW - MAX_CLOCK_SKEW - 1)
    exc = refused(net, early, net.e1)
    assert exc.code is Refusal.ISSUED_OUT_OF_ORDER and "epoch 1" in str(exc)
    skewed = commit(net.w, net.disp, net.roster(), net.e1, now=NOW - MAX_CLOCK_SKEW)
    assert accepted(net, skewed, net.e1).issued_at == NOW - MAX_CLOCK_SKEW


def test_a_commit_is_not_issued_in_the_future(net: Net) -> None:
    """Else one future-dated commit makes every honest successor look out of order."""
    ahead = commit(net.w, net.disp, net.roster(), net.e1, now=NOW + MAX_CLOCK_SKEW + 1)
    assert refused(net, ahead, net.e1).code is Refusal.ISSUED_IN_FUTURE
    genesis = commit(net.w, net.disp, net.roster(), None, now=NOW + DAY)
    assert refused(net, genesis, None).code is Refusal.ISSUED_IN_FUTURE
    within = commit(net.w, net.disp, net.roster(), None, now=NOW + MAX_CLOCK_SKEW)
    assert accepted(net, within, None).issued_at == NOW + MAX_CLOCK_SKEW
