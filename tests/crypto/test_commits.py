"""Commit chain verification: every refusal the issue names, each with its precise code."""

from __future__ import annotations

from dataclasses import replace

import pytest

from crypto.agreement import Agreement, RevocationList
from crypto.channel import GENESIS, CommitBundle, verify_commit
from crypto.errors import Refusal, VerificationError
from crypto.identity import AgencyRoot, DeviceKeys, issue_credential
from tests.world import NOW, World, make_world


@pytest.fixture
def w() -> World:
    return make_world()


def people(w: World):  # type: ignore[no-untyped-def]
    disp = w.device("us-cbp", "dispatch-1", ("dispatcher", "member"))
    boat = w.device("ca-rcmp", "vessel-1", ("member",), kind="vessel")
    gw = w.device("us-cbp", "gw-1", ("member",), kind="radio-gateway")
    obs = w.device("mx-gn", "c4-1", ("observer",))
    return disp, boat, gw, obs


def refusal(bundle: CommitBundle, w: World, previous=None, **kw) -> Refusal:  # type: ignore[no-untyped-def]
    with pytest.raises(VerificationError) as e:
        verify_commit(CommitBundle.decode(bundle.encode()), w.trust, NOW, previous=previous, **kw)
    return e.value.code


def test_valid_chain(w: World) -> None:
    disp, boat, gw, obs = people(w)
    b1 = w.commit(disp, [(disp, "dispatcher"), (boat, "member"), (obs, "observer")], None)
    c1 = verify_commit(CommitBundle.decode(b1.encode()), w.trust, NOW, previous=None)
    assert c1.epoch == 1 and c1.prev == GENESIS
    b2 = w.commit(disp, [(disp, "dispatcher"), (boat, "member"), (gw, "member")], b1)
    c2 = verify_commit(b2, w.trust, NOW, previous=c1)
    assert c2.epoch == 2 and c2.prev == c1.hash
    # Sender indices are stable for members who stay.
    assert c2.entry(boat.id).index == c1.entry(boat.id).index


def test_unpinned_root(w: World) -> None:
    disp, boat, _, _ = people(w)
    rogue = AgencyRoot.generate("xx-rogue")
    keys = DeviceKeys.generate()
    cred = issue_credential(
        rogue,
        "d",
        keys,
        roles=("dispatcher",),
        not_before=NOW - 1,
        not_after=NOW + 2 * 86400,
        serial=9,
    )
    from tests.world import Device

    b = w.commit(Device(cred, keys), [(boat, "member")], None)
    assert refusal(b, w) is Refusal.UNPINNED_ROOT


def test_non_dispatcher_issuer(w: World) -> None:
    _, boat, gw, _ = people(w)
    b = w.commit(gw, [(gw, "member"), (boat, "member")], None)
    assert refusal(b, w) is Refusal.NOT_DISPATCHER


def test_dispatcher_of_agency_the_agreement_does_not_let_dispatch(w: World) -> None:
    _, boat, _, _ = people(w)
    mx_disp = w.device("mx-gn", "dispatch", ("dispatcher", "observer"))
    b = w.commit(mx_disp, [(boat, "member")], None)
    assert refusal(b, w) is Refusal.NOT_DISPATCHER


def test_epoch_skip_and_wrong_previous(w: World) -> None:
    disp, boat, gw, _ = people(w)
    b1 = w.commit(disp, [(disp, "dispatcher"), (boat, "member")], None)
    b2 = w.commit(disp, [(disp, "dispatcher"), (boat, "member")], b1)
    b3 = w.commit(disp, [(disp, "dispatcher"), (gw, "member")], b2)
    assert refusal(b3, w, previous=b1.commit) is Refusal.EPOCH_SKIP
    # A competing epoch-2 commit built on a different history has a wrong previous hash.
    other1 = w.commit(disp, [(disp, "dispatcher")], None)
    fork = w.commit(disp, [(disp, "dispatcher"), (gw, "member")], other1)
    assert refusal(fork, w, previous=b1.commit) is Refusal.WRONG_PREVIOUS


def test_agreement_not_signed_by_every_roster_agency(w: World) -> None:
    disp, boat, _, obs = people(w)
    partial = Agreement.create(
        "shiprider-gl",
        "Great Lakes Shiprider",
        {a: list(r) for a, r in w.agreement.parties.items()},
        w.agreement.not_before,
        w.agreement.not_after,
    )
    partial = partial.add_signature(w.roots["us-cbp"]).add_signature(w.roots["ca-rcmp"])
    b = w.commit(
        disp, [(disp, "dispatcher"), (boat, "member"), (obs, "observer")], None, agreement=partial
    )
    assert refusal(b, w) is Refusal.AGREEMENT_UNSIGNED


def test_agency_outside_agreement(w: World) -> None:
    disp, boat, _, _ = people(w)
    bilateral = Agreement.create(
        "bi",
        "US-CA",
        {"us-cbp": ["dispatcher", "member"], "ca-rcmp": ["member"]},
        NOW - 1,
        NOW + 2 * 86400,  # outlives the channel (crypto.channel.latest_expiry)
    )
    for a in ("us-cbp", "ca-rcmp"):
        bilateral = bilateral.add_signature(w.roots[a])
    mx = w.device("mx-gn", "obs", ("observer",))
    b = w.commit(
        disp, [(disp, "dispatcher"), (boat, "member"), (mx, "observer")], None, agreement=bilateral
    )
    assert refusal(b, w) is Refusal.AGENCY_NOT_IN_AGREEMENT


def test_role_not_allowed(w: World) -> None:
    disp, _, _, obs = people(w)
    # An observer credential listed as a member (so it would get a sender index).
    b = w.commit(disp, [(disp, "dispatcher"), (obs, "member")], None)
    assert refusal(b, w) is Refusal.ROLE_NOT_ALLOWED


def test_revoked_issuer_and_member(w: World) -> None:
    disp, boat, _, _ = people(w)
    b = w.commit(disp, [(disp, "dispatcher"), (boat, "member")], None)
    rl_us = RevocationList.create(w.roots["us-cbp"], 1, NOW, {disp.cred.serial})
    assert refusal(b, w, revocations={"us-cbp": rl_us}) is Refusal.REVOKED
    rl_ca = RevocationList.create(w.roots["ca-rcmp"], 1, NOW, {boat.cred.serial})
    assert refusal(b, w, revocations={"ca-rcmp": rl_ca}) is Refusal.REVOKED


def test_tampered_roster_breaks_signature(w: World) -> None:
    disp, boat, gw, _ = people(w)
    b = w.commit(disp, [(disp, "dispatcher"), (boat, "member")], None)
    extra = replace(b.commit.roster[0], device=gw.id, cred=gw.cred.fingerprint, index=4000)
    forged = replace(
        b,
        commit=replace(b.commit, roster=b.commit.roster + (extra,)),
        credentials={**b.credentials, gw.id: gw.cred},
    )
    assert refusal(forged, w) is Refusal.BAD_SIGNATURE


def test_observer_cannot_send_by_commit_alone(w: World) -> None:
    disp, boat, _, obs = people(w)
    b = w.commit(disp, [(disp, "dispatcher"), (boat, "member"), (obs, "observer")], None)
    c = verify_commit(b.without_secrets(), w.trust, NOW, previous=None)  # what a relay sees
    assert not c.may_send(obs.id) and c.entry(obs.id).index is None
    assert c.may_send(boat.id) and c.may_send(disp.id)
    assert not c.may_send("us-cbp/stranger")


def test_expired_channel(w: World) -> None:
    disp, boat, _, _ = people(w)
    b = w.commit(disp, [(disp, "dispatcher"), (boat, "member")], None)
    with pytest.raises(VerificationError) as e:
        verify_commit(b, w.trust, b.commit.expires + 1, previous=None)
    assert e.value.code is Refusal.EXPIRED
