"""``crypto.channel.verify_link``: is a commit authentic, whatever we think of its roster?

It was a copy of most of ``verify_commit`` in ``bridge/endpoint/chain.py`` and had drifted: it
did not check that the channel's expiry stays within the agreement's and the issuer's validity,
so a commit refused for outliving its agreement was still kept as a chain link. Now both run
the same checks (``_check_authority``) and verify_link leaves out only the roster and the
channel's own expiry.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from crypto.agreement import RevocationList
from crypto.channel import CommitBundle, verify_commit, verify_link
from crypto.errors import Refusal, VerificationError
from tests.crypto.forge import resigned
from tests.world import NOW, Device, World, make_world

DAY = 86400


@pytest.fixture(scope="module")
def net() -> tuple[World, Device, Device, CommitBundle]:
    w = make_world()
    disp = w.device("us-cbp", "dispatch-1", ("dispatcher", "member"))
    boat = w.device("ca-rcmp", "vessel-1", ("member",))
    return w, disp, boat, w.commit(disp, [(disp, "dispatcher"), (boat, "member")], None)


def refusal(check: object, bundle: CommitBundle, w: World, **kw: object) -> Refusal:
    with pytest.raises(VerificationError) as e:
        check(bundle, w.trust, NOW + 5, **kw)  # type: ignore[operator]
    return e.value.code


def test_a_roster_we_refuse_is_still_an_authentic_link(
    net: tuple[World, Device, Device, CommitBundle],
) -> None:
    w, _, boat, e1 = net
    newer = {"ca-rcmp": RevocationList.create(w.roots["ca-rcmp"], 1, NOW, {boat.cred.serial})}
    kw = {"previous": None, "revocations": newer}
    assert refusal(verify_commit, e1, w, **kw) is Refusal.REVOKED
    assert verify_link(e1, w.trust, NOW + 5, **kw) == e1.commit  # type: ignore[arg-type]


def test_an_expired_channel_is_still_a_link(
    net: tuple[World, Device, Device, CommitBundle],
) -> None:
    w, _, _, e1 = net
    late = NOW + 2 * DAY
    with pytest.raises(VerificationError) as e:
        verify_commit(e1, w.trust, late, previous=None)
    assert e.value.code is Refusal.EXPIRED
    assert verify_link(e1, w.trust, late, previous=None) == e1.commit


def test_a_channel_that_outlives_its_agreement_is_no_link(
    net: tuple[World, Device, Device, CommitBundle],
) -> None:
    w, disp, _, e1 = net
    too_long = CommitBundle.decode(resigned(e1, disp, expires=w.agreement.not_after + 1))
    assert refusal(verify_link, too_long, w, previous=None) is Refusal.EXPIRY_BEYOND_VALIDITY
    assert refusal(verify_commit, too_long, w, previous=None) is Refusal.EXPIRY_BEYOND_VALIDITY


def test_both_refuse_what_is_not_authentic_with_the_same_code(
    net: tuple[World, Device, Device, CommitBundle],
) -> None:
    w, disp, boat, e1 = net
    e2 = w.commit(disp, [(disp, "dispatcher"), (boat, "member")], e1)
    by_member = w.commit(boat, [(boat, "member"), (disp, "dispatcher")], e1)
    cases = {
        "forged": (replace(e2, commit=replace(e2.commit, signature=bytes(64))), e1.commit),
        "by a member": (by_member, e1.commit),
        "epoch skip": (e2, replace(e1.commit, epoch=5)),
        "wrong previous hash": (e2, replace(e1.commit, name="another")),
        "no issuer credential": (
            replace(e2, credentials={k: v for k, v in e2.credentials.items() if k != disp.id}),
            e1.commit,
        ),
        "not from genesis": (CommitBundle.decode(resigned(e1, disp, prev="a" * 64)), None),
    }
    seen = set()
    for name, (bundle, previous) in cases.items():
        link = refusal(verify_link, bundle, w, previous=previous)
        full = refusal(verify_commit, bundle, w, previous=previous)
        assert link is full, name
        seen.add(link)
    assert seen == {
        Refusal.BAD_SIGNATURE,
        Refusal.NOT_DISPATCHER,
        Refusal.EPOCH_SKIP,
        Refusal.WRONG_PREVIOUS,
        Refusal.UNKNOWN_DEVICE,
    }
