"""A channel never outlives the agreement it cites nor the credential of the dispatcher who
issued it (issue 7, fault 8): verify_commit refuses such a commit and create_commit refuses to
build one (it does not clamp: see its docstring). Before, both accepted any ``expires``."""

from __future__ import annotations

import pytest

from crypto.agreement import Agreement
from crypto.channel import CommitBundle, create_commit, latest_expiry, verify_commit
from crypto.errors import Refusal, VerificationError
from crypto.identity import issue_credential
from tests.crypto.forge import resigned
from tests.world import NOW, Device, World, make_world

AGREEMENT_END = NOW + 7 * 86400


@pytest.fixture
def w() -> World:
    w = make_world()
    short = Agreement.create(
        "short",
        "One week",
        {"us-cbp": ["dispatcher", "member"], "ca-rcmp": ["member"]},
        NOW - 60,
        AGREEMENT_END,
    )
    for a in ("us-cbp", "ca-rcmp"):
        short = short.add_signature(w.roots[a])
    w.agreement = short
    return w


def people(w: World) -> tuple[Device, Device]:
    return (
        w.device("us-cbp", "dispatch-1", ("dispatcher", "member")),  # valid for 30 days
        w.device("ca-rcmp", "vessel-1", ("member",)),
    )


def short_lived_dispatcher(w: World, until: int) -> Device:
    keys = w.device("us-cbp", "tmp", ("dispatcher",)).keys
    cred = issue_credential(
        w.roots["us-cbp"], "dispatch-2", keys, roles=("dispatcher", "member"),
        not_before=NOW - 60, not_after=until, serial=99,
    )  # fmt: skip
    return Device(cred, keys)


def build(w: World, issuer: Device, members: list[Device], expires: int) -> CommitBundle:
    bundle, _ = create_commit(
        issuer=issuer.cred,
        issuer_keys=issuer.keys,
        channel="inc-1",
        name="Incident 1",
        agreement=w.agreement,
        members=[(issuer.cred, "dispatcher")] + [(m.cred, "member") for m in members],
        previous=None,
        expires=expires,
        now=NOW,
    )
    return bundle


def refusal(w: World, data: bytes) -> VerificationError:
    with pytest.raises(VerificationError) as e:
        verify_commit(CommitBundle.decode(data), w.trust, NOW, previous=None)
    return e.value


def test_latest_expiry_is_the_earlier_end(w: World) -> None:
    disp, _ = people(w)
    assert latest_expiry(w.agreement, disp.cred) == AGREEMENT_END
    early = short_lived_dispatcher(w, NOW + 3600)
    assert latest_expiry(w.agreement, early.cred) == NOW + 3600


def test_expiry_up_to_the_limit_is_accepted(w: World) -> None:
    disp, boat = people(w)
    bundle = build(w, disp, [boat], AGREEMENT_END)
    assert verify_commit(bundle, w.trust, NOW, previous=None).expires == AGREEMENT_END


def test_verify_refuses_a_channel_that_outlives_its_agreement(w: World) -> None:
    disp, boat = people(w)
    bundle = build(w, disp, [boat], NOW + 3600)
    exc = refusal(w, resigned(bundle, disp, expires=AGREEMENT_END + 1))
    assert exc.code is Refusal.EXPIRY_BEYOND_VALIDITY and "agreement short" in str(exc)


def test_verify_refuses_a_channel_that_outlives_its_issuer(w: World) -> None:
    _, boat = people(w)
    early = short_lived_dispatcher(w, NOW + 3600)
    bundle = build(w, early, [boat], NOW + 600)
    exc = refusal(w, resigned(bundle, early, expires=NOW + 3601))
    assert exc.code is Refusal.EXPIRY_BEYOND_VALIDITY and "us-cbp/dispatch-2" in str(exc)


def test_create_commit_refuses_rather_than_clamps(w: World) -> None:
    disp, boat = people(w)
    with pytest.raises(VerificationError) as e:
        build(w, disp, [boat], AGREEMENT_END + 1)
    assert e.value.code is Refusal.EXPIRY_BEYOND_VALIDITY
    early = short_lived_dispatcher(w, NOW + 3600)
    with pytest.raises(VerificationError) as e:
        build(w, early, [boat], NOW + 3601)
    assert e.value.code is Refusal.EXPIRY_BEYOND_VALIDITY
    # What a caller does for "as long as allowed":
    wanted = NOW + 30 * 86400
    bundle = build(w, early, [boat], min(wanted, latest_expiry(w.agreement, early.cred)))
    assert bundle.commit.expires == NOW + 3600
